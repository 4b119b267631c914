"""CP2K releases: which ones this package supports, how each spells the input sections the protocols use, and the
version of a code.

The protocols (``workflows/protocols/*.yaml``) are written once, in the spelling of CP2K 2023.1 to 2025.2. Before a
calculation's input is stored, :func:`spell_for_version` rewrites what a later release spells differently, so the
YAML files stay free of versions. Measured on the same input (``tests/data/cp2k/cs4pbbr6/cube.inp``) with real
programs (Debian 12's 2023.1, Debian 13's 2025.1, CP2K 2026.2; ``docs/hpc.md``, "CP2K versions"):

============================  ===========================================  =================================
input section                 2023.1 – 2025.2                              2026.2
============================  ===========================================  =================================
projected DOS                 ``&DFT/&PRINT/&PDOS`` with NLUMO,            ``&DFT/&PRINT/&DOS`` with the same
                              COMPONENTS, FILENAME, ADD_LAST, ``&EACH``,   print-key keywords and ``&LDOS``,
                              ``&LDOS``                                    COMPONENTS in its ``&PDOS``
                                                                           subsection (which asks for the
                                                                           per-kind files)
============================  ===========================================  =================================

Everything else the protocols use (``&MO``, ``&S_CSR_WRITE``, ``&MGRID``, the WAVELET Poisson solver, ``&SCF``
with diagonalisation or OT, ``&SMEAR``, ``&MOTION/&GEO_OPT`` with BFGS, LBFGS and ``RESTART_HESSIAN``,
``EXT_RESTART``, ``GLOBAL/WALLTIME``) is spelled the same in all three (the tests run it on each).

The version of a code is read once (``cp2k --version`` through the code's computer) and kept in the code's extra
``nanohetero_cp2k_version``; ``nanohetero setup`` records it on the code it makes, and
``nanohetero code-version CODE [VERSION]`` reads or sets it for any other code.
"""

from __future__ import annotations

import copy
import re

__all__ = (
    'CODE_VERSION_EXTRA',
    'SUPPORTED',
    'CP2KVersionError',
    'check_supported',
    'code_cp2k_version',
    'format_version',
    'parse_version',
    'read_code_version',
    'set_code_version',
    'spell_for_version',
    'uses_dos_section',
)

#: Oldest and newest supported CP2K release (year, number).
SUPPORTED = ((2023, 1), (2026, 2))

#: The extra of an AiiDA code that holds its CP2K version, e.g. ``'2026.2'``.
CODE_VERSION_EXTRA = 'nanohetero_cp2k_version'

#: First release whose projected DOS is asked for in ``&PRINT/&DOS`` (measured: 2025.2 still takes ``&PDOS``,
#: 2026.2 refuses it; 2026.1 was not available to test and is taken as the old spelling).
DOS_SECTION_SINCE = (2026, 2)

_VERSION = re.compile(r'CP2K version\s+(?P<year>\d{4})\.(?P<number>\d+)')
_BARE = re.compile(r'^\s*v?(?P<year>\d{4})\.(?P<number>\d+)\s*$')


class CP2KVersionError(ValueError):
    """A CP2K version that cannot be read or is outside :data:`SUPPORTED`; the message is one sentence."""


def format_version(version: tuple[int, int]) -> str:
    return f'{version[0]}.{version[1]}'


def _supported_text() -> str:
    return f'CP2K {format_version(SUPPORTED[0])} to {format_version(SUPPORTED[1])}'


def parse_version(text: str, source: str = 'the version') -> tuple[int, int]:
    """``(year, number)`` from ``cp2k --version`` output or a bare ``2026.2``; raises :class:`CP2KVersionError`."""
    text = str(text)
    match = _VERSION.search(text) or _BARE.match(text)
    if match is None:
        shown = repr(text.strip().splitlines()[0][:80]) if text.strip() else 'empty'
        raise CP2KVersionError(
            f'cannot read a CP2K version from {source} ({shown}): expected "CP2K version YEAR.N" as '
            f'`cp2k --version` prints it, or a version such as 2026.2 ({_supported_text()} are supported)'
        )
    return int(match['year']), int(match['number'])


