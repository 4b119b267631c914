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
        'mpirun_command': 'mpirun -np {tot_num_mpiprocs}',
        'mpiprocs_per_machine': 1,
        'use_login_shell': False,
        'safe_interval': 0,
        'job_poll_interval': 1,
        'prepend_text': '',
        'append_text': '',
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
    computer: dict[str, Any]
    code: dict[str, Any]
    cp2k_data: dict[str, Any]

    @property
    def name(self) -> str:
        return self.source.stem

    def with_profile_name(self, name: str) -> ProfileSpec:
        return dataclasses.replace(self, profile={**self.profile, 'name': name})

    def resolve_executable(self) -> pathlib.Path:
        """Absolute path of the CP2K executable; raises :class:`ProfileSpecError` if it cannot be found."""
        executable = self.code['executable']
        if self.computer['transport'] != 'core.local':
            # A remote computer: the path is on the other machine and cannot be checked from here.
            if not os.path.isabs(executable):
                raise ProfileSpecError(
                    f'{self.source.name}: code.executable must be an absolute path on {self.computer["hostname"]} '
                    f'for a remote computer, not "{executable}".'
                )
            return pathlib.Path(executable)
        found = shutil.which(executable)
        if found is None:
            raise ProfileSpecError(
                f'CP2K executable "{executable}" not found on PATH: install it (Debian: apt-get install cp2k) '
                f'or set code.executable in {self.source} to the full path of cp2k.psmp.'
            )
        return pathlib.Path(found).resolve() if not os.path.isabs(executable) else pathlib.Path(executable)

    def resolve_cp2k_data(self) -> dict[str, pathlib.Path]:
        """Absolute paths of the basis-set and pseudopotential files named in ``cp2k_data``."""
        return {key: find_cp2k_data_file(value, key, self.source) for key, value in self.cp2k_data.items()}


def available_specs() -> list[str]:
    """Names of the profile specs that ship with the package."""
    return sorted(path.stem for path in SPEC_DIR.glob('*.yaml'))


def load_spec(name_or_path: str | os.PathLike) -> ProfileSpec:
    """Load and validate a profile spec given by name (``local``) or by path to a YAML file."""
    path = pathlib.Path(name_or_path)
    if path.suffix not in ('.yaml', '.yml'):
        path = SPEC_DIR / f'{name_or_path}.yaml'
    if not path.is_file():
        raise ProfileSpecError(
            f'unknown profile "{name_or_path}": choose one of {", ".join(available_specs())} '
            'or give the path to a YAML file.'
        )
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except yaml.YAMLError as exception:
        where = getattr(exception, 'problem_mark', None)
        line = f' at line {where.line + 1}' if where is not None else ''
        raise ProfileSpecError(f'{path} is not valid YAML{line}: fix the file and run the command again.') from None
    if not isinstance(data, dict):
        raise ProfileSpecError(f'{path} must be a YAML mapping with the sections {", ".join(_SCHEMA)}.')

    unknown = set(data) - set(_SCHEMA)
    if unknown:
        raise ProfileSpecError(
            f'{path}: unknown section(s) {", ".join(sorted(unknown))}; valid sections are {", ".join(_SCHEMA)}.'
        )
    sections = {}
    for section, schema in _SCHEMA.items():
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
        missing = [key for key, value in merged.items() if value is ...]
        if missing:
            raise ProfileSpecError(f'{path}: missing required key(s) {", ".join(f"{section}.{k}" for k in missing)}.')
        sections[section] = merged

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
    if sections['code']['with_mpi'] and '{tot_num_mpiprocs}' not in sections['computer']['mpirun_command']:
        raise ProfileSpecError(f'{path}: computer.mpirun_command must contain "{{tot_num_mpiprocs}}".')
    return ProfileSpec(source=path.resolve(), **sections)


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
