"""Declarative descriptions of where things run: AiiDA profile, computer, CP2K code and CP2K data files.

A *profile spec* is a YAML file (``local.yaml`` ships with the package) with four sections, ``profile``,
``computer``, ``code`` and ``cp2k_data``. :func:`load_spec` reads and validates one;
:func:`aiida_nanohetero.profiles.setup.apply_spec` creates or updates the AiiDA objects it describes.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import pathlib
import re
import shutil
from typing import Any

import yaml

__all__ = ('SPEC_DIR', 'ProfileSpec', 'ProfileSpecError', 'available_specs', 'find_cp2k_data_file', 'load_spec')

SPEC_DIR = pathlib.Path(__file__).parent

#: Keys accepted in each section, with their defaults (``...``: required).
_SCHEMA: dict[str, dict[str, Any]] = {
    'profile': {
        'name': ...,
        'storage': 'core.sqlite_dos',
        'storage_config': {},
        'broker': 'none',
        'broker_config': {},
        'email': 'nanohetero@localhost',
        'options': {},
    },
    'computer': {
        'label': ...,
        'hostname': 'localhost',
        'description': '',
        'transport': 'core.local',
        'scheduler': 'core.direct',
        'work_dir': '{aiida_dir}/scratch/{profile}',
        'mpi_launcher': 'mpirun',
        'mpirun_command': None,
        'mpiprocs_per_machine': 1,
        'use_login_shell': False,
        'safe_interval': 0,
        'job_poll_interval': 1,
        'prepend_text': '',
        'append_text': '',
        # core.ssh only
        'username': '',
        'port': 22,
        'key_filename': '',
        'proxy_jump': '',
        'key_policy': 'RejectPolicy',
        # a batch scheduler (core.slurm): defaults of every job on this computer
        'partition': '',
        'account': '',
        'qos': '',
        'cores_per_machine': None,
        'memory_per_machine': None,
    },
    'code': {
        'label': 'cp2k',
        'description': '',
        'executable': 'cp2k.psmp',
        'with_mpi': False,
        'prepend_text': '',
        'append_text': '',
    },
    'cp2k_data': {
        'basis': 'BASIS_MOLOPT',
        'potential': 'GTH_POTENTIALS',
    },
}

STORAGE_BACKENDS = ('core.sqlite_dos', 'core.psql_dos')
BROKERS = ('none', 'core.zeromq', 'core.rabbitmq')
#: Where CP2K looks for its data files when a bare name is given (Debian's package, then $CP2K_DATA_DIR).
CP2K_DATA_DIRS = ('/usr/share/cp2k', '/usr/share/cp2k/data')


class ProfileSpecError(ValueError):
    """A profile spec cannot be found, parsed or used. The message says what is wrong and how to fix it."""


@dataclasses.dataclass(frozen=True)
class ProfileSpec:
    """A validated profile spec: plain dictionaries per section, defaults filled in."""

    source: pathlib.Path
    profile: dict[str, Any]
    computer: dict[str, Any] | None  # None: a profile without a computer (added later with `setup --computer`)
    code: dict[str, Any] | None
    cp2k_data: dict[str, Any]

    @property
    def name(self) -> str:
        return self.source.stem

    def with_profile_name(self, name: str) -> ProfileSpec:
        return dataclasses.replace(self, profile={**self.profile, 'name': name})

    @property
    def is_remote(self) -> bool:
        return self.computer is not None and self.computer['transport'] != 'core.local'

    def resolve_executable(self) -> pathlib.Path:
        """Absolute path of the CP2K executable; raises :class:`ProfileSpecError` if it cannot be found.

        On a remote computer the path cannot be checked from here (``nanohetero setup`` checks it over the
        transport): an absolute path, or a bare name that the computer's and the code's ``prepend_text`` (typically
        ``module load cp2k``) put on ``PATH``.
        """
        executable = self.code['executable']
        if self.is_remote:
            if not os.path.isabs(executable) and len(pathlib.PurePosixPath(executable).parts) > 1:
                raise ProfileSpecError(
                    f'{self.source.name}: code.executable must be an absolute path on {self.computer["hostname"]} '
                    f'or a bare name found on PATH after the prepend_text, not the relative path "{executable}".'
                )
            return pathlib.Path(executable)
        found = shutil.which(executable)
        if found is None:
            if self.computer['scheduler'] != 'core.direct':
                # a batch scheduler on this machine: the executable may only exist after `module load`
                return pathlib.Path(executable)
            raise ProfileSpecError(
                f'CP2K executable "{executable}" not found on PATH: install it (Debian: apt-get install cp2k) '
                f'or set code.executable in {self.source} to the full path of cp2k.psmp.'
            )
        return pathlib.Path(found).resolve() if not os.path.isabs(executable) else pathlib.Path(executable)

    def resolve_cp2k_data(self) -> dict[str, pathlib.Path]:
        """Absolute paths of the basis-set and pseudopotential files named in ``cp2k_data``."""
        return {key: find_cp2k_data_file(value, key, self.source) for key, value in self.cp2k_data.items()}


def _sections_of(path: pathlib.Path) -> set[str]:
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError):
        return set()
    return set(data) if isinstance(data, dict) else set()


def available_specs(kind: str = 'profile') -> list[str]:
    """Names of the specs that ship with the package: profile specs (``local``, ``production``), or the specs
    with a computer (``local``, ``slurm-cluster``: a template to copy and fill in)."""
    wanted = 'profile' if kind == 'profile' else 'computer'
    return sorted(path.stem for path in SPEC_DIR.glob('*.yaml') if wanted in _sections_of(path))


def load_spec(name_or_path: str | os.PathLike, kind: str = 'profile') -> ProfileSpec:
    """Load and validate a spec given by name (``local``, ``production``) or by path to a YAML file.

    :param kind: ``profile``: a whole set-up (sections ``profile``, ``computer``, ``code``, ``cp2k_data``; without
        ``computer`` and ``code`` only the profile); ``computer``: a computer and its CP2K code to add to an existing
        profile (sections ``computer``, ``code``, ``cp2k_data``; the ``profile`` section of a profile spec is
        ignored, so ``--computer local`` adds this machine).
    """
    path = pathlib.Path(name_or_path).expanduser()
    if path.suffix not in ('.yaml', '.yml'):
        path = SPEC_DIR / f'{name_or_path}.yaml'
    if not path.is_file():
        raise ProfileSpecError(
            f'unknown {kind} "{name_or_path}": choose one of {", ".join(available_specs(kind))} '
            'or give the path to a YAML file.'
        )
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except yaml.YAMLError as exception:
        where = getattr(exception, 'problem_mark', None)
        line = f' at line {where.line + 1}' if where is not None else ''
        raise ProfileSpecError(f'{path} is not valid YAML{line}: fix the file and run the command again.') from None
    allowed = tuple(_SCHEMA) if kind == 'profile' else tuple(s for s in _SCHEMA if s != 'profile')
    if not isinstance(data, dict):
        raise ProfileSpecError(f'{path} must be a YAML mapping with the sections {", ".join(allowed)}.')
    if kind == 'computer':
        data = {key: value for key, value in data.items() if key != 'profile'}  # a profile spec's computer
        if 'computer' not in data:
            raise ProfileSpecError(f'{path}: a computer spec needs a "computer" section (and a "code" section).')
    without_computer = kind == 'profile' and 'computer' not in data and 'code' not in data
    if kind == 'profile' and 'code' in data and 'computer' not in data:
        raise ProfileSpecError(f'{path}: the "code" section needs a "computer" section to run on.')

    unknown = set(data) - set(allowed)
    if unknown:
        raise ProfileSpecError(
            f'{path}: unknown section(s) {", ".join(sorted(unknown))}; valid sections are {", ".join(allowed)}.'
        )
    sections: dict[str, dict[str, Any] | None] = {}
    for section, schema in _SCHEMA.items():
        if without_computer and section in ('computer', 'code'):
            sections[section] = None  # a profile only: computers are added with `setup --computer`
            continue
        given = data.get(section) or {}
        if not isinstance(given, dict):
            raise ProfileSpecError(f'{path}: section "{section}" must be a mapping of keys to values.')
        unknown = set(given) - set(schema)
        if unknown:
            raise ProfileSpecError(
                f'{path}: unknown key(s) {", ".join(f"{section}.{k}" for k in sorted(unknown))}; '
                f'valid keys in "{section}" are {", ".join(schema)}.'
            )
        merged = {key: copy.deepcopy(default) for key, default in schema.items()}
        merged.update(given)
        if section == 'profile' and kind == 'computer':
            merged['name'] = None  # the profile it is added to, filled in by `setup`
        missing = [key for key, value in merged.items() if value is ...]
        if missing:
            hint = ''
            if section == 'profile' and 'profile' not in data:
                hint = f' (a file without it describes a computer: use `nanohetero setup --computer {path}`)'
            raise ProfileSpecError(
                f'{path}: missing required key(s) {", ".join(f"{section}.{k}" for k in missing)}{hint}.'
            )
        sections[section] = merged

    for section in ('computer', 'code'):
        for key, value in (sections[section] or {}).items():
            if is_placeholder(value):
                raise ProfileSpecError(
                    f'{path}: {section}.{key} is still the placeholder "{value}": this is a template. Copy it, fill '
                    'it in (every field is explained in it) and pass the copy: '
                    '`nanohetero setup --computer my-cluster.yaml`.'
                )
    profile = sections['profile']
    profile['broker'] = str(profile['broker'] or 'none')
    if profile['storage'] not in STORAGE_BACKENDS:
        raise ProfileSpecError(
            f'{path}: profile.storage "{profile["storage"]}" is not supported; '
            f'use one of {", ".join(STORAGE_BACKENDS)}.'
        )
    if profile['broker'] not in BROKERS:
        raise ProfileSpecError(
            f'{path}: profile.broker "{profile["broker"]}" is not supported; use one of {", ".join(BROKERS)}.'
        )
    for key in ('storage_config', 'broker_config', 'options'):
        if not isinstance(profile[key], dict):
            raise ProfileSpecError(f'{path}: profile.{key} must be a mapping of keys to values.')
    if kind == 'profile':
        profile['storage_config'] = _expand_env(profile['storage_config'], 'profile.storage_config', path)
        profile['broker_config'] = _expand_env(profile['broker_config'], 'profile.broker_config', path)
        if profile['storage'] == 'core.psql_dos':
            missing = [k for k in PSQL_REQUIRED if not profile['storage_config'].get(k)]
            if missing:
                raise ProfileSpecError(
                    f'{path}: profile.storage core.psql_dos needs '
                    f'{", ".join(f"profile.storage_config.{k}" for k in missing)}.'
                )
    if sections['computer'] is not None:
        _check_computer(sections['computer'], path)
        if sections['code']['with_mpi'] and '{tot_num_mpiprocs}' not in sections['computer']['mpirun_command']:
            raise ProfileSpecError(f'{path}: computer.mpirun_command must contain "{{tot_num_mpiprocs}}".')
    return ProfileSpec(source=path.resolve(), **sections)


#: Keys of ``profile.storage_config`` that ``core.psql_dos`` needs (host and port default to localhost:5432).
PSQL_REQUIRED = ('database_name', 'database_username', 'database_password')
TRANSPORTS = ('core.local', 'core.ssh')
SCHEDULERS = ('core.direct', 'core.slurm', 'core.pbspro', 'core.torque', 'core.sge', 'core.lsf')
#: ``mpi_launcher`` -> the MPI command line AiiDA puts in front of the executable (``mpirun_command`` overrides it).
MPI_LAUNCHERS = {'srun': 'srun -n {tot_num_mpiprocs}', 'mpirun': 'mpirun -np {tot_num_mpiprocs}'}
KEY_POLICIES = ('RejectPolicy', 'WarningPolicy', 'AutoAddPolicy')
_ENV = re.compile(r'\$\{([A-Za-z_][A-Za-z0-9_]*)\}')
_MEMORY = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$', re.IGNORECASE)


def _expand_env(mapping: dict[str, Any], where: str, path: pathlib.Path) -> dict[str, Any]:
    """Replace ``${VAR}`` in string values by the environment variable, so secrets stay out of the YAML file."""
    expanded = {}
    for key, value in mapping.items():
        if isinstance(value, str):
            for name in _ENV.findall(value):
                if name not in os.environ:
                    raise ProfileSpecError(
                        f'{path}: {where}.{key} uses ${{{name}}}, but the environment variable {name} is not set: '
                        f'export it (e.g. `export {name}=...` in your shell or ~/.bashrc) and run the command again.'
                    )
            value = _ENV.sub(lambda match: os.environ[match.group(1)], value)
        expanded[key] = value
    return expanded


def parse_memory_kb(value: Any, where: str = 'computer.memory_per_machine') -> int | None:
    """``256GB``, ``240G``, ``500000MB`` or a number of kB -> kB (what AiiDA's ``default_memory_per_machine`` takes)."""
    if value is None or value == '':
        return None
    if isinstance(value, bool):
        raise ProfileSpecError(f'{where} must be a memory size such as 256GB, not {value!r}.')
    if isinstance(value, int):
        number, unit = float(value), 'k'
    else:
        match = _MEMORY.match(str(value))
        if not match:
            raise ProfileSpecError(f'{where} must be a memory size such as 256GB, 240G or 500000MB, not {value!r}.')
        number, unit = float(match.group(1)), (match.group(2) or 'k').lower()
    kb = int(number * 1024 ** 'kmgt'.index(unit))
    if kb <= 0:
        raise ProfileSpecError(f'{where} must be positive, not {value!r}.')
    return kb


def is_placeholder(value: Any) -> bool:
    """Template values look like ``<your-login>``: they must be replaced before the spec is used."""
    return isinstance(value, str) and value.strip().startswith('<') and value.strip().endswith('>')


def _check_computer(computer: dict[str, Any], path: pathlib.Path) -> None:
    """Validate the computer section (types and combinations; nothing that needs the machine itself)."""
    if computer['transport'] not in TRANSPORTS:
        raise ProfileSpecError(
            f'{path}: computer.transport "{computer["transport"]}" is not supported; '
            f'use one of {", ".join(TRANSPORTS)}.'
        )
    if computer['scheduler'] not in SCHEDULERS:
        raise ProfileSpecError(
            f'{path}: computer.scheduler "{computer["scheduler"]}" is not supported; '
            f'use one of {", ".join(SCHEDULERS)}.'
        )
    if computer['mpi_launcher'] not in MPI_LAUNCHERS:
        raise ProfileSpecError(
            f'{path}: computer.mpi_launcher must be one of {", ".join(MPI_LAUNCHERS)}, '
            f'not "{computer["mpi_launcher"]}".'
        )
    if not computer['mpirun_command']:
        computer['mpirun_command'] = MPI_LAUNCHERS[computer['mpi_launcher']]
    if computer['key_policy'] not in KEY_POLICIES:
        raise ProfileSpecError(
            f'{path}: computer.key_policy must be one of {", ".join(KEY_POLICIES)}, not "{computer["key_policy"]}".'
        )
    if computer['scheduler'] == 'core.direct':
        given = [key for key in ('partition', 'account', 'qos') if computer[key]]
        if given:
            raise ProfileSpecError(
                f'{path}: computer.{given[0]} is set, but computer.scheduler core.direct has no partitions, accounts '
                'or QOS: remove it, or use a batch scheduler such as core.slurm.'
            )
    if computer['transport'] == 'core.local':
        given = [key for key in ('username', 'key_filename', 'proxy_jump') if computer[key]]
        if given:
            raise ProfileSpecError(
                f'{path}: computer.{given[0]} only applies to computer.transport core.ssh (this one is core.local).'
            )
    for key in ('mpiprocs_per_machine', 'cores_per_machine', 'port'):
        value = computer[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ProfileSpecError(f'{path}: computer.{key} must be a positive whole number, not {value!r}.')
    for key in ('safe_interval', 'job_poll_interval'):
        value = computer[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ProfileSpecError(f'{path}: computer.{key} must be a number of seconds >= 0, not {value!r}.')
    computer['memory_per_machine_kb'] = parse_memory_kb(computer['memory_per_machine'])
    for key in ('partition', 'account', 'qos', 'username', 'key_filename', 'proxy_jump', 'hostname', 'work_dir'):
        if computer[key] is None:
            computer[key] = ''
        if not isinstance(computer[key], str):
            raise ProfileSpecError(f'{path}: computer.{key} must be a string, not {computer[key]!r}.')


def find_cp2k_data_file(
    value: str | os.PathLike, what: str = 'file', source: pathlib.Path | None = None
) -> pathlib.Path:
    """Resolve a CP2K data file given as a path or as a bare name in CP2K's data directory."""
    path = pathlib.Path(value).expanduser()
    candidates = [path] if path.is_absolute() or len(path.parts) > 1 else []
    if not candidates:
        dirs = [os.environ['CP2K_DATA_DIR']] if os.environ.get('CP2K_DATA_DIR') else []
        candidates = [pathlib.Path(d) / path for d in (*dirs, *CP2K_DATA_DIRS)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    where = f' (set cp2k_data.{what} in {source})' if source else ''
    raise ProfileSpecError(
        f'CP2K {what} file "{value}" not found in {", ".join(str(c.parent) for c in candidates)}: '
        f"install Debian's cp2k package or give the full path{where}."
    )
