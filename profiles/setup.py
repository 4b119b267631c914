"""Create or update the AiiDA profile, computer, code and CP2K data nodes that a profile spec describes.

:func:`apply_spec` is idempotent: applied twice, the second run changes nothing and reports every item as
``unchanged``. Everything that can fail is checked before anything is created (the CP2K executable, the data
files, a clash with an existing profile of another kind), and a profile created by a run that then fails is
removed again, so nothing half-created is left behind.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import pathlib
import shlex
import subprocess
from typing import Any

from aiida_nanohetero.profiles import ProfileSpec, ProfileSpecError

__all__ = (
    'CODE_EXTRA',
    'JOB_DEFAULTS',
    'Change',
    'aiida_config_dir',
    'apply_computer_spec',
    'apply_spec',
    'check_computer',
    'computer_job_defaults',
    'cp2k_version',
    'find_setup_code',
    'setup_code',
    'setup_computer',
    'write_verdi_config',
)

#: Extra set on the code that ``nanohetero setup`` created, so other commands find it without a label.
CODE_EXTRA = 'nanohetero_setup'
#: Computer property with the defaults of every job on it (partition, account, QOS, cores per node), from the spec.
JOB_DEFAULTS = 'nanohetero_job_defaults'


@dataclasses.dataclass
class Change:
    """What :func:`apply_spec` did to one item."""

    item: str  # 'profile', 'computer', 'code', 'basis', 'potential', 'default profile'
    name: str
    action: str  # 'created', 'updated', 'unchanged'
    detail: str = ''

    def __str__(self) -> str:
        detail = f' ({self.detail})' if self.detail else ''
        return f'{self.item:<16} {self.name:<32} {self.action}{detail}'


def aiida_config_dir() -> pathlib.Path:
    """AiiDA's configuration folder, as selected by ``AIIDA_PATH`` (default ``~/.aiida``)."""
    from aiida.manage.configuration.settings import AiiDAConfigDir

    return pathlib.Path(AiiDAConfigDir.get())