def check_supported(version: tuple[int, int], what: str = 'this CP2K') -> tuple[int, int]:
    """Return ``version`` if it lies in :data:`SUPPORTED`, else raise :class:`CP2KVersionError` naming both."""
    if not SUPPORTED[0] <= tuple(version) <= SUPPORTED[1]:
        raise CP2KVersionError(
            f'{what} is CP2K {format_version(version)}, which aiida-nanohetero does not support: use '
            f'{_supported_text()}'
        )
    return tuple(version)


def uses_dos_section(version: tuple[int, int]) -> bool:
    """Whether the projected DOS is spelled ``&PRINT/&DOS`` (2026.2 and later) rather than ``&PRINT/&PDOS``."""
    return tuple(version) >= DOS_SECTION_SINCE


#: Keywords of the old ``&PDOS`` print key that stay on ``&DOS``; COMPONENTS moves into ``&DOS/&PDOS``.
_PDOS_ONLY = ('COMPONENTS',)


def spell_for_version(parameters: dict, version: tuple[int, int]) -> dict:
    """A copy of a CP2K input dictionary (protocol spelling) in the spelling of ``version``."""
    parameters = copy.deepcopy(parameters)
    if not uses_dos_section(version):
        return parameters
    printing = parameters.get('FORCE_EVAL', {}).get('DFT', {}).get('PRINT', {})
    if 'PDOS' in printing:
        old = printing.pop('PDOS')
        dos = {key: value for key, value in old.items() if key not in _PDOS_ONLY}
        dos['PDOS'] = {key: old[key] for key in _PDOS_ONLY if key in old}
        printing['DOS'] = dos
    return parameters


def read_code_version(code) -> tuple[int, int]:
    """Run ``EXECUTABLE --version`` through the code's computer (its prepend text first) and parse the version."""
    from aiida import orm

    if isinstance(code, orm.InstalledCode):
        executable = str(code.filepath_executable)
    else:
        raise CP2KVersionError(
            f'the CP2K version of code {code.full_label} cannot be read (not an installed code): give it with '
            f'nanohetero code-version {code.full_label} VERSION'
        )
    prepend = (code.computer.get_prepend_text() or '').strip()
    code_prepend = (code.prepend_text or '').strip()
    command = '\n'.join(part for part in (prepend, code_prepend, f'{executable} --version') if part)
    try:
        with code.computer.get_transport() as transport:
            status, stdout, stderr = transport.exec_command_wait(command)
    except Exception as exception:  # a transport that cannot connect: say so in one sentence
        raise CP2KVersionError(
            f'cannot run `{executable} --version` on {code.computer.label} to read the CP2K version of code '
            f'{code.full_label} ({type(exception).__name__}: {exception}); give it with nanohetero code-version '
            f'{code.full_label} VERSION'
        ) from None
    if _VERSION.search(stdout) is None:
        raise CP2KVersionError(
            f'code {code.full_label} does not look like CP2K: `{executable} --version` printed no "CP2K version" '
            f'line (exit status {status}{"; " + stderr.strip().splitlines()[-1][:80] if stderr.strip() else ""}); '
            f'point the code at cp2k.psmp, or give the version with nanohetero code-version {code.full_label} '
            'VERSION'
        )
    return parse_version(stdout, f'`{executable} --version`')


def set_code_version(code, version: str | tuple[int, int]) -> tuple[int, int]:
    """Record the CP2K version of ``code`` (``'2026.2'`` or a tuple) in its extras, after checking it."""
    parsed = parse_version(version) if isinstance(version, str) else tuple(version)
    check_supported(parsed, f'code {code.full_label}')
    code.base.extras.set(CODE_VERSION_EXTRA, format_version(parsed))
    return parsed


def code_cp2k_version(code) -> tuple[int, int]:
    """The CP2K version of ``code``: from its extra, else read once from the program and stored; checked."""
    stored = code.base.extras.get(CODE_VERSION_EXTRA, None)
    if stored is not None:
        return check_supported(
            parse_version(stored, f'the extra {CODE_VERSION_EXTRA} of code {code.full_label}'),
            f'code {code.full_label}',
        )
    version = read_code_version(code)
    return set_code_version(code, version)
