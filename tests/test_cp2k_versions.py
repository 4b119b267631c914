"""Every supported CP2K release on a real program: 2023.1 (Debian 12's ``cp2k``), 2025.1 (Debian 13's, through
``scripts/cp2k-debian13.sh``) and 2026.2 (``../shared/cp2k/cp2k-2026.2``, through ``scripts/cp2k-2026.2.sh``,
which makes the job's ``parent_calc/`` symlink visible in its root).

For each: the code's version read through its computer, the tiny cube's single point through
``RelaxAndSinglePointWorkChain`` with the input spelled for that release, analysed by ``nanohetero analyse`` with the
PDOS cross-check, and the energies and gaps of the three compared; for 2025.1 and 2026.2 a relaxation stopped by
CP2K's walltime and continued (2023.1: ``tests/test_restarts.py``). A release whose program is missing is skipped
with how to get it, except in CI, where it is a failure.

Bad input (no program needed): a code whose executable is not CP2K, a version older than the range, an unreadable
version string.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_nanohetero.workflows.cp2k_versions import (
    CODE_VERSION_EXTRA,
    CP2KVersionError,
    code_cp2k_version,
    parse_version,
    set_code_version,
    spell_for_version,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get('NANOHETERO_SHARED', REPO.parent / 'shared'))

#: How to get each release's program here, for the skip message.
HOW = {
    '2023.1': "apt-get install cp2k (Debian 12's package; scripts/install.sh does it)",
    '2025.1': 'bash scripts/cp2k-debian13.sh --install (Debian 13 root with its cp2k package, as root)',
    '2026.2': '../shared/cp2k/cp2k-2026.2 --version once (makes its Debian 13 root, as root)',
}


def _program(version: str) -> str | None:
    if version == '2023.1':
        return shutil.which('cp2k.psmp')
    if version == '2025.1':
        root = pathlib.Path(os.environ.get('CP2K_DEBIAN13_ROOT', '/opt/cp2k-debian13'))
        return str(REPO / 'scripts' / 'cp2k-debian13.sh') if (root / 'usr/bin/cp2k.psmp').exists() else None
    runner = SHARED / 'cp2k' / 'cp2k-2026.2'
    root = pathlib.Path(os.environ.get('CP2K_2026_ROOT', '/opt/cp2k-2026.2'))
    ready = runner.exists() and (root / 'usr/local/bin/cp2k.psmp').exists()
    return str(REPO / 'scripts' / 'cp2k-2026.2.sh') if ready else None  # the shared runner, with parent_calc/


def _require(version: str) -> str:
    program = _program(version)
    if program is None:
        message = f'CP2K {version} is not available here: {HOW[version]}'
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)
    return program


VERSIONS = ('2023.1', '2025.1', '2026.2')


@pytest.fixture(scope='session')
def version_codes(cp2k_code):
    """One AiiDA code per available release, on the computer ``nanohetero setup`` made; versions read, not given."""
    codes = {}
    for version in VERSIONS:
        program = _program(version)
        if program is None:
            continue
        code = orm.InstalledCode(
            label=f'cp2k-{version}',
            computer=cp2k_code.computer,
            filepath_executable=program,
            default_calc_job_plugin='cp2k',
            with_mpi=False,
            prepend_text='export OMP_NUM_THREADS=1',
        ).store()
        codes[version] = code
    return codes


@pytest.fixture(scope='session')
def cube_model(aiida_profile):
    from aiida_nanohetero.calcfunctions.builders import build_perovskite_cube

    return build_perovskite_cube(n=orm.Int(1), halide=orm.Str('Br'))


@pytest.fixture(scope='session')
def version_single_points(version_codes, cube_model):
    """The tiny cube's single point (no relaxation) through the work chain, once per available release."""
    from aiida.engine import run_get_node

    from aiida_nanohetero.workflows.relax_single_point import RelaxAndSinglePointWorkChain

    nodes = {}
    for version, code in version_codes.items():
        builder = RelaxAndSinglePointWorkChain.get_builder_from_protocol(
            code, cube_model['structure'], protocol='tiny', labels=cube_model['labels']
        )
        builder.relax_geometry = orm.Bool(False)
        _, nodes[version] = run_get_node(builder)
    return nodes