def cp2k_version(executable: str | pathlib.Path) -> str:
    """The version line that ``cp2k --version`` prints, or a short reason why it could not be obtained."""
    try:
        result = subprocess.run([str(executable), '--version'], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exception:
        return f'unavailable ({exception.__class__.__name__}: {exception})'
    for line in result.stdout.splitlines():
        if 'CP2K version' in line:
            return line.strip()
    return f'unknown (exit status {result.returncode})'


def find_setup_code(label: str | None = None):
    """The CP2K code to use: by label (``cp2k`` or ``cp2k@localhost``), else the one ``nanohetero setup`` made."""
    from aiida import orm
    from aiida.common import exceptions

    if label:
        try:
            return orm.load_code(label)
        except (exceptions.NotExistent, exceptions.MultipleObjectsError) as exception:
            raise ProfileSpecError(f'code "{label}": {exception}; list codes with `verdi code list`.') from None
    query = (
        orm.QueryBuilder()
        .append(orm.InstalledCode, filters={'extras': {'has_key': CODE_EXTRA}}, tag='code')
        .order_by({'code': {'ctime': 'desc'}})
    )
    for (code,) in query.iterall():
        if not code.is_hidden:
            return code
    raise ProfileSpecError('this profile has no CP2K code from `nanohetero setup`: run `nanohetero setup` first.')


def apply_spec(spec: ProfileSpec, *, set_default: bool = False, check: bool = True) -> list[Change]:
    """Create or update what ``spec`` describes. Returns the list of changes (all ``unchanged`` on a re-run).

    :param check: for a computer with a batch scheduler or a remote transport, first connect to it and check the
        work directory, the partition/account/QOS and the CP2K executable (see :func:`check_computer`).
    """
    from aiida.manage.configuration import create_profile, get_config, load_profile

    # 1. Checks that need no AiiDA object: nothing is created unless all of them pass.
    executable = spec.resolve_executable() if spec.code is not None else None
    data_files = spec.resolve_cp2k_data()
    config = get_config(create=True)
    name = spec.profile['name']
    changes: list[Change] = []
    checks = check_computer(spec) if check and spec.computer is not None and _needs_remote_checks(spec) else []
    changes.extend(Change('check', what, 'ok', detail) for what, detail in checks)
    storage_config = _storage_config(spec)
    changes.extend(_check_services(spec, storage_config))

    if name in config.profile_names:
        existing = config.get_profile(name)
        wanted = (spec.profile['storage'], _broker(spec))
        found = (existing.storage_backend, existing.process_control_backend)
        if found != wanted:
            raise ProfileSpecError(
                f'AiiDA profile "{name}" already exists with storage {found[0]} and broker {found[1] or "none"}, '
                f'but {spec.source.name} asks for {wanted[0]} and {wanted[1] or "none"}: choose another name with '
                f'--profile-name, or delete the old profile with `verdi profile delete {name}`.'
            )
        changes.append(Change('profile', name, 'unchanged', f'storage {found[0]}, broker {found[1] or "none"}'))
        created_profile = False
    else:
        broker_backend = _broker(spec)
        broker_config = spec.profile['broker_config'] or None
        if broker_backend is not None and broker_config is None:
            from aiida.plugins import BrokerFactory

            broker_config = BrokerFactory(broker_backend).get_default_config()
        try:
            create_profile(
                config,
                name=name,
                email=spec.profile['email'],
                storage_backend=spec.profile['storage'],
                storage_config=storage_config,
                broker_backend=broker_backend,
                broker_config=broker_config,
            )
        except Exception as exception:
            if spec.profile['storage'] != 'core.psql_dos':
                raise
            raise ProfileSpecError(
                f'the storage of profile "{name}" could not be initialised in PostgreSQL '
                f'({type(exception).__name__}: {str(exception).strip().splitlines()[-1]}): check '
                f'profile.storage_config in {spec.source}.'
            ) from None
        created_profile = True
        changes.append(
            Change('profile', name, 'created', f'storage {spec.profile["storage"]}, broker {broker_backend or "none"}')
        )

    try:
        for option, value in spec.profile['options'].items():
            if config.get_option(option, scope=name, default=False) != value:
                config.set_option(option, value, scope=name)
                if not created_profile:
                    changes.append(Change('profile option', option, 'updated', f'now {value!r}'))
        if set_default and config.default_profile_name != name:
            config.set_default_profile(name, overwrite=True)
            changes.append(Change('default profile', name, 'updated'))
        config.store()

        load_profile(name, allow_switch=True)
        if spec.computer is not None:
            computer = setup_computer(spec, changes)
            setup_code(spec, computer, executable, changes, read_version=check)
        from aiida_nanohetero.workflows.cp2k_files import store_cp2k_data_file

        for role, path in data_files.items():
            node, created = store_cp2k_data_file(path, role)
            changes.append(Change(role, path.name, 'created' if created else 'unchanged', f'pk {node.pk}, {path}'))
    except Exception:
        if created_profile:  # leave nothing half-created behind
            _unload_profile()
            config.delete_profile(name, delete_storage=True)
            config.store()
        raise
    return changes


def _broker(spec: ProfileSpec) -> str | None:
    broker = spec.profile['broker']
    return None if broker == 'none' else broker


def _storage_config(spec: ProfileSpec) -> dict[str, Any]:
    """The storage config to create the profile with; ``core.psql_dos`` gets a repository folder by default."""
    config = dict(spec.profile['storage_config'])
    if spec.profile['storage'] == 'core.psql_dos':
        config.setdefault('database_hostname', 'localhost')
        config.setdefault('database_port', 5432)
        config.setdefault('repository_uri', f'file://{aiida_config_dir() / "repository" / spec.profile["name"]}')
    return config


def _check_services(spec: ProfileSpec, storage_config: dict[str, Any]) -> list[Change]:
    """The broker and the database the spec asks for must answer; create the database and its role if needed."""
    from aiida_nanohetero.profiles import services

    changes = []
    if spec.profile['broker'] == 'core.rabbitmq':
        reason = services.probe_rabbitmq(spec.profile['broker_config'])
        if reason is not None:
            state = services.rabbitmq_state(spec.profile['broker_config'])
            raise ProfileSpecError(
                f'RabbitMQ does not answer ({reason}; profile.broker_config in {spec.source.name}): '
                f'{state.hint or "start it with `nanohetero services start`"}.'
            )
    if spec.profile['storage'] == 'core.psql_dos':
        where = f'{storage_config["database_hostname"]}:{storage_config["database_port"]}'
        reason = services.probe_postgres(storage_config)
        if reason is not None:
            state = services.postgres_state(storage_config['database_hostname'], storage_config['database_port'])
            if not state.running:
                raise ProfileSpecError(
                    f'PostgreSQL does not answer on {where} (profile.storage_config in {spec.source.name}): '
                    f'{state.detail}; {state.hint or "start it"}.'
                )
            created = services.ensure_database(storage_config)
            reason = services.probe_postgres(storage_config)
            if reason is not None:
                raise ProfileSpecError(
                    f'cannot log in to PostgreSQL database "{storage_config["database_name"]}" on {where} as '
                    f'"{storage_config["database_username"]}": {reason}. Check profile.storage_config '
                    f'(database_username, database_password) in {spec.source.name}.'
                )
            if created:
                changes.append(Change('database', storage_config['database_name'], 'created', f'{created} on {where}'))
    return changes


def _needs_remote_checks(spec: ProfileSpec) -> bool:
    return spec.is_remote or spec.computer['scheduler'] != 'core.direct'


def apply_computer_spec(spec: ProfileSpec, profile_name: str, *, check: bool = True) -> list[Change]:
    """Add or update the computer, its CP2K code and the CP2K data files of a computer spec in an existing profile.

    :param check: first connect to the computer and check it (see :func:`check_computer`); nothing is created
        unless every check passes.
    """
    from aiida.manage.configuration import get_config, load_profile

    config = get_config(create=True)
    if profile_name not in config.profile_names:
        raise ProfileSpecError(
            f'AiiDA profile "{profile_name}" does not exist: create it first (`nanohetero setup --profile production`)'
            ', or choose another with `nanohetero -p NAME setup --computer ...`.'
        )
    spec = spec.with_profile_name(profile_name)
    executable = spec.resolve_executable()
    data_files = spec.resolve_cp2k_data()
    changes = [Change('check', what, 'ok', detail) for what, detail in (check_computer(spec) if check else [])]
    profile = load_profile(profile_name, allow_switch=True)
    from aiida_nanohetero.profiles import services

    problem = services.check_storage(profile)
    if problem:
        raise ProfileSpecError(problem)
    computer = setup_computer(spec, changes)
    setup_code(spec, computer, executable, changes, read_version=check)
    from aiida_nanohetero.workflows.cp2k_files import store_cp2k_data_file

    for role, path in data_files.items():
        node, created = store_cp2k_data_file(path, role)
        changes.append(Change(role, path.name, 'created' if created else 'unchanged', f'pk {node.pk}, {path}'))
    return changes


def computer_job_defaults(code) -> tuple[dict[str, Any], int | None]:
    """The job options (``queue_name``, ``account``, ``qos``) and cores per node that ``nanohetero setup`` stored on
    the code's computer from its spec (``partition``, ``account``, ``qos``, ``cores_per_machine``)."""
    computer = getattr(code, 'computer', None)
    if computer is None:
        return {}, None
    defaults = computer.get_property(JOB_DEFAULTS, None) or {}
    options = {key: defaults[key] for key in ('queue_name', 'account', 'qos') if defaults.get(key)}
    return options, defaults.get('cores_per_machine')


def _job_defaults(spec: ProfileSpec) -> dict[str, Any]:
    computer = spec.computer
    defaults = {'queue_name': computer['partition'], 'account': computer['account'], 'qos': computer['qos']}
    defaults['cores_per_machine'] = computer['cores_per_machine']
    return {key: value for key, value in defaults.items() if value}


def _auth_params(spec: ProfileSpec) -> dict[str, Any]:
    """Transport parameters of the computer (``verdi computer configure``), the SSH ones completed from
    ``~/.ssh/config`` where the spec leaves them empty."""
    computer = spec.computer
    params: dict[str, Any] = {
        'safe_interval': float(computer['safe_interval']),
        'use_login_shell': bool(computer['use_login_shell']),
    }
    if computer['transport'] == 'core.ssh':
        from aiida.transports.plugins.ssh import parse_sshconfig

        ssh_config = parse_sshconfig(computer['hostname'])
        identity = (ssh_config.get('identityfile') or [''])[0]
        key = computer['key_filename'] or (identity if os.path.exists(os.path.expanduser(identity)) else '')
        params.update(
            {
                'username': computer['username'] or ssh_config.get('user') or getpass.getuser(),
                'port': int(computer['port']),
                'look_for_keys': True,
                'key_filename': os.path.expanduser(key) if key else '',
                'timeout': 60,
                'allow_agent': True,
                'proxy_jump': computer['proxy_jump'] or ssh_config.get('proxyjump', ''),
                'compress': True,
                'load_system_host_keys': True,
                'key_policy': computer['key_policy'],
            }
        )
    return params


def check_computer(spec: ProfileSpec) -> list[tuple[str, str]]:
    """Connect to the computer of ``spec`` and check what the first job would need; nothing is stored.

    Checks, each failure naming the YAML field to fix: the SSH key file exists; the host answers and accepts the
    login; the work directory can be created; the scheduler accepts the partition, account and QOS (SLURM:
    ``sbatch --test-only``); the CP2K executable is found after the computer's and the code's ``prepend_text``
    (``module load ...``). Returns ``(what, detail)`` for each passed check.
    """
    source = spec.source.name
    computer = spec.computer
    if '{aiida_dir}' in computer['work_dir'] and spec.is_remote:
        raise ProfileSpecError(
            f'{source}: computer.work_dir "{computer["work_dir"]}" uses {{aiida_dir}}, a folder on this machine: '
            'give a folder on the cluster, e.g. /scratch/{username}/aiida.'
        )
    params = _auth_params(spec)
    hostname = computer['hostname']
    if computer['transport'] == 'core.ssh':
        key = params['key_filename']
        if computer['key_filename'] and not os.path.isfile(key):
            raise ProfileSpecError(
                f'{source}: computer.key_filename "{computer["key_filename"]}": no such file on this machine. Create '
                f'a key (`ssh-keygen -t ed25519`), install it on {hostname} (`ssh-copy-id -i KEY {params["username"]}@'
                f"{hostname}`, or the cluster's key portal), or fix the path."
            )
    checks: list[tuple[str, str]] = []
    from aiida.plugins import TransportFactory

    transport = TransportFactory(computer['transport'])(machine=hostname, **params)
    try:
        transport.open()
    except Exception as exception:
        raise ProfileSpecError(_connection_error(spec, params, exception)) from None
    try:
        user = transport.whoami()
        login = f'{user}@{hostname} ({computer["transport"]})'
        checks.append(('connection', login))
        checks.append(('work directory', _check_work_dir(spec, transport, user)))
        if computer['scheduler'] == 'core.slurm':
            checks.append(('partition', _check_slurm(spec, transport)))
        checks.append(('code executable', _check_executable(spec, transport)))
    finally:
        transport.close()
    return checks


def _connection_error(spec: ProfileSpec, params: dict[str, Any], exception: Exception) -> str:
    import socket

    computer, source = spec.computer, spec.source.name
    host, port, user = computer['hostname'], params.get('port', 22), params.get('username', '')
    text = f'{type(exception).__name__}: {exception}'.strip()
    if isinstance(exception, socket.gaierror):
        return (
            f'{source}: computer.hostname "{host}" cannot be resolved ({exception.strerror}): give the full name of '
            'the login node (AiiDA does not use Host aliases from ~/.ssh/config).'
        )
    name = type(exception).__name__
    if name in ('AuthenticationException', 'BadAuthenticationType', 'PasswordRequiredException'):
        return (
            f'{source}: {user}@{host} refused the login ({text}): check computer.username and computer.key_filename '
            f'(the key must be installed on {host}; an encrypted key needs ssh-agent), then try `ssh {user}@{host}`.'
        )
    if 'not found in known_hosts' in str(exception) or name == 'BadHostKeyException':
        return (
            f'{source}: the host key of {host} is unknown here ({text}): log in once by hand (`ssh {user}@{host}`) '
            'to accept it, or set computer.key_policy: AutoAddPolicy.'
        )
    if isinstance(exception, (TimeoutError, ConnectionError, OSError)) or name == 'NoValidConnectionsError':
        return (
            f'{source}: cannot reach {host} on port {port} ({text}): check computer.hostname, computer.port and '
            'computer.proxy_jump, and that this machine can reach the cluster (VPN, firewall).'
        )
    return f'{source}: cannot connect to {host} as {user} ({text}): check the computer section of the spec.'


def _run(transport, command: str) -> tuple[int, str, str]:
    retval, stdout, stderr = transport.exec_command_wait(command)
    return retval, stdout.strip(), stderr.strip()


def _check_work_dir(spec: ProfileSpec, transport, user: str) -> str:
    work_dir = _computer_fields(spec)['workdir'].replace('{username}', user)
    retval, _, stderr = _run(transport, f'mkdir -p {shlex.quote(work_dir)} && test -w {shlex.quote(work_dir)}')
    if retval != 0:
        raise ProfileSpecError(
            f'{spec.source.name}: computer.work_dir "{work_dir}" cannot be created or written on '
            f"{spec.computer['hostname']} ({stderr or f'exit status {retval}'}): use a folder on the cluster's "
            'scratch or work file system that you can write.'
        )
    return work_dir


def _check_slurm(spec: ProfileSpec, transport) -> str:
    computer, source = spec.computer, spec.source.name
    request = ['sbatch', '--test-only', '--nodes=1', '--time=1', '--job-name=nanohetero-setup-check']
    for key, flag in (('partition', '--partition'), ('account', '--account'), ('qos', '--qos')):
        if computer[key]:
            request.append(f'{flag}={computer[key]}')
    command = ' '.join(shlex.quote(part) for part in request) + ' --wrap=true'
    retval, stdout, stderr = _run(transport, command)
    message = f'{stdout} {stderr}'.strip()
    if retval == 127 or 'command not found' in stderr:
        raise ProfileSpecError(
            f'{source}: computer.scheduler is core.slurm, but `sbatch` is not found on {computer["hostname"]}: '
            "is this the cluster's login node, and does it use SLURM? (computer.hostname, computer.scheduler)"
        )
    if retval != 0:
        lowered = message.lower()
        field = 'partition, computer.account or computer.qos'
        for key, words in (('partition', ('partition',)), ('account', ('account',)), ('qos', ('qos',))):
            if any(word in lowered for word in words):
                field = key
                break
        value = computer[field] if field in computer else ''
        shown = f' "{value}"' if value else ''
        raise ProfileSpecError(
            f'{source}: SLURM on {computer["hostname"]} rejects a job with computer.{field}{shown}: {message}. '
            'See `sinfo -s` (partitions) and `sacctmgr show assoc user=$USER` (accounts, QOS) on the cluster.'
        )
    summary = computer['partition'] or 'default partition'
    extras = ', '.join(f'{key} {computer[key]}' for key in ('account', 'qos') if computer[key])
    return f'{summary}{", " + extras if extras else ""} accepted by sbatch --test-only'


def _check_executable(spec: ProfileSpec, transport) -> str:
    computer, code, source = spec.computer, spec.code, spec.source.name
    executable = code['executable']
    preamble = '\n'.join(text for text in (computer['prepend_text'], code['prepend_text']) if text)
    if os.path.isabs(executable):
        probe = f'test -x {shlex.quote(executable)} && echo {shlex.quote(executable)}'
    else:
        probe = f'command -v {shlex.quote(executable)}'
    # one script in the transport's (login) shell, so that `module` is defined as in a job
    retval, stdout, stderr = _run(transport, f'{preamble}\n{probe}' if preamble else probe)
    if retval != 0 or not stdout:
        after = ' after computer.prepend_text and code.prepend_text' if preamble else ''
        detail = f': {stderr.splitlines()[-1]}' if stderr else ''
        raise ProfileSpecError(
            f'{source}: code.executable "{executable}" is not an executable on {computer["hostname"]}{after}{detail}. '
            'Fix code.executable (an absolute path, or the name that `module load ...` puts on PATH) or the '
            '`module load` lines in the prepend_text; `module avail cp2k` on the cluster lists the modules.'
        )
    return stdout.splitlines()[-1]


def _unload_profile() -> None:
    from aiida.manage import get_manager

    get_manager().unload_profile()


def _computer_fields(spec: ProfileSpec) -> dict[str, Any]:
    computer = spec.computer
    # {username} stays: AiiDA replaces it with the user name on the computer when a job runs
    work_dir = computer['work_dir'].format(
        aiida_dir=aiida_config_dir(), profile=spec.profile['name'], username='{username}'
    )
    return {
        'hostname': computer['hostname'],
        'description': computer['description'],
        'transport_type': computer['transport'],
        'scheduler_type': computer['scheduler'],
        'workdir': work_dir,
        'mpirun_command': shlex.split(computer['mpirun_command']),
        'default_mpiprocs_per_machine': computer['mpiprocs_per_machine'],
        'prepend_text': computer['prepend_text'],
        'append_text': computer['append_text'],
        'minimum_job_poll_interval': float(computer['job_poll_interval']),
        'default_memory_per_machine': computer['memory_per_machine_kb'],
        'job_defaults': _job_defaults(spec),
    }


def setup_computer(spec: ProfileSpec, changes: list[Change]):
    from aiida import orm
    from aiida.common import exceptions

    label = spec.computer['label']
    fields = _computer_fields(spec)
    differing: list[str] = []
    try:
        computer = orm.load_computer(label)
    except exceptions.NotExistent:
        computer = orm.Computer(
            label=label,
            hostname=fields['hostname'],
            description=fields['description'],
            transport_type=fields['transport_type'],
            scheduler_type=fields['scheduler_type'],
            workdir=fields['workdir'],
        )
        _apply_computer_fields(computer, fields)
        computer.store()
        created = True
    else:
        created = False
        for key in ('transport_type', 'scheduler_type'):
            if getattr(computer, key) != fields[key]:
                raise ProfileSpecError(
                    f'computer "{label}" already exists with {key} {getattr(computer, key)}, but {spec.source.name} '
                    f'asks for {fields[key]}: give the computer another label in {spec.source}.'
                )
        current = _read_computer_fields(computer)
        differing = sorted(key for key, value in fields.items() if current[key] != value)
        if differing:
            _apply_computer_fields(computer, fields)

    auth_params = _auth_params(spec)
    current_auth = _current_auth(computer)
    if not computer.is_configured:
        computer.configure(**auth_params)
    elif any(current_auth.get(key) != value for key, value in auth_params.items()):
        computer.configure(**{**current_auth, **auth_params})
        differing.append('transport configuration')

    if created:
        action, detail = (
            'created',
            f'{fields["transport_type"]}, {fields["scheduler_type"]}, work dir {fields["workdir"]}',
        )
    elif differing:
        action, detail = 'updated', f'changed: {", ".join(differing)}'
    else:
        action, detail = 'unchanged', f'{fields["transport_type"]}, {fields["scheduler_type"]}'
    changes.append(Change('computer', label, action, detail))
    return computer


def _current_auth(computer) -> dict[str, Any]:
    from aiida import orm

    if not computer.is_configured:
        return {}
    return dict(computer.get_authinfo(orm.User.collection.get_default()).get_auth_params())


def _read_computer_fields(computer) -> dict[str, Any]:
    return {
        'hostname': computer.hostname,
        'description': computer.description,
        'transport_type': computer.transport_type,
        'scheduler_type': computer.scheduler_type,
        'workdir': computer.get_workdir(),
        'mpirun_command': list(computer.get_mpirun_command()),
        'default_mpiprocs_per_machine': computer.get_default_mpiprocs_per_machine(),
        'prepend_text': computer.get_prepend_text(),
        'append_text': computer.get_append_text(),
        'minimum_job_poll_interval': computer.get_minimum_job_poll_interval(),
        'default_memory_per_machine': computer.get_default_memory_per_machine(),
        'job_defaults': computer.get_property(JOB_DEFAULTS, None) or {},
    }


def _apply_computer_fields(computer, fields: dict[str, Any]) -> None:
    computer.hostname = fields['hostname']
    computer.description = fields['description']
    computer.set_workdir(fields['workdir'])
    computer.set_mpirun_command(fields['mpirun_command'])
    computer.set_default_mpiprocs_per_machine(fields['default_mpiprocs_per_machine'])
    computer.set_prepend_text(fields['prepend_text'])
    computer.set_append_text(fields['append_text'])
    computer.set_minimum_job_poll_interval(fields['minimum_job_poll_interval'])
    computer.set_default_memory_per_machine(fields['default_memory_per_machine'])
    if fields['job_defaults']:
        computer.set_property(JOB_DEFAULTS, fields['job_defaults'])
    else:
        computer.delete_property(JOB_DEFAULTS, raise_exception=False)


def setup_code(spec: ProfileSpec, computer, executable: pathlib.Path, changes: list[Change], read_version: bool = True):
    """Create (or keep) the CP2K code of ``spec`` on ``computer``; with ``read_version`` (not under ``--no-check``,
    which connects to nothing) also read its CP2K release once and keep it in the code's extras."""
    from aiida import orm

    code_spec = spec.code
    wanted = {
        'filepath_executable': str(executable),
        'with_mpi': bool(code_spec['with_mpi']),
        'prepend_text': code_spec['prepend_text'],
        'append_text': code_spec['append_text'],
        'default_calc_job_plugin': 'cp2k',
    }
    label = code_spec['label']
    query = orm.QueryBuilder().append(orm.Computer, filters={'id': computer.pk}, tag='computer')
    query.append(orm.InstalledCode, with_computer='computer', filters={'label': label})
    existing = query.first(flat=True)
    if existing is not None:
        current = {
            'filepath_executable': str(existing.filepath_executable),
            'with_mpi': existing.with_mpi,
            'prepend_text': existing.prepend_text,
            'append_text': existing.append_text,
            'default_calc_job_plugin': existing.default_calc_job_plugin,
        }
        if current == wanted:
            existing.base.extras.set(CODE_EXTRA, spec.name)
            changes.append(Change('code', f'{label}@{computer.label}', 'unchanged', str(executable)))
            if read_version:
                _record_cp2k_version(existing, changes)
            return existing
        # A stored code cannot be modified: keep the old one (calculations point to it), hidden and relabelled.
        from aiida.common import timezone

        existing.label = f'{label}-superseded-{timezone.now():%Y%m%d%H%M%S}'
        existing.is_hidden = True
        if CODE_EXTRA in existing.base.extras.keys():
            existing.base.extras.delete(CODE_EXTRA)
        differing = ', '.join(sorted(k for k in wanted if current[k] != wanted[k]))
        action, detail = 'updated', f'changed: {differing}; the old code is kept as {existing.label}'
    else:
        action, detail = 'created', str(executable)
    code = orm.InstalledCode(
        label=label,
        description=code_spec['description'],
        computer=computer,
        filepath_executable=wanted['filepath_executable'],
        default_calc_job_plugin='cp2k',
        with_mpi=wanted['with_mpi'],
        prepend_text=wanted['prepend_text'],
        append_text=wanted['append_text'],
    )
    code.store()
    code.base.extras.set(CODE_EXTRA, spec.name)
    changes.append(Change('code', f'{label}@{computer.label}', action, detail))
    if read_version:
        _record_cp2k_version(code, changes)
    return code


def _record_cp2k_version(code, changes: list) -> None:
    """Read the code's CP2K version once (``--version`` through its computer) and keep it in its extras.

    A version that cannot be read, or one outside the supported range, is reported as the code's change and left
    unset: every work chain checks the version before it writes an input, and stops there with the same sentence.
    """
    from aiida_nanohetero.workflows.cp2k_versions import CODE_VERSION_EXTRA, CP2KVersionError, code_cp2k_version

    name = f'{code.label}@{code.computer.label}'
    known = CODE_VERSION_EXTRA in code.base.extras.keys()
    try:
        version = code_cp2k_version(code)
    except CP2KVersionError as exception:
        if CODE_VERSION_EXTRA in code.base.extras.keys():
            code.base.extras.delete(CODE_VERSION_EXTRA)
        changes.append(Change('cp2k version', name, 'unknown', str(exception)))
        return
    detail = f'CP2K {version[0]}.{version[1]} (extra {CODE_VERSION_EXTRA})'
    changes.append(Change('cp2k version', name, 'unchanged' if known else 'recorded', detail))


def write_verdi_config(spec: ProfileSpec, directory: pathlib.Path, profile_name: str) -> list[str]:
    """Write the computer and code of ``spec`` as configuration files for ``verdi``'s own set-up commands.

    For those who prefer ``verdi``: ``verdi computer setup --config``, ``verdi computer configure ... --config`` and
    ``verdi code create core.code.installed --config`` then create what ``nanohetero setup --computer`` would (but
    not idempotently: they refuse an existing label). The partition, account, QOS and cores per node have no
    ``verdi`` field: give them per job (``metadata.options.queue_name``, ``account``, ``qos``, ``resources``).
    Returns the commands to run, in order.
    """
    import yaml

    spec = spec.with_profile_name(profile_name)
    fields = _computer_fields(spec)
    computer = {
        'label': spec.computer['label'],
        'hostname': fields['hostname'],
        'description': fields['description'],
        'transport': fields['transport_type'],
        'scheduler': fields['scheduler_type'],
        'shebang': '#!/bin/bash',
        'work_dir': fields['workdir'],
        'mpirun_command': ' '.join(fields['mpirun_command']),
        'mpiprocs_per_machine': fields['default_mpiprocs_per_machine'],
        'default_memory_per_machine': fields['default_memory_per_machine'],
        'use_double_quotes': False,
        'prepend_text': fields['prepend_text'],
        'append_text': fields['append_text'],
    }
    if computer['default_memory_per_machine'] is None:
        computer.pop('default_memory_per_machine')
    configure = _auth_params(spec)
    code = {
        'label': spec.code['label'],
        'description': spec.code['description'],
        'computer': spec.computer['label'],
        'filepath_executable': str(spec.resolve_executable()),
        'default_calc_job_plugin': 'cp2k',
        'use_double_quotes': False,
        'with_mpi': bool(spec.code['with_mpi']),
        'prepend_text': spec.code['prepend_text'],
        'append_text': spec.code['append_text'],
    }
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in (('computer-setup', computer), ('computer-configure', configure), ('code', code)):
        paths[name] = directory / f'{name}.yaml'
        paths[name].write_text(yaml.safe_dump(data, sort_keys=False))
    label, transport = spec.computer['label'], spec.computer['transport']
    return [
        f'verdi -p {profile_name} computer setup -n --config {paths["computer-setup"]}',
        f'verdi -p {profile_name} computer configure {transport} {label} -n --config {paths["computer-configure"]}',
        f'verdi -p {profile_name} code create core.code.installed -n --config {paths["code"]}',
    ]
