"""Figure 4 and Figure S32 from stored results: drawn from the committed example archive with no CP2K and no AiiDA
profile, the same plotted data after export -> import into a fresh profile, the panels of the figure objects, and
the real ``tiny`` campaign (Br only: Figure S32 must name its missing Cl and I heterostructures)."""

from __future__ import annotations

import io
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from aiida_nanohetero.analysis import queries
from aiida_nanohetero.analysis.figures import FIGURES, figure_data, plot_figure, write_figures

BIN = pathlib.Path(sys.executable).parent
OUTPUTS = [f'{name}.{suffix}' for name in FIGURES for suffix in ('png', 'svg', 'csv')]


def _no_cp2k_env(tmp_path: pathlib.Path) -> dict:
    """An environment with a fresh, empty AiiDA folder (no profile at all) and no CP2K on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(('AIIDA_', 'NANOHETERO_'))}
    env['AIIDA_PATH'] = str(tmp_path / 'aiida')
    env['PATH'] = str(BIN)  # the virtual environment only: no cp2k.psmp
    env['MPLBACKEND'] = 'Agg'
    return env


def _run(args: list[str], env: dict, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f'{args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}'
    assert 'Traceback' not in result.stderr
    return result


def _png_size(path: pathlib.Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', f'{path} is not a PNG'
    return int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big')


def test_figures_from_the_example_archive_without_cp2k_or_profile(example_archive, tmp_path):
    """`nanohetero figures --archive` on a machine with no CP2K and no AiiDA profile: every file is written."""
    env = _no_cp2k_env(tmp_path)
    assert shutil.which('cp2k.psmp', path=env['PATH']) is None
    out = tmp_path / 'figs'
    result = _run([sys.executable, '-m', 'aiida_nanohetero.cli', 'figures', '--archive', str(example_archive),
                   '--out', str(out)], env, tmp_path)  # fmt: skip
    assert 'Figure 4:' in result.stdout and 'Figure S32:' in result.stdout
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    width, height = _png_size(out / 'figure4.png')
    assert width > 1500 and height > 900  # 300 dpi at journal size
    assert (out / 'figure4.svg').read_text().lstrip().startswith(('<?xml', '<svg'))
    plotted = (out / 'figure4.csv').read_text().splitlines()
    assert plotted[0].startswith('figure,panel,key,model,halide,mo,energy_ev')
    assert len(plotted) > 10
    config = tmp_path / 'aiida' / '.aiida' / 'config.json'
    assert not config.exists() or json.loads(config.read_text()).get('profiles', {}) == {}  # no profile was made


def test_export_import_into_a_fresh_profile_gives_the_same_plotted_data(example_archive, tmp_path):
    """The plotted data read from the archive in place equals the plotted data after `verdi archive import` into a
    brand-new profile, and after exporting it again with `nanohetero export`."""
    env = _no_cp2k_env(tmp_path)
    in_place, imported, again = tmp_path / 'in-place', tmp_path / 'imported', tmp_path / 'again'
    nanohetero = [sys.executable, '-m', 'aiida_nanohetero.cli']
    _run([*nanohetero, 'figures', '--archive', str(example_archive), '--out', str(in_place)], env, tmp_path)
    _run([str(BIN / 'verdi'), 'profile', 'setup', 'core.sqlite_dos', '-n', '--profile-name', 'fresh',
          '--email', 'test@example.com', '--first-name', 'A', '--last-name', 'B', '--institution', 'C',
          '--no-use-rabbitmq'], env, tmp_path)  # fmt: skip
    _run([str(BIN / 'verdi'), '-p', 'fresh', 'archive', 'import', str(example_archive)], env, tmp_path)
    _run([*nanohetero, '-p', 'fresh', 'figures', '--out', str(imported)], env, tmp_path)
    _run([*nanohetero, '-p', 'fresh', 'export', '-o', str(tmp_path / 'again.aiida')], env, tmp_path)
    _run([*nanohetero, 'figures', '--archive', str(tmp_path / 'again.aiida'), '--out', str(again)], env, tmp_path)
    for name in FIGURES:
        reference = (in_place / f'{name}.csv').read_text()
        assert (imported / f'{name}.csv').read_text() == reference, name
        assert (again / f'{name}.csv').read_text() == reference, name


def test_figure_objects_have_one_panel_per_model(example_archive):
    """The visual smoke test, on the figure objects: one sub-figure per model, three axes (elements, domains,
    IPR) per drawn model, the gap written on it, and a non-empty PNG."""
    with queries.open_archive(example_archive) as backend:
        data4 = figure_data(figure='figure4', backend=backend)
        data32 = figure_data(figure='figureS32', backend=backend)
    figure = plot_figure(data4)
    assert [subfig.get_label() for subfig in figure.subfigs] == list(FIGURES['figure4'].keys)
    for subfig, panel in zip(figure.subfigs, data4.panels, strict=True):
        labels = sorted(ax.get_label() for ax in subfig.axes)
        if panel.missing:
            assert labels == [f'{panel.key}:missing']
            continue
        assert labels == [f'{panel.key}:domains', f'{panel.key}:elements', f'{panel.key}:ipr']
        texts = [t.get_text() for t in subfig.texts] + [t.get_text() for ax in subfig.axes for t in ax.texts]
        gap = panel.model['gap_filtered_ev']
        gap = panel.model['gap_ev'] if gap is None or gap != gap else gap  # HOMO-LUMO where no filtered edges
        assert any(f'{gap:.2f} eV' in text for text in texts), texts  # the gap is written on the panel
        assert not any('nan' in text for text in texts), texts  # nothing undefined is written as a number
        if panel.model['model'] == 'heterostructure':  # its alignment class, and what it was taken from
            basis = ' (from HOMO/LUMO)' if panel.model['alignment_basis'] == 'HOMO/LUMO' else ''
            assert any(f'{panel.model["alignment"]}{basis}' in text for text in texts), texts
        ipr_axis = next(ax for ax in subfig.axes if ax.get_label().endswith(':ipr'))
        assert ipr_axis.get_xscale() == 'log'
        assert ipr_axis.get_ylim() == pytest.approx(data4.ylim)
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=100)
    assert buffer.tell() > 10_000
    # the example campaign computed Cl and I too: Figure S32 draws both heterostructures
    assert [panel.key for panel in data32.panels if not panel.missing] == ['heterostructure_Cl', 'heterostructure_I']
    assert len(plot_figure(data32).subfigs) == 2


def test_plotted_csv_is_exactly_what_the_panels_draw(example_archive):
    with queries.open_archive(example_archive) as backend:
        data = figure_data(figure='figure4', backend=backend)
    table = data.table()
    for panel in data.panels:
        rows = table[table['key'] == panel.key]
        if panel.missing:
            assert rows.empty
            continue
        assert len(rows) == len(panel.orbitals) > 0
        assert rows['energy_ev'].between(*data.ylim).all()
        assert rows['ipr_uuid'].nunique() == 1 and rows['calculation_uuid'].nunique() == 1


@pytest.mark.cp2k
def test_tiny_campaign_figures_name_the_missing_halides(tiny_campaign, tmp_path):
    """The real Br-only tiny campaign: Figure 4 has all three models; Figure S32 says by name that the Cl and I
    heterostructures were not computed, on the figure and in what is returned."""
    written = {figure.name: figure for figure in write_figures(tiny_campaign, tmp_path)}
    assert written['figure4'].panels == list(FIGURES['figure4'].keys) and not written['figure4'].missing
    if set(tiny_campaign.inputs.halides.get_list()) != {'Br'}:
        pytest.skip('the campaign (replayed from an archive) computed Cl or I: nothing is missing')
    assert set(written['figureS32'].missing) == {'heterostructure_Cl', 'heterostructure_I'}
    assert written['figureS32'].panels == []
    for name in OUTPUTS:
        assert (tmp_path / name).stat().st_size > 0
    figure = plot_figure(figure_data(tiny_campaign, 'figureS32'))
    texts = ' '.join(t.get_text() for subfig in figure.subfigs for ax in subfig.axes for t in ax.texts)
    assert 'heterostructure_Cl' in texts and 'heterostructure_I' in texts and 'not computed' in texts


@pytest.mark.cp2k
def test_tiny_campaign_round_trip_through_an_archive(tiny_campaign, tmp_path):
    """Export the campaign made in this test session; its plotted data read from the archive in place is identical
    to the data read from the database."""
    from aiida_nanohetero.cli.export import export_campaign

    archive = export_campaign(tiny_campaign, tmp_path / 'tiny.aiida')
    from_database = {name: figure_data(tiny_campaign, name).table().to_csv(index=False) for name in FIGURES}
    with queries.open_archive(archive) as backend:
        from_archive = {
            name: figure_data(tiny_campaign.uuid, name, backend=backend).table().to_csv(index=False) for name in FIGURES
        }
    assert from_archive == from_database
