"""The production path: PostgreSQL + RabbitMQ profile, the daemon, a submitted campaign and a daemon restart; and
the profile/computer specs for a cluster, with their errors.

The tests marked ``services`` need PostgreSQL and RabbitMQ running on this machine (``nanohetero services start``,
which ``.ci/run`` does): skipped without them, except in CI (``CI`` set), where that is a failure. They create their
own profile (in a temporary ``AIIDA_PATH``), database and daemon, and remove them at the end. Everything goes
through the command line, as a user would run it; the results are read by a separate Python process, since this
test process has the suite's temporary SQLite profile loaded.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import secrets
import subprocess
import sys
import time

import pytest
import yaml

from aiida_nanohetero.profiles import SPEC_DIR, ProfileSpecError, available_specs, load_spec

NANOHETERO = [sys.executable, '-m', 'aiida_nanohetero.cli']
VERDI = [str(pathlib.Path(sys.executable).parent / 'verdi')]
#: The tiny campaign for one halide through the daemon: how long the test waits for it.
CAMPAIGN_TIMEOUT = 30 * 60
EXAMPLE = SPEC_DIR / 'examples' / 'national-cluster-128.yaml'


def run(command: list[str], env: dict, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert result.returncode == 0, f'{" ".join(command)}\n{result.stdout}\n{result.stderr}'
    return result


def user_env(aiida_path: pathlib.Path, **extra) -> dict:
    path = f'{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get("PATH", "")}'  # as if activated
    env = {**os.environ, 'PATH': path, 'AIIDA_PATH': str(aiida_path), 'OMP_NUM_THREADS': '1', **extra}
    env.pop('NANOHETERO_PROFILE', None)
    return env


def config(aiida_path: pathlib.Path) -> dict:
    path = aiida_path / '.aiida' / 'config.json'
    return json.loads(path.read_text()) if path.exists() else {}


def write_yaml(path: pathlib.Path, data: dict) -> pathlib.Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- the specs: production profile, cluster template and example ---------------------------------------------------


def test_production_spec(monkeypatch):
    monkeypatch.setenv('NANOHETERO_DB_PASSWORD', 's3cret')
    spec = load_spec('production')
    assert 'production' in available_specs()
    assert spec.profile['storage'] == 'core.psql_dos'
    assert spec.profile['broker'] == 'core.rabbitmq'
    assert spec.profile['storage_config']['database_password'] == 's3cret'  # from the environment, not the file
    assert '${NANOHETERO_DB_PASSWORD}' in (SPEC_DIR / 'production.yaml').read_text()
    assert spec.profile['options']['daemon.default_workers'] >= 1
    assert spec.computer is None and spec.code is None  # machines are added with `setup --computer`


def test_production_spec_without_the_password_says_which_variable(monkeypatch):
    monkeypatch.delenv('NANOHETERO_DB_PASSWORD', raising=False)
    with pytest.raises(ProfileSpecError, match=r'profile\.storage_config\.database_password uses .*NANOHETERO_DB_PASS'):
        load_spec('production')


def test_no_secret_in_the_shipped_specs():
    for path in [*SPEC_DIR.glob('*.yaml'), *SPEC_DIR.glob('examples/*.yaml')]:
        text = path.read_text()
        for match in re.finditer(r'(password|secret|token)\s*:\s*(\S+)', text, re.IGNORECASE):
            assert match.group(2).startswith('${') or match.group(2) == 'guest', f'{path.name}: {match.group(0)}'


def test_slurm_template_refuses_its_placeholders(tmp_path):
    assert 'slurm-cluster' in available_specs('computer')
    assert 'slurm-cluster' not in available_specs('profile')
    with pytest.raises(
        ProfileSpecError, match=r'computer\.label is still the placeholder "<cluster>": this is a template'
    ):
        load_spec('slurm-cluster', kind='computer')


def test_cluster_example_is_complete_and_commented():
    spec = load_spec(EXAMPLE, kind='computer')
    computer = spec.computer
    assert (computer['transport'], computer['scheduler']) == ('core.ssh', 'core.slurm')
    assert computer['partition'] and computer['account'] and computer['username'] and computer['key_filename']
    assert computer['cores_per_machine'] == computer['mpiprocs_per_machine'] == 128
    assert computer['memory_per_machine_kb'] == 224 * 1024**2
    assert computer['mpirun_command'] == 'srun -n {tot_num_mpiprocs}'
    assert 'module load' in computer['prepend_text']
    assert spec.code['with_mpi'] is True
    # every field is explained: a comment on the line above it (or on the same line)
    lines = EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r'^\s+[a-z_]+:', line):
            assert '#' in line or lines[number - 1].strip().startswith('#'), f'uncommented field: {line.strip()}'


def test_template_and_example_have_the_same_fields():
    template = yaml.safe_load((SPEC_DIR / 'slurm-cluster.yaml').read_text())
    example = yaml.safe_load(EXAMPLE.read_text())
    for section in ('computer', 'code', 'cp2k_data'):
        assert set(example[section]) == set(template[section]), section


def example_with(tmp_path: pathlib.Path, **computer) -> pathlib.Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data['computer'].update(computer)
    return write_yaml(tmp_path / 'cluster.yaml', data)


@pytest.mark.parametrize(
    ('changes', 'message'),
    [
        ({'mpi_launcher': 'aprun'}, 'computer.mpi_launcher must be one of srun, mpirun'),
        ({'memory_per_machine': 'lots'}, 'computer.memory_per_machine must be a memory size'),
        ({'cores_per_machine': 0}, 'computer.cores_per_machine must be a positive whole number'),
        ({'transport': 'core.ftp'}, 'computer.transport "core.ftp" is not supported'),
        ({'scheduler': 'core.direct'}, 'computer.partition is set, but computer.scheduler core.direct'),
        ({'transport': 'core.local'}, 'computer.username only applies to computer.transport core.ssh'),
        ({'key_policy': 'TrustAll'}, 'computer.key_policy must be one of'),
        ({'partition': '<partition>'}, 'computer.partition is still the placeholder'),
    ],
)
def test_bad_cluster_fields_are_named(tmp_path, changes, message):
    with pytest.raises(ProfileSpecError, match=re.escape(message)):
        load_spec(example_with(tmp_path, **changes), kind='computer')


def test_a_computer_file_given_as_profile_points_to_the_computer_option(tmp_path):
    path = write_yaml(tmp_path / 'only-computer.yaml', {'computer': {'label': 'c'}, 'code': {}})
    with pytest.raises(ProfileSpecError, match=r'missing required key\(s\) profile\.name .*--computer'):
        load_spec(path)


def test_cluster_computer_defaults_reach_every_job(aiida_profile):
    """Partition, account and node size of the computer spec go into the options the protocol builds; the paper
    protocol fills whole 128-core nodes from the model's size; CP2K's WALLTIME stays below the scheduler's."""
    from aiida import orm
    from ase import Atoms

    from aiida_nanohetero.profiles.setup import apply_computer_spec
    from aiida_nanohetero.workflows.single_point import SinglePointWorkChain

    apply_computer_spec(load_spec(EXAMPLE, kind='computer'), aiida_profile.name, check=False)
    code = orm.load_code('cp2k@national-cluster')
    # set up without connecting (check=False): the code's CP2K release is unknown and refused until it is given
    from aiida_nanohetero.workflows.cp2k_versions import CODE_VERSION_EXTRA, set_code_version

    assert CODE_VERSION_EXTRA not in code.base.extras.keys()
    set_code_version(code, '2025.2')  # as `nanohetero code-version cp2k@national-cluster 2025.2` does
    model = orm.StructureData(ase=Atoms('Cs' * 520, positions=[(4.0 * (i % 8), 4.0 * (i // 8 % 8), 4.0 * (i // 64))
                                                               for i in range(520)]))  # fmt: skip
    builder = SinglePointWorkChain.get_builder_from_protocol(code, model, protocol='paper')
    options = builder.cp2k.cp2k.metadata.options
    assert (options['queue_name'], options['account']) == ('standard', 'project_465000123')
    assert 'qos' not in options  # empty in the spec: the partition's default
    # 520 atoms / 4 atoms per rank = 130 ranks -> 2 nodes of 128 cores
    assert options['resources'] == {'num_machines': 2, 'num_mpiprocs_per_machine': 128, 'num_cores_per_mpiproc': 1}
    assert options['withmpi'] is True
    walltime = builder.cp2k.cp2k.parameters['GLOBAL']['WALLTIME']
    assert options['max_wallclock_seconds'] - 3 * 3600 < walltime < options['max_wallclock_seconds'] - 60
    # the user's options still win
    builder = SinglePointWorkChain.get_builder_from_protocol(
        code, model, protocol='paper', options={'queue_name': 'debug', 'resources': {'num_machines': 1}}
    )
    options = builder.cp2k.cp2k.metadata.options
    assert options['queue_name'] == 'debug' and options['resources']['num_machines'] == 1


# --- cluster checks that need no cluster: SSH errors name the field to fix -----------------------------------------


@pytest.mark.parametrize(
    ('changes', 'message'),
    [
        ({'key_filename': '~/.ssh/no-such-key'}, 'computer.key_filename "~/.ssh/no-such-key": no such file'),
        ({'hostname': 'login.nonexistent.invalid'}, 'computer.hostname "login.nonexistent.invalid" cannot be resolved'),
        ({'hostname': '127.0.0.1', 'port': 1}, 'cannot reach 127.0.0.1 on port 1'),
    ],
)
def test_cluster_connection_errors_name_the_field(tmp_path, changes, message):
    from aiida_nanohetero.profiles.setup import check_computer

    key = tmp_path / 'id_test'
    key.write_text('not a real key')
    spec = load_spec(example_with(tmp_path, **{'key_filename': str(key), **changes}), kind='computer')
    spec = spec.with_profile_name('test')
    started = time.monotonic()
    with pytest.raises(ProfileSpecError, match=re.escape(message)):
        check_computer(spec)
    assert time.monotonic() - started < 60


def test_setup_with_the_template_is_one_sentence(tmp_path):
    result = run([*NANOHETERO, 'setup', '--computer', 'slurm-cluster'], user_env(tmp_path), check=False)
    assert result.returncode != 0
    assert 'is still the placeholder' in result.stderr and 'Traceback' not in result.stderr
    assert config(tmp_path).get('profiles', {}) == {}


def test_setup_of_production_without_postgres_is_one_sentence(tmp_path):
    data = yaml.safe_load((SPEC_DIR / 'production.yaml').read_text())
    data['profile']['storage_config']['database_port'] = 1  # nothing listens there
    data['profile']['broker'] = 'none'  # (the broker is checked first)
    data['profile'].pop('broker_config')
    spec = write_yaml(tmp_path / 'prod.yaml', data)
    env = user_env(tmp_path, NANOHETERO_DB_PASSWORD='x')
    result = run([*NANOHETERO, 'setup', '--profile', str(spec)], env, check=False)
    assert result.returncode != 0
    assert 'PostgreSQL does not answer on localhost:1 (profile.storage_config' in result.stderr, result.stderr
    assert 'Traceback' not in result.stderr
    assert config(tmp_path).get('profiles', {}) == {}


def test_services_status_of_the_embedded_profile(tmp_path):
    """The embedded default needs no service, and says so."""
    spec = yaml.safe_load((SPEC_DIR / 'local.yaml').read_text())
    spec['profile']['broker'] = 'none'
    spec.pop('computer')
    spec.pop('code')
    path = write_yaml(tmp_path / 'embedded.yaml', spec)
    run([*NANOHETERO, 'setup', '--profile', str(path)], user_env(tmp_path))
    result = run([*NANOHETERO, 'services', 'status'], user_env(tmp_path))
    assert 'needs no service' in result.stdout


def test_verdi_config_files_are_accepted_by_verdi(tmp_path):
    """`setup --computer X --verdi-config DIR` writes files that verdi's own set-up commands accept."""
    spec = yaml.safe_load((SPEC_DIR / 'local.yaml').read_text())
    spec['profile']['broker'] = 'none'
    spec.pop('computer')
    spec.pop('code')
    env = user_env(tmp_path)
    run([*NANOHETERO, 'setup', '--profile', str(write_yaml(tmp_path / 'embedded.yaml', spec))], env)
    key = tmp_path / 'id_test'
    key.write_text('a key')  # verdi checks that the key file exists
    cluster = example_with(tmp_path, key_filename=str(key))
    written = run([*NANOHETERO, 'setup', '--computer', str(cluster), '--verdi-config', str(tmp_path / 'v')], env)
    commands = [line.strip() for line in written.stdout.splitlines() if line.strip().startswith('verdi ')]
    assert len(commands) == 3
    for command in commands:
        run(command.split(), env)
    shown = run([*VERDI, '-p', 'nanohetero', 'computer', 'show', 'national-cluster'], env).stdout
    assert 'core.slurm' in shown and 'srun -n {tot_num_mpiprocs}' in shown and 'module load cp2k' in shown
    configured = run([*VERDI, '-p', 'nanohetero', 'computer', 'configure', 'show', 'national-cluster'], env).stdout
    assert 'jdoe' in configured
    code = run([*VERDI, '-p', 'nanohetero', 'code', 'show', 'cp2k@national-cluster'], env).stdout
    assert 'cp2k.psmp' in code


# --- PostgreSQL + RabbitMQ + daemon, for real ----------------------------------------------------------------------


@pytest.fixture(scope='module')
def services_running():
    from aiida_nanohetero.profiles import services

    problems = []
    if not services.postgres_state().running:
        problems.append('PostgreSQL')
    if services.probe_rabbitmq() is not None:
        problems.append('RabbitMQ')
    if problems:
        message = f'{" and ".join(problems)} not running on this machine (nanohetero services start)'
        if os.environ.get('CI'):
            pytest.fail(f'{message}: .ci/run should have started them')
        pytest.skip(message)


@pytest.fixture(scope='module')
def production(services_running, cp2k_executable, tmp_path_factory):
    """A production-style profile made by `nanohetero setup --profile <production.yaml copy> --computer local`, in
    its own AIIDA_PATH with its own database; the daemon is stopped and the database dropped at the end."""
    from aiida_nanohetero.profiles import services

    aiida_path = tmp_path_factory.mktemp('aiida-production')
    suffix = secrets.token_hex(4)
    name = f'nanohetero-ci-{suffix}'
    data = yaml.safe_load((SPEC_DIR / 'production.yaml').read_text())
    data['profile']['name'] = name
    data['profile']['storage_config'].update(
        {'database_name': f'nanohetero_ci_{suffix}', 'database_username': f'nanohetero_ci_{suffix}'}
    )
    # one worker is plenty for three models on two cores; poll often: the jobs are short
    data['profile']['options'].update({'daemon.default_workers': 1, 'runner.poll.interval': 2})
    spec = write_yaml(aiida_path / 'production-ci.yaml', data)
    env = user_env(aiida_path, NANOHETERO_DB_PASSWORD=secrets.token_urlsafe(12))
    storage = {**data['profile']['storage_config'], 'database_password': env['NANOHETERO_DB_PASSWORD']}
    setup = run([*NANOHETERO, 'setup', '--profile', str(spec), '--computer', 'local'], env)
    try:
        yield {'name': name, 'env': env, 'spec': spec, 'setup': setup.stdout, 'aiida_path': aiida_path}
    finally:
        run([*VERDI, '-p', name, 'process', 'kill', '--all', '--force', '--timeout', '30'], env, check=False)
        run([*NANOHETERO, '-p', name, 'services', 'stop', '--service', 'daemon'], env, check=False)
        services.drop_database(storage)


INSPECT = r"""
import json, sys
from aiida import load_profile, orm
profile = load_profile(sys.argv[1])
node = orm.load_node(int(sys.argv[2]))
def state(n):
    return {'pk': n.pk, 'label': n.process_label, 'state': n.process_state.value if n.process_state else None,
            'exit_status': n.exit_status, 'exit_message': n.exit_message}
calcs = []
for calc in sorted((n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime):
    calcs.append({**state(calc), 'uuid': calc.uuid, 'job_id': calc.get_job_id(), 'calc_state': calc.get_state().value
                  if calc.get_state() else None, 'scheduler_state': calc.get_scheduler_state().value
                  if calc.get_scheduler_state() else None, 'retrieved': 'retrieved' in calc.outputs,
                  'computer': calc.computer.label, 'ctime': calc.ctime.timestamp(), 'mtime': calc.mtime.timestamp()})
def geometry_chain(structure):
    # creators from the structure a CP2K calculation used back to the model builder: relaxation steps, box, build
    chain = []
    while structure.creator is not None:
        creator = structure.creator
        chain.append(creator.process_label)
        if creator.process_label == 'Cp2kCalculation':
            structure = creator.inputs.structure
        elif creator.process_label == 'place_in_cubic_box':
            structure = creator.inputs.structure
        else:
            break
    return chain
models = {}
if node.is_finished_ok and 'models' in node.outputs:
    for key in node.outputs.models:
        outputs = node.outputs.models[key]
        orbitals = outputs['orbitals']
        calc = orbitals.creator.inputs.retrieved.creator
        models[key] = {
            'outputs': sorted(outputs),
            'gap_ev': orbitals.base.attributes.get('gap_ev'),
            'orbitals_creator': orbitals.creator.process_label,
            'calc_label': calc.process_label,
            'calc_uuid': calc.uuid,
            'calc_geometry_chain': geometry_chain(calc.inputs.structure),
            'model_chain': geometry_chain(outputs['structure']),
        }
print(json.dumps({
    **state(node), 'storage': profile.storage_backend, 'broker': profile.process_control_backend,
    'calcs': calcs, 'processes': [state(n) for n in node.called_descendants], 'models': models,
    'descendant_uuids': [n.uuid for n in node.called_descendants],
}))
"""


def inspect(production, pk: int) -> dict:
    result = run([sys.executable, '-c', INSPECT, production['name'], str(pk)], production['env'])
    return json.loads(result.stdout)


def wait_for(production, pk: int, predicate, timeout: float, interval: float = 5) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        report = inspect(production, pk)
        if predicate(report):
            return report
        if time.monotonic() > deadline:
            log = run([*VERDI, '-p', production['name'], 'process', 'report', str(pk)], production['env'], check=False)
            pytest.fail(f'gave up waiting after {timeout:.0f} s: {json.dumps(report)[:2000]}\n{log.stdout[-3000:]}')
        time.sleep(interval)


def daemon_pid(production) -> int | None:
    result = run([*NANOHETERO, '-p', production['name'], 'services', 'status', '--service', 'daemon'],
                 production['env'], check=False)  # fmt: skip
    match = re.search(r'pid (\d+)', result.stdout)
    return int(match.group(1)) if match else None


@pytest.fixture(scope='module')
def submitted_campaign(production):
    """`nanohetero run --submit --no-relax` of the tiny campaign for Br to the daemon; the daemon is stopped and
    started again while a CP2K job of the campaign runs; then wait for the campaign to finish.

    Single points only (``--no-relax``): the relaxations of the same campaign run end to end in ``test_campaign.py``
    on the embedded profile, and a second relaxed campaign would add ~20 minutes to CI on 2 cores."""
    name, env = production['name'], production['env']
    started = run([*NANOHETERO, '-p', name, 'services', 'start', '--service', 'daemon'], env)
    assert 'started' in started.stdout, started.stdout
    first_daemon = daemon_pid(production)
    submitted = run(
        [*NANOHETERO, '-p', name, 'run', '--protocol', 'tiny', '--halides', 'Br', '--no-relax', '--submit'], env
    )
    pk = int(re.search(r'HeterostructureCampaignWorkChain<(\d+)>', submitted.stdout).group(1))

    def cp2k_running(report):
        return any(calc['scheduler_state'] == 'running' for calc in report['calcs']) or report['state'] in (
            'finished',
            'excepted',
            'killed',
        )

    before = wait_for(production, pk, cp2k_running, timeout=10 * 60, interval=2)
    running = [calc for calc in before['calcs'] if calc['scheduler_state'] == 'running']
    assert running, f'the campaign ended before a CP2K job ran: {before}'
    stopped = run([*NANOHETERO, '-p', name, 'services', 'stop', '--service', 'daemon'], env)
    assert 'stopped' in stopped.stdout, stopped.stdout
    time.sleep(5)  # the CP2K job keeps running without the daemon
    run([*NANOHETERO, '-p', name, 'services', 'start', '--service', 'daemon'], env)
    second_daemon = daemon_pid(production)
    restarted_at = time.time()

    final = wait_for(production, pk, lambda r: r['state'] in ('finished', 'excepted', 'killed'), CAMPAIGN_TIMEOUT, 10)
    status = run([*NANOHETERO, '-p', name, 'status', str(pk)], env, check=False)
    return {
        'pk': pk,
        'before': before,
        'running': running,
        'final': final,
        'daemons': (first_daemon, second_daemon),
        'restarted_at': restarted_at,
        'status': status.stdout + status.stderr,
    }


@pytest.mark.services
def test_production_profile_uses_postgres_and_rabbitmq(production):
    assert 'created (storage core.psql_dos, broker core.rabbitmq)' in production['setup']
    assert re.search(r'database\s+nanohetero_ci_\w+\s+created', production['setup']), production['setup']
    profile = config(production['aiida_path'])['profiles'][production['name']]
    assert profile['storage']['backend'] == 'core.psql_dos'
    assert profile['process_control']['backend'] == 'core.rabbitmq'
    again = run([*NANOHETERO, 'setup', '--profile', str(production['spec']), '--computer', 'local'], production['env'])
    assert 'Nothing to do' in again.stdout, again.stdout
    status = run([*NANOHETERO, '-p', production['name'], 'services', 'status'], production['env'], check=False)
    assert 'postgresql  running' in status.stdout and 'rabbitmq    running' in status.stdout, status.stdout


@pytest.mark.services
def test_submitted_campaign_finishes_with_results(submitted_campaign):
    final = submitted_campaign['final']
    assert final['state'] == 'finished' and final['exit_status'] == 0, json.dumps(final)[:3000]
    assert (final['storage'], final['broker']) == ('core.psql_dos', 'core.rabbitmq')
    assert set(final['models']) == {'half_sphere', 'cube_Br', 'heterostructure_Br'}
    for key, model in final['models'].items():
        assert {'structure', 'output_parameters', 'orbitals', 'ipr', 'summary'} <= set(model['outputs']), key
        assert 0.0 < model['gap_ev'] < 5.0, key
    assert 'done' in submitted_campaign['status'], submitted_campaign['status']


@pytest.mark.services
def test_submitted_campaign_provenance(submitted_campaign):
    """Each model's orbitals come from a CP2K calculation of this campaign, run on the profile's computer, on the
    boxed model that a builder calcfunction made."""
    final = submitted_campaign['final']
    calcs = {calc['uuid']: calc for calc in final['calcs']}
    builders = ('build_perovskite_cube', 'build_half_sphere', 'build_heterostructure')
    for key, model in final['models'].items():
        assert model['orbitals_creator'] == 'parse_orbitals', key
        assert model['calc_label'] == 'Cp2kCalculation', key
        assert model['calc_uuid'] in final['descendant_uuids'], key
        assert calcs[model['calc_uuid']]['computer'] == 'localhost'
        # the single point ran on the model in its cubic box: cubic box <- builder calcfunction
        chain = model['calc_geometry_chain']
        assert chain[0] == 'place_in_cubic_box' and chain[1] in builders and len(chain) == 2, (key, chain)
        assert model['model_chain'] == chain, (key, model['model_chain'])


@pytest.mark.services
def test_daemon_restart_during_a_cp2k_job_loses_nothing(submitted_campaign):
    first_daemon, second_daemon = submitted_campaign['daemons']
    assert first_daemon and second_daemon and first_daemon != second_daemon
    final = submitted_campaign['final']
    assert final['state'] == 'finished' and final['exit_status'] == 0
    by_uuid = {calc['uuid']: calc for calc in final['calcs']}
    for running in submitted_campaign['running']:
        after = by_uuid[running['uuid']]
        # the job that ran through the restart was picked up again, not resubmitted: same job, retrieved, parsed
        assert after['job_id'] == running['job_id']
        assert after['retrieved'] and after['state'] == 'finished'
        assert after['mtime'] > submitted_campaign['restarted_at']
    job_ids = [calc['job_id'] for calc in final['calcs']]
    assert len(job_ids) == len(set(job_ids)), 'a job was submitted twice'
    assert all(calc['retrieved'] for calc in final['calcs'])
    assert not [p for p in final['processes'] if p['state'] in ('excepted', 'killed', 'waiting', 'running')]


@pytest.mark.services
def test_missing_database_or_broker_is_one_sentence(production, tmp_path):
    """A profile whose database does not answer: `nanohetero status` says what to start, without a traceback; one
    whose broker does not answer: the same for `nanohetero run --submit`."""
    import copy

    data = config(production['aiida_path'])
    profile = data['profiles'][production['name']]
    no_database = copy.deepcopy(profile)
    no_database['storage']['config']['database_port'] = 1
    no_broker = copy.deepcopy(profile)
    no_broker['process_control']['config']['broker_port'] = 1
    data['profiles'] = {
        'no-database': {**no_database, 'PROFILE_UUID': secrets.token_hex(16)},
        'no-broker': {**no_broker, 'PROFILE_UUID': secrets.token_hex(16)},
    }
    data.pop('default_profile', None)
    (tmp_path / '.aiida').mkdir()
    (tmp_path / '.aiida' / 'config.json').write_text(json.dumps(data))
    env = user_env(tmp_path)

    result = run([*NANOHETERO, '-p', 'no-database', 'status'], env, check=False)
    assert result.returncode != 0
    assert 'the PostgreSQL database of profile no-database' in result.stderr, result.stderr
    assert 'nanohetero services start' in result.stderr and 'Traceback' not in result.stderr

    result = run([*NANOHETERO, '-p', 'no-broker', 'run', '--protocol', 'tiny', '--submit'], env, check=False)
    assert result.returncode != 0
    assert 'RabbitMQ, the broker of profile no-broker, does not answer' in result.stderr, result.stderr
    assert 'nanohetero services start' in result.stderr and 'Traceback' not in result.stderr


@pytest.mark.services
def test_setup_without_rabbitmq_is_one_sentence(services_running, tmp_path):
    data = yaml.safe_load((SPEC_DIR / 'production.yaml').read_text())
    data['profile']['broker_config']['broker_port'] = 1
    spec = write_yaml(tmp_path / 'prod.yaml', data)
    result = run([*NANOHETERO, 'setup', '--profile', str(spec)], user_env(tmp_path, NANOHETERO_DB_PASSWORD='x'),
                 check=False)  # fmt: skip
    assert result.returncode != 0
    assert 'RabbitMQ does not answer (nothing listens on 127.0.0.1:1' in result.stderr, result.stderr
    assert 'Traceback' not in result.stderr
    assert config(tmp_path).get('profiles', {}) == {}
