"""Queries of finished campaigns: the model and orbital tables of the real ``tiny`` campaign, an orbital traced back
through the provenance graph to its CP2K calculation and structure, and clear errors for bad input (no campaign,
unknown campaign, failed models, archives that are not archives or come from a newer AiiDA)."""

from __future__ import annotations

import json
import pathlib
import zipfile

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from click.testing import CliRunner

from aiida_nanohetero.analysis import queries
from aiida_nanohetero.analysis.figures import FIGURES, figure_data
from aiida_nanohetero.builders import build_model
from aiida_nanohetero.cli import cli


def _invoke(*args):
    """Run ``nanohetero`` in this process, on the test profile."""
    from aiida.manage import get_manager

    profile = get_manager().get_profile()
    prefix = ['-p', profile.name] if profile is not None else []
    result = CliRunner().invoke(cli, [*prefix, *args], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


# ------------------------------------------------------------------------------------------ the real campaign

_TINY_KINDS = (('half-sphere', {}), ('cube', {'halide': 'Br'}), ('heterostructure', {'halide': 'Br'}))


@pytest.mark.cp2k
def test_models_table_of_the_tiny_campaign(tiny_campaign, campaign_keys):
    table = queries.models(tiny_campaign)
    assert table['key'].tolist() == campaign_keys
    assert (table['state'] == 'finished').all()
    assert (table['protocol'] == 'tiny').all()
    n_atoms = table.set_index('key')['n_atoms']
    built = [len(build_model(kind, 'tiny', **halide)) for kind, halide in _TINY_KINDS]  # 45, 11, 54 atoms
    assert [n_atoms[key] for key in ('half_sphere', 'cube_Br', 'heterostructure_Br')] == built
    assert table.set_index('key').loc['cube_Br', 'formula'] == 'Br6Cs4Pb'
    for row in table.to_dict('records'):
        summary = orm.load_node(row['summary_uuid'])
        assert row['gap_ev'] == pytest.approx(summary['gap_ev'])
        assert row['homo_ev'] < row['lumo_ev']
        assert row['total_energy_ha'] == pytest.approx(orm.load_node(row['output_parameters_uuid'])['energy'])
        calculation = orm.load_node(row['calculation_uuid'])
        assert calculation.process_type == 'aiida.calculations:cp2k'
        assert calculation.inputs.parameters['GLOBAL']['RUN_TYPE'] == 'ENERGY'  # the single point, not the relaxation
        assert row['cp2k_version'] and row['cp2k_version'][0].isdigit()
    # the campaigns table finds it, with its models
    campaigns = queries.campaigns().set_index('uuid')
    assert campaigns.loc[tiny_campaign.uuid, 'n_models'] == len(campaign_keys)
    assert campaigns.loc[tiny_campaign.uuid, 'halides'] == ','.join(tiny_campaign.inputs.halides.get_list())


@pytest.mark.cp2k
def test_plotted_orbital_traces_back_to_its_cp2k_calculation_and_structure(tiny_campaign):
    """Take an orbital drawn in Figure 4 (the heterostructure's HOMO) and follow the provenance graph back."""
    plotted = figure_data(tiny_campaign, 'figure4').table()
    row = plotted[(plotted['key'] == 'heterostructure_Br') & plotted['homo']].iloc[0]
    chain = queries.trace_orbital(row['ipr_uuid'], int(row['mo']))
    calculation, structure = chain['calculation'], chain['structure']
    assert calculation.uuid == row['calculation_uuid']
    assert structure.uuid == row['structure_uuid']
    # every link of the chain, checked independently of the query
    assert chain['ipr'].creator.uuid == chain['compute_ipr'].uuid
    assert chain['compute_ipr'].inputs.retrieved.uuid == chain['retrieved'].uuid
    assert chain['compute_ipr'].inputs.orbitals.uuid == chain['orbitals'].uuid
    assert chain['orbitals'].creator.uuid == chain['parse_orbitals'].uuid
    assert chain['parse_orbitals'].inputs.retrieved.uuid == chain['retrieved'].uuid
    assert chain['retrieved'].creator.uuid == calculation.uuid
    assert calculation.inputs.structure.uuid == structure.uuid
    # the structure is the model's relaxed geometry, and the model is the campaign's heterostructure
    model = chain['model']
    assert model.base.extras.get('nanohetero_key') == 'heterostructure_Br'
    assert structure.uuid == model.outputs.relaxed_structure.uuid
    assert len(structure.sites) == len(build_model('heterostructure', 'tiny', halide='Br'))  # 54 atoms
    # the plotted energy is the one CP2K printed (the parsed orbitals node holds CP2K's window)
    indices = list(chain['orbitals'].get_array('indices'))
    assert chain['orbitals'].get_array('energies')[indices.index(int(row['mo']))] == pytest.approx(row['energy_ev'])
    assert chain['energy_ev'] == pytest.approx(row['energy_ev'])
    assert chain['ipr_value'] == pytest.approx(row['ipr'])


@pytest.mark.cp2k
def test_orbitals_table_is_physical(tiny_campaign, campaign_keys):
    table = queries.orbitals(tiny_campaign)
    assert set(table['key']) == set(campaign_keys)
    for key, rows in table.groupby('key'):
        elements = rows[[c for c in rows if c.startswith('element_')]].sum(axis=1)
        domains = rows[[c for c in rows if c.startswith('domain_')]].sum(axis=1)
        np.testing.assert_allclose(elements, 1.0, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(domains, 1.0, atol=1e-6, err_msg=key)
        assert rows['homo'].sum() == 1 and rows['lumo'].sum() == 1
        assert (np.diff(rows['energy_ev']) >= -1e-9).all()
    cube = table[table['key'] == 'cube_Br']
    assert (cube['element_S'] == 0).all()
    np.testing.assert_allclose(cube['domain_perovskite'], 1.0, atol=1e-8)
    # an 11-atom cluster: IPR >= 1/11, so every state is localised at the seed's threshold
    assert cube['localised'].all()


@pytest.mark.cp2k
def test_missing_models_are_named(tiny_campaign, campaign_keys):
    missing = queries.missing_models(tiny_campaign, FIGURES['figureS32'].keys)
    assert set(missing) == {'heterostructure_Cl', 'heterostructure_I'} - set(campaign_keys)
    assert all('not computed' in reason and 'Br' in reason for reason in missing.values())
    assert queries.missing_models(tiny_campaign, FIGURES['figure4'].keys) == {}


@pytest.mark.cp2k
def test_results_command(tiny_campaign, campaign_keys, tmp_path):
    result = _invoke('results', '--campaign', str(tiny_campaign.pk))
    assert result.exit_code == 0, result.output
    for key in campaign_keys:
        assert key in result.output
    # the heterostructure's alignment class, starred when it comes from the HOMO and LUMO
    het = queries.models(tiny_campaign).set_index('key').loc['heterostructure_Br']
    line = next(line for line in result.output.splitlines() if line.startswith('heterostructure_Br'))
    assert f' {het["alignment"]}{"*" if het["alignment_basis"] == "HOMO/LUMO" else ""} ' in line, line
    out = tmp_path / 'models.json'
    result = _invoke('results', '--campaign', tiny_campaign.uuid, '--format', 'json', '-o', str(out))
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [r['key'] for r in rows] == campaign_keys and all(r['calculation_uuid'] for r in rows)
    result = _invoke('results', '--campaign', str(tiny_campaign.pk), '--orbitals', '--format', 'csv')
    assert result.exit_code == 0 and result.output.startswith('key,model,halide,mo,energy_ev')


# ------------------------------------------------------------------------------------------ archives in place


def test_example_archive_is_queried_in_place(example_archive):
    with queries.open_archive(example_archive) as backend:
        campaigns = queries.campaigns(backend)
        assert len(campaigns) == 1
        table = queries.models(backend=backend)
        assert {'half_sphere', 'cube_Br', 'heterostructure_Br'} <= set(table['key'])
        finished = table[table['state'] == 'finished']
        assert finished['calculation_uuid'].notna().all() and finished['ipr_uuid'].notna().all()
        assert (finished['protocol'] == campaigns['protocol'].iloc[0]).all()
        row = queries.orbitals(backend=backend, keys=['cube_Br']).iloc[0]
        chain = queries.trace_orbital(row['ipr_uuid'], int(row['mo']), backend=backend)
        assert chain['calculation'].uuid == row['calculation_uuid']
        assert chain['structure'].uuid == row['structure_uuid']


# ------------------------------------------------------------------------------------------ bad input


def _archive_without_campaign(path: pathlib.Path) -> pathlib.Path:
    from aiida.tools.archive import create_archive

    create_archive([orm.Int(7).store()], filename=path)
    return path


def test_archive_without_campaign_says_so(aiida_profile, tmp_path):
    archive = _archive_without_campaign(tmp_path / 'empty.aiida')
    with queries.open_archive(archive) as backend:
        assert queries.campaigns(backend).empty
        with pytest.raises(queries.NoCampaignError, match='no campaign in archive'):
            queries.get_campaign(backend=backend)
    for command in ('results', 'figures'):
        extra = ['--out', str(tmp_path / 'figs')] if command == 'figures' else []
        result = _invoke(command, '--archive', str(archive), *extra)
        assert result.exit_code == 1
        assert 'no campaign in archive' in result.output and 'Traceback' not in result.output


def test_archive_from_a_newer_aiida_is_refused_clearly(aiida_profile, tmp_path):
    archive = _archive_without_campaign(tmp_path / 'current.aiida')
    newer = tmp_path / 'newer.aiida'
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(newer, 'w') as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == 'metadata.json':
                metadata = json.loads(data)
                metadata['export_version'] = 'main_9999'
                data = json.dumps(metadata).encode()
            target.writestr(item, data)
    with pytest.raises(queries.ArchiveError, match='newer AiiDA'):
        with queries.open_archive(newer):
            pass
    result = _invoke('figures', '--archive', str(newer), '--out', str(tmp_path / 'figs'))
    assert result.exit_code == 1
    assert 'main_9999' in result.output and 'upgrade aiida-core' in result.output
    assert 'Traceback' not in result.output


def test_files_that_are_not_archives_are_refused(tmp_path):
    text = tmp_path / 'notes.aiida'
    text.write_text('not an archive')
    for path, message in ((text, 'is not an AiiDA archive'), (tmp_path / 'absent.aiida', 'not found')):
        result = _invoke('results', '--archive', str(path))
        assert result.exit_code == 1
        assert message in result.output and 'Traceback' not in result.output


def test_unknown_campaign_is_refused_clearly(aiida_profile):
    node = orm.Int(3).store()
    with pytest.raises(queries.NoCampaignError, match='is not a campaign'):
        queries.get_campaign(node.pk)
    with pytest.raises(queries.NoCampaignError, match='no such node'):
        queries.get_campaign('ffffffff-0000')


def _process(cls, label: str, process_type: str, exit_status: int = 0, message: str | None = None):
    from aiida.engine import ProcessState

    node = cls()
    node.set_process_type(process_type)
    node.set_process_label(label)
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(exit_status)
    if message:
        node.set_exit_message(message)
    return node


def test_failed_and_missing_models_are_named(aiida_profile, tmp_path):
    """A campaign whose heterostructure failed and whose half-sphere never started: every figure panel says why,
    by name, and nothing is drawn for them."""
    campaign = _process(
        orm.WorkChainNode, 'HeterostructureCampaignWorkChain', 'aiida.workflows:nanohetero.campaign', 410, 'failed'
    )
    campaign.store()
    campaign.base.extras.set_many({'nanohetero_protocol': 'tiny', 'nanohetero_halides': ['Br']})
    message = 'The final single point failed: exit status 300.'
    for key, status in (('cube_Br', 401), ('heterostructure_Br', 402)):
        model = _process(
            orm.WorkChainNode,
            'RelaxAndSinglePointWorkChain',
            'aiida.workflows:nanohetero.relax_single_point',
            status,
            message,
        )
        model.base.links.add_incoming(campaign, LinkType.CALL_WORK, key)
        model.store()
        model.base.extras.set_many({'nanohetero_key': key, 'nanohetero_model': key.split('_')[0]})
        model.seal()
    campaign.seal()

    table = queries.models(campaign)
    assert table['state'].tolist() == ['failed [401]', 'failed [402]']
    missing = queries.missing_models(campaign, FIGURES['figure4'].keys, table)
    assert missing['heterostructure_Br'] == f'failed [402]: {message}'
    assert missing['half_sphere'].startswith('not computed')
    assert queries.orbitals(campaign).empty

    result = _invoke('figures', '--campaign', campaign.uuid, '--out', str(tmp_path))
    assert result.exit_code == 0, result.output
    for key in ('half_sphere', 'cube_Br', 'heterostructure_Br', 'heterostructure_Cl', 'heterostructure_I'):
        assert f'missing {key}:' in result.output
    assert (tmp_path / 'figure4.png').stat().st_size > 0
    assert (tmp_path / 'figure4.csv').read_text().count('\n') == 1  # the header: nothing was plotted