@pytest.mark.cp2k
@pytest.mark.parametrize('version', VERSIONS)
def test_code_version_is_read_from_the_program(version, version_codes):
    _require(version)
    code = version_codes[version]
    assert code_cp2k_version(code) == parse_version(version)
    assert code.base.extras.get(CODE_VERSION_EXTRA) == version  # read once, kept on the code


@pytest.mark.cp2k
@pytest.mark.parametrize('version', VERSIONS)
def test_single_point_analysed_on_every_release(version, version_single_points, tmp_path):
    _require(version)
    node = version_single_points[version]
    assert node.is_finished_ok, node.exit_message
    calculation = node.outputs.retrieved.creator
    printing = calculation.inputs.parameters['FORCE_EVAL']['DFT']['PRINT']
    if version == '2026.2':
        assert 'PDOS' not in printing and printing['DOS']['PDOS'] == {'COMPONENTS': False}
        assert printing['DOS']['LDOS'] and printing['DOS']['NLUMO'] > 0
    else:
        assert 'DOS' not in printing and 'LDOS' in printing['PDOS']
    # the stored analysis found the orbitals, and the files of this release go through `nanohetero analyse` with
    # the PDOS cross-check (Löwdin populations against CP2K's own projection)
    assert node.outputs.summary['gap_ev'] > 1.0
    rundir = tmp_path / 'run'
    node.outputs.retrieved.base.repository.copy_tree(rundir)
    pdos = sorted(p.name for p in rundir.glob('*.pdos'))
    assert any('-k' in name for name in pdos) and any('-list' in name for name in pdos), pdos
    from aiida_nanohetero.cli import cli

    result = CliRunner().invoke(cli, ['analyse', str(rundir)])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if 'cross-check against CP2K PDOS' in line)
    assert float(line.rsplit('=', 1)[1]) < 1e-6, line


@pytest.mark.cp2k
def test_releases_agree(version_single_points):
    """The same input on every release: total energies within 1e-6 Ha, gaps within 1 meV."""
    for version in VERSIONS:
        _require(version)
    energy = {v: n.outputs.output_parameters['energy'] for v, n in version_single_points.items()}
    gap = {v: n.outputs.summary['gap_ev'] for v, n in version_single_points.items()}
    for version in VERSIONS[1:]:
        assert energy[version] == pytest.approx(energy['2023.1'], abs=1e-6), energy
        assert gap[version] == pytest.approx(gap['2023.1'], abs=1e-3), gap


