"""A real SLURM cluster: a computer set up from ``profiles/slurm-cluster.yaml``, CP2K through ``sbatch``, and a job
that SLURM kills at its walltime, continued by our restart work chain.

Needs a running single-node SLURM on this machine (``bash .ci/slurm.sh start``, which ``.ci/run`` does): skipped
without one, except in CI (``CI`` set), where that is a failure. The AiiDA computer uses ``core.slurm`` with the
local transport (the SSH part of the spec is checked in ``test_production.py`` without a cluster).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess

import pytest
import yaml
from aiida import orm

from aiida_nanohetero.profiles import SPEC_DIR, ProfileSpecError, load_spec

pytestmark = pytest.mark.slurm

#: Longest a test may wait for AiiDA + SLURM (a stuck submission pauses an AiiDA process instead of failing it).
TEST_TIMEOUT = 15 * 60


@pytest.fixture(scope='session')
def slurm_partition() -> str:
    """The default partition of the SLURM cluster on this machine, once its node is idle."""
    reason = None
    if shutil.which('sinfo') is None:
        reason = 'SLURM is not installed (bash .ci/slurm.sh install && bash .ci/slurm.sh start)'
    else:
        result = subprocess.run(['sinfo', '-h', '-o', '%P %T'], capture_output=True, text=True, check=False)
        rows = [line.split() for line in result.stdout.splitlines() if line.strip()]
        default = [partition.rstrip('*') for partition, state in rows if partition.endswith('*') and state == 'idle']
        if result.returncode != 0 or not default:
            reason = f'no idle SLURM node (bash .ci/slurm.sh start): {result.stderr.strip() or result.stdout.strip()}'
    if reason:
        if os.environ.get('CI'):
            pytest.fail(f'{reason}: .ci/run should have started SLURM')
        pytest.skip(reason)
    return default[0]


def write_cluster_spec(directory: pathlib.Path, partition: str, **changes) -> pathlib.Path:
    """``profiles/slurm-cluster.yaml`` filled in for the SLURM cluster on this machine (local transport)."""
    data = yaml.safe_load((SPEC_DIR / 'slurm-cluster.yaml').read_text())
    computer = data['computer']
    for key in ('username', 'key_filename', 'proxy_jump'):
        computer.pop(key)
    computer.update(
        {
            'label': 'slurm-ci',
            'description': 'single-node SLURM on this machine (tests)',
            'hostname': 'localhost',
            'transport': 'core.local',
            'use_login_shell': False,
            'safe_interval': 0,
            'partition': partition,
            'account': '',
            'cores_per_machine': 2,
            'mpiprocs_per_machine': 1,
            'memory_per_machine': '2GB',
            'work_dir': str(directory / 'scratch'),
            'job_poll_interval': 2,
            # no `module load` here: CP2K is Debian's; one thread per rank
            'prepend_text': 'export OMP_NUM_THREADS=1\n',
        }
    )
    computer.update(changes.pop('computer', {}))
    data['code'].update({'executable': 'cp2k.psmp', 'with_mpi': False, **changes.pop('code', {})})
    path = directory / 'slurm-ci.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope='module')
def slurm_setup(aiida_profile, slurm_partition, cp2k_executable, tmp_path_factory):
    """Computer and code set up exactly as ``nanohetero setup --computer`` does, checks included.

    Returns the code, the changes that setup reported and the path of the computer spec.
    """
    from aiida.manage.configuration import get_config

    from aiida_nanohetero.profiles.setup import apply_computer_spec

    # a rejected submission is retried with back-off and then pauses the process: fail fast instead
    config = get_config()
    for option, value in (('transport.task_maximum_attempts', 2), ('transport.task_retry_initial_interval', 1)):
        config.set_option(option, value, scope=aiida_profile.name)
    path = write_cluster_spec(tmp_path_factory.mktemp('slurm'), slurm_partition)
    changes = apply_computer_spec(load_spec(path, kind='computer'), aiida_profile.name)
    return orm.load_code('cp2k@slurm-ci'), changes, path


@contextlib.contextmanager
def time_limit(seconds: int):
    """Fail a test that waits longer than ``seconds`` on AiiDA instead of hanging the suite."""

    def expired(*_):
        raise TimeoutError(f'gave up after {seconds} s (see `squeue` and the AiiDA process reports)')

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _calcs(node) -> list[orm.CalcJobNode]:
    return sorted((n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)


def _submit_script(calc: orm.CalcJobNode) -> str:
    return calc.base.repository.get_object_content('_aiidasubmit.sh')


def test_setup_checks_the_cluster(slurm_setup):
    code, changes, _ = slurm_setup
    checks = {change.name: change for change in changes if change.item == 'check'}
    assert set(checks) == {'connection', 'work directory', 'partition', 'code executable'}
    assert 'accepted by sbatch --test-only' in checks['partition'].detail
    assert checks['code executable'].detail.endswith('cp2k.psmp')
    computer = code.computer
    assert (computer.scheduler_type, computer.transport_type) == ('core.slurm', 'core.local')
    assert computer.get_mpirun_command() == ['srun', '-n', '{tot_num_mpiprocs}']
    assert computer.get_default_memory_per_machine() == 2 * 1024**2


def test_setup_is_idempotent(slurm_setup, aiida_profile):
    from aiida_nanohetero.profiles.setup import apply_computer_spec

    _, _, path = slurm_setup
    again = apply_computer_spec(load_spec(path, kind='computer'), aiida_profile.name)
    assert {change.action for change in again if change.item != 'check'} == {'unchanged'}


def test_computer_needs_an_existing_profile(slurm_setup):
    from aiida_nanohetero.profiles.setup import apply_computer_spec

    _, _, path = slurm_setup
    with pytest.raises(ProfileSpecError, match=r'AiiDA profile "no-such-profile" does not exist'):
        apply_computer_spec(load_spec(path, kind='computer'), 'no-such-profile')


def test_unknown_partition_is_named(slurm_setup, aiida_profile, tmp_path):
    from aiida_nanohetero.profiles.setup import apply_computer_spec

    spec = load_spec(write_cluster_spec(tmp_path, 'no-such-partition', computer={'label': 'x'}), kind='computer')
    with pytest.raises(ProfileSpecError, match=r'computer\.partition "no-such-partition".*invalid partition'):
        apply_computer_spec(spec, aiida_profile.name)
    assert not orm.QueryBuilder().append(orm.Computer, filters={'label': 'x'}).count()


def test_missing_cp2k_on_the_cluster_is_named(slurm_setup, slurm_partition, aiida_profile, tmp_path):
    from aiida_nanohetero.profiles.setup import apply_computer_spec

    path = write_cluster_spec(
        tmp_path,
        slurm_partition,
        computer={'label': 'y', 'prepend_text': 'module load cp2k/2099 2>/dev/null || true\n'},
        code={'executable': '/opt/cp2k/bin/cp2k.psmp'},
    )
    with pytest.raises(ProfileSpecError, match=r'code\.executable "/opt/cp2k/bin/cp2k\.psmp" is not an executable'):
        apply_computer_spec(load_spec(path, kind='computer'), aiida_profile.name)
    assert not orm.QueryBuilder().append(orm.Computer, filters={'label': 'y'}).count()


@pytest.fixture(scope='module')
def slurm_single_point(slurm_setup):
    """The n = 1 CsPbBr3 cube (Cs4PbBr6), tiny protocol, through sbatch."""
    from aiida.engine import run_get_node

    from aiida_nanohetero.calcfunctions.builders import build_perovskite_cube
    from aiida_nanohetero.workflows.single_point import SinglePointWorkChain

    code, _, _ = slurm_setup
    model = build_perovskite_cube(n=orm.Int(1), halide=orm.Str('Br'))['structure']
    builder = SinglePointWorkChain.get_builder_from_protocol(code, model, protocol='tiny')
    with time_limit(TEST_TIMEOUT):
        _, node = run_get_node(builder)
    return node


def test_single_point_through_sbatch(slurm_single_point, slurm_partition):
    node = slurm_single_point
    assert node.is_finished_ok, node.exit_message
    (calc,) = _calcs(node)
    assert calc.computer.scheduler_type == 'core.slurm'
    assert calc.get_job_id().isdigit()
    script = _submit_script(calc)
    # the computer's defaults and the protocol's resources reach SLURM
    assert f'#SBATCH --partition={slurm_partition}' in script
    assert '#SBATCH --nodes=1' in script
    assert '#SBATCH --time=01:00:00' in script
    assert '#SBATCH --mem=2048' in script
    assert "export OMP_NUM_THREADS='1'" in script or 'export OMP_NUM_THREADS=1' in script
    # CP2K stops itself a few minutes before SLURM would kill it
    walltime = calc.inputs.parameters['GLOBAL']['WALLTIME']
    assert 3600 - 300 <= walltime <= 3600 - 60
    gap = node.outputs.orbitals.base.attributes.get('gap_ev')
    assert 0.5 < gap < 3.5


def _water_relaxation_killed_by_slurm(code, water_relaxation, geo_opt) -> dict:
    """Inputs of a Cp2kRestartWorkChain that relaxes a bent water molecule in jobs of 1 minute (SLURM's smallest
    time limit), with CP2K's own WALLTIME far beyond it: as when one SCF step outlasts the margin that
    ``GLOBAL/WALLTIME`` leaves, SLURM kills the job.

    EPS_SCF 1e-6 and an 11.7 Å box (5 Å of vacuum) make each geometry step cost some 10 s on an idle core, so a
    1-minute job does a few of them and the relaxation needs two or more jobs, each continuing from the last
    geometry, wavefunction and BFGS Hessian of the one before (thresholds: ``WATER_SPLIT_GEO_OPT`` in conftest)."""
    changes = {
        'GLOBAL': {'WALLTIME': 3600},
        'FORCE_EVAL': {'DFT': {'SCF': {'EPS_SCF': 1e-6}}},  # not the tiny relaxation's 1e-5: enough work per step
        'MOTION': {'GEO_OPT': geo_opt},
    }
    return water_relaxation(code, changes, max_iterations=10, box=5.0, options={'max_wallclock_seconds': 60})


@pytest.fixture(scope='module')
def walltime_killed_relaxation(slurm_setup, water_relaxation, water_split_geo_opt):
    from aiida.engine import run_get_node

    from aiida_nanohetero.workflows.cp2k_base import Cp2kRestartWorkChain

    code, _, _ = slurm_setup
    with time_limit(TEST_TIMEOUT):
        _, node = run_get_node(
            Cp2kRestartWorkChain, **_water_relaxation_killed_by_slurm(code, water_relaxation, water_split_geo_opt)
        )
    return node


def test_job_killed_at_walltime_is_continued_and_completes(walltime_killed_relaxation):
    from aiida.engine import CalcJob

    from aiida_nanohetero.workflows.cp2k_base import geometry_steps_done

    node = walltime_killed_relaxation
    assert node.is_finished_ok, node.exit_message
    calcs = _calcs(node)
    assert len(calcs) >= 2, 'the first job was not killed: the relaxation finished within one minute'
    first, second = calcs[0], calcs[1]
    # SLURM killed the first job, and AiiDA reports the scheduler's walltime exit code (not "output incomplete")
    assert first.exit_status == CalcJob.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME.status == 120
    stderr = first.outputs.retrieved.base.repository.get_object_content('_scheduler-stderr.txt')
    assert 'DUE TO TIME LIMIT' in stderr
    assert '#SBATCH --time=00:01:00' in _submit_script(first)
    killed_output = first.outputs.retrieved.base.repository.get_object_content('aiida.out')
    assert 'PROGRAM ENDED' not in killed_output
    assert geometry_steps_done(killed_output) >= 1
    # our handler continued it from the last geometry and wavefunction in the killed job's folder
    reports = [log.message for log in orm.Log.collection.get_logs_for(node)]
    assert any('killed by the scheduler at its walltime' in message for message in reports), reports
    assert second.inputs.parent_calc_folder.uuid == first.outputs.remote_folder.uuid
    restart = second.inputs.parameters.get_dict()
    assert restart['EXT_RESTART']['RESTART_FILE_NAME'] == './parent_calc/aiida-1.restart'
    assert restart['FORCE_EVAL']['DFT']['SCF']['SCF_GUESS'] == 'RESTART'
    assert restart['MOTION']['GEO_OPT']['BFGS']['RESTART_FILE_NAME'] == './parent_calc/aiida-BFGS.Hessian'
    assert restart['MOTION']['GEO_OPT']['BFGS']['RESTART_HESSIAN'] is True
    assert second.inputs.structure.uuid == first.outputs.output_structure.uuid
    # and the relaxation completed: a PBE water molecule
    assert calcs[-1].is_finished_ok
    final = node.outputs.output_structure.get_ase()
    assert sorted(final.get_distance(0, i) for i in (1, 2)) == pytest.approx([0.97, 0.97], abs=0.03)
