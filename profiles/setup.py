"""Create or update the AiiDA profile, computer, code and CP2K data nodes that a profile spec describes.

:func:`apply_spec` is idempotent: applied twice, the second run changes nothing and reports every item as
``unchanged``. Everything that can fail is checked before anything is created (the CP2K executable, the data
files, a clash with an existing profile of another kind), and a profile created by a run that then fails is
removed again, so nothing half-created is left behind.
"""

from __future__ import annotations

import dataclasses
import getpass
import pathlib
import shlex
import subprocess
from typing import Any

from aiida_nanohetero.profiles import ProfileSpec, ProfileSpecError

__all__ = (
    'CODE_EXTRA',
    'Change',
    'aiida_config_dir',
    'apply_spec',
    'cp2k_version',
    'find_setup_code',
    'setup_code',
    'setup_computer',
)

#: Extra set on the code that ``nanohetero setup`` created, so other commands find it without a label.
CODE_EXTRA = 'nanohetero_setup'


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


def apply_spec(spec: ProfileSpec, *, set_default: bool = False) -> list[Change]:
    """Create or update what ``spec`` describes. Returns the list of changes (all ``unchanged`` on a re-run)."""
    from aiida.manage.configuration import create_profile, get_config, load_profile

    # 1. Checks that need no AiiDA object: nothing is created unless all of them pass.
    executable = spec.resolve_executable()
    data_files = spec.resolve_cp2k_data()
    config = get_config(create=True)
    name = spec.profile['name']
    changes: list[Change] = []

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
        create_profile(
            config,
            name=name,
            email=spec.profile['email'],
            storage_backend=spec.profile['storage'],
            storage_config=dict(spec.profile['storage_config']),
            broker_backend=broker_backend,
            broker_config=broker_config,
        )
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
        computer = setup_computer(spec, changes)
        setup_code(spec, computer, executable, changes)
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


def _unload_profile() -> None:
    from aiida.manage import get_manager

    get_manager().unload_profile()


def _computer_fields(spec: ProfileSpec) -> dict[str, Any]:
    computer = spec.computer
    work_dir = computer['work_dir'].format(
        aiida_dir=aiida_config_dir(), profile=spec.profile['name'], username=getpass.getuser()
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

    auth_params: dict[str, Any] = {
        'safe_interval': float(spec.computer['safe_interval']),
        'use_login_shell': bool(spec.computer['use_login_shell']),
    }
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


def setup_code(spec: ProfileSpec, computer, executable: pathlib.Path, changes: list[Change]):
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
    return code