@pytest.mark.cp2k
@pytest.mark.parametrize('version', ['2025.1', '2026.2'])
def test_walltime_stop_is_continued_on_every_release(version, version_codes, water_relaxation, water_split_geo_opt):
    """CP2K's own walltime stop, recognised and continued from the last geometry, wavefunction and BFGS Hessian."""
    from aiida.engine import run_get_node

    from aiida_nanohetero.workflows.cp2k_base import Cp2kRestartWorkChain, geometry_steps_done

    _require(version)
    # long enough for the first SCF and geometry step on a loaded machine (the 2026.2 program is an -O1 build, about
    # half as fast), short enough that water needs several jobs
    seconds = 30 if version == '2025.1' else 60
    parameters = {'GLOBAL': {'WALLTIME': seconds}, 'MOTION': {'GEO_OPT': water_split_geo_opt}}
    inputs = water_relaxation(version_codes[version], parameters, max_iterations=12)
    _, node = run_get_node(Cp2kRestartWorkChain, **inputs)
    assert node.is_finished_ok, node.exit_message
    calcs = sorted((n for n in node.called if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
    assert len(calcs) >= 2
    first, second = calcs[0], calcs[1]
    assert first.exit_status == first.process_class.exit_codes.ERROR_OUT_OF_WALLTIME.status
    stopped = first.outputs.retrieved.base.repository.get_object_content('aiida.out')
    assert geometry_steps_done(stopped) >= 1
    restart = second.inputs.parameters.get_dict()
    assert restart['EXT_RESTART']['RESTART_FILE_NAME'] == './parent_calc/aiida-1.restart'
    assert restart['FORCE_EVAL']['DFT']['SCF']['SCF_GUESS'] == 'RESTART'
    assert 'aiida-BFGS.Hessian' in first.outputs.remote_folder.listdir()
    assert restart['MOTION']['GEO_OPT']['BFGS']['RESTART_HESSIAN'] is True
    assert second.inputs.structure.uuid == first.outputs.output_structure.uuid
    assert calcs[-1].is_finished_ok


# ---------------------------------------------------------------------------------------------------- bad input


def test_a_program_that_is_not_cp2k_is_refused(aiida_localhost):
    from aiida_nanohetero.workflows.single_point import SinglePointWorkChain

    code = orm.InstalledCode(
        label='true', computer=aiida_localhost, filepath_executable='/bin/true', default_calc_job_plugin='cp2k'
    ).store()
    structure = orm.StructureData(cell=[[10, 0, 0], [0, 10, 0], [0, 0, 10]])
    structure.append_atom(position=(0, 0, 0), symbols='Pb')
    with pytest.raises(CP2KVersionError, match=r'code true@\S+ does not look like CP2K: `/bin/true --version` '):
        SinglePointWorkChain.get_builder_from_protocol(code, structure)
    assert CODE_VERSION_EXTRA not in code.base.extras.keys()


def test_versions_outside_the_range_and_unreadable_ones(aiida_localhost):
    code = orm.InstalledCode(
        label='old', computer=aiida_localhost, filepath_executable='/bin/true', default_calc_job_plugin='cp2k'
    ).store()
    with pytest.raises(
        CP2KVersionError,
        match=r'is CP2K 2022\.2, which aiida-nanohetero does not support: use '
        r'CP2K 2023\.1 to 2026\.2',
    ):
        set_code_version(code, '2022.2')
    with pytest.raises(CP2KVersionError, match=r'CP2K 2027\.1, which .* does not support'):
        set_code_version(code, 'CP2K version 2027.1')
    with pytest.raises(CP2KVersionError, match=r"cannot read a CP2K version from the version \('latest'\)"):
        set_code_version(code, 'latest')
    assert CODE_VERSION_EXTRA not in code.base.extras.keys()
    # a version stored by hand that is out of range is refused when the code is used
    code.base.extras.set(CODE_VERSION_EXTRA, '2019.1')
    with pytest.raises(CP2KVersionError, match=r'is CP2K 2019\.1'):
        code_cp2k_version(code)


def test_code_version_command(aiida_localhost):
    from aiida_nanohetero.cli import cli

    code = orm.InstalledCode(
        label='given', computer=aiida_localhost, filepath_executable='/bin/true', default_calc_job_plugin='cp2k'
    ).store()
    from aiida.manage import get_manager

    runner = CliRunner()
    profile = ['-p', get_manager().get_profile().name]
    result = runner.invoke(cli, [*profile, 'code-version', f'given@{aiida_localhost.label}'])
    assert result.exit_code == 1 and 'does not look like CP2K' in result.output and 'Traceback' not in result.output
    result = runner.invoke(cli, [*profile, 'code-version', f'given@{aiida_localhost.label}', '2025.2'])
    assert result.exit_code == 0 and 'CP2K 2025.2' in result.output
    assert code.base.extras.get(CODE_VERSION_EXTRA) == '2025.2'
    result = runner.invoke(cli, [*profile, 'code-version', f'given@{aiida_localhost.label}', '2001.1'])
    assert result.exit_code == 2 and 'does not support' in result.output
    result = runner.invoke(cli, [*profile, 'code-version', 'no-such-code'])
    assert result.exit_code == 2 and 'no-such-code' in result.output and 'Traceback' not in result.output


def test_spelling_per_release():
    parameters = {
        'FORCE_EVAL': {
            'DFT': {
                'PRINT': {
                    'PDOS': {
                        'NLUMO': 20,
                        'COMPONENTS': False,
                        'FILENAME': 'pdos',
                        'ADD_LAST': 'NUMERIC',
                        'EACH': {'QS_SCF': 0},
                        'LDOS': [{'LIST': ['1 2 3']}],
                    },
                    'MO': {'EIGENVALUES': True},
                }
            }
        }
    }
    for version in ((2023, 1), (2024, 1), (2025, 2), (2026, 1)):
        assert spell_for_version(parameters, version) == parameters
    new = spell_for_version(parameters, (2026, 2))
    printing = new['FORCE_EVAL']['DFT']['PRINT']
    assert 'PDOS' not in printing and printing['MO'] == {'EIGENVALUES': True}
    assert printing['DOS'] == {
        'NLUMO': 20,
        'FILENAME': 'pdos',
        'ADD_LAST': 'NUMERIC',
        'EACH': {'QS_SCF': 0},
        'LDOS': [{'LIST': ['1 2 3']}],
        'PDOS': {'COMPONENTS': False},
    }
    assert 'PDOS' in parameters['FORCE_EVAL']['DFT']['PRINT']  # the protocol's copy is left alone


def test_recorded_2026_run_directory_is_analysed():
    """The &DOS form's files (4-line .pdos header, Total column) of a real 2026.2 run, as the 2023.1 ones."""
    from aiida_nanohetero.analysis import read_pdos
    from aiida_nanohetero.cli import cli

    new = REPO / 'tests' / 'data' / 'cp2k' / 'cs4pbbr6_2026.2'
    old = REPO / 'tests' / 'data' / 'cp2k' / 'cs4pbbr6'
    for name in ('cube-pdos-k1-1.pdos', 'cube-pdos-list2-1.pdos'):
        a, b = read_pdos(new / name), read_pdos(old / name)
        assert a.components == b.components and a.kind == b.kind and a.list_index == b.list_index
        assert a.fermi_energy == pytest.approx(b.fermi_energy, abs=1e-6)
        # the same projection: per (near-)degenerate set (consecutive orbitals less than 1e-4 Ha apart: their
        # rotation is arbitrary), to a few times the printed digits
        assert abs(a.energies - b.energies).max() < 2e-6
        groups = np.concatenate([[0], np.cumsum(np.diff(b.energies) > 1e-4)])
        sums = [np.stack([w[groups == g].sum(axis=0) for g in range(groups.max() + 1)]) for w in (a.weights, b.weights)]
        assert abs(sums[0] - sums[1]).max() < 1e-6
    outputs = [CliRunner().invoke(cli, ['analyse', str(d)]).output for d in (new, old)]
    for output in outputs:
        assert 'cross-check against CP2K PDOS: max |deviation| = ' in output
    assert [line for line in outputs[0].splitlines() if 'gap' in line] == [
        line for line in outputs[1].splitlines() if 'gap' in line
    ]


def test_unknown_pdos_header_is_a_clear_error(tmp_path):
    from aiida_nanohetero.analysis import read_pdos
    from aiida_nanohetero.analysis.errors import PDOSFormatError

    path = tmp_path / 'x-pdos-k1-1.pdos'
    path.write_text('# Projected density for kind Pb\n# MO Energy Occupation s\n 1 -0.1 2.0 0.5\n')
    with pytest.raises(PDOSFormatError, match=r'not a \.pdos header of CP2K 2023\.1 to 2026\.2'):
        read_pdos(path)
    source = REPO / 'tests' / 'data' / 'cp2k' / 'cs4pbbr6_2026.2' / 'cube-pdos-k1-1.pdos'
    lines = source.read_text().splitlines(keepends=True)
    # a Total column that does not add up: refused, never a wrong number
    row = lines[4].split()
    row[3] = f'{float(row[3]) + 0.01:.8f}'
    path.write_text(''.join(lines[:4]) + '   ' + '   '.join(row) + '\n' + ''.join(lines[5:]))
    with pytest.raises(PDOSFormatError, match='Total column differs'):
        read_pdos(path)


@pytest.mark.parametrize('name', ['cp2k-debian13.sh', 'cp2k-2026.2.sh'])
def test_runner_scripts_are_executable(name):
    script = REPO / 'scripts' / name
    assert os.access(script, os.X_OK)
    assert subprocess.run(['bash', '-n', str(script)], check=False).returncode == 0


def test_geometry_steps_in_both_output_layouts():
    """2023.1's 'Informations at step' block and 2025.1/2026.2's 'OPT| Step number' lines (recorded outputs)."""
    from aiida_nanohetero.workflows.cp2k_base import geometry_progress, geometry_steps_done

    data = REPO / 'tests' / 'data' / 'cp2k'
    new = (data / 'geo_opt_2025.1' / 'water_steps.out').read_text()
    progress = geometry_progress(new)
    assert progress == {
        'step': 1,
        'energy': pytest.approx(-17.2198553648),
        'max_force': pytest.approx(0.0022572971),
        'max_force_limit': pytest.approx(4.5e-4),
    }
    start = new[: new.index('OPTIMIZATION STEP:      1')]
    assert geometry_steps_done(start) == 0 and geometry_progress(start)['max_force'] is None
    old = geometry_progress((data / 'geo_opt' / 'relax_steps.out').read_text())
    assert old['step'] == 1 and old['max_force'] == pytest.approx(0.0235347294)
    assert geometry_progress('no optimisation here') is None
