"""``nanohetero code-version CODE [VERSION]``: the CP2K release of an AiiDA code, read from the program or given.

Every work chain of this package writes its CP2K input in the spelling of the code's release (2023.1 to 2026.2,
``aiida_nanohetero.workflows.cp2k_versions``), kept in the code's extra ``nanohetero_cp2k_version``. ``nanohetero
setup`` records it for the code it makes; for a code made with ``verdi code create``, the first work chain reads it
(``cp2k --version`` through the code's computer). This command does the same on demand, or records a version
given by hand (a cluster whose login node cannot run CP2K).
"""

from __future__ import annotations

import click

from aiida_nanohetero.cli import pass_context

__all__ = ('code_version',)


@click.command('code-version')
@click.argument('code_label', metavar='CODE')
@click.argument('version', required=False)
@pass_context
def code_version(obj, code_label, version):
    """Show (reading it from the program once) or set the CP2K version of CODE, e.g. cp2k@localhost 2026.2."""
    from aiida import orm
    from aiida.common import exceptions

    from aiida_nanohetero.workflows.cp2k_versions import (
        CODE_VERSION_EXTRA,
        CP2KVersionError,
        code_cp2k_version,
        format_version,
        set_code_version,
    )

    obj.load_profile()
    try:
        code = orm.load_code(code_label)
    except (exceptions.NotExistent, exceptions.MultipleObjectsError, ValueError) as exception:
        raise click.BadParameter(
            f'no single code {code_label!r} in this profile ({exception}); list them with `verdi code list`.',
            param_hint='CODE',
        ) from None
    if version is not None:
        try:
            parsed = set_code_version(code, version)
        except CP2KVersionError as exception:
            raise click.BadParameter(f'{exception}.', param_hint='VERSION') from None
        click.echo(f'{code.full_label}: CP2K {format_version(parsed)} (recorded in the extra {CODE_VERSION_EXTRA})')
        return
    try:
        parsed = code_cp2k_version(code)
    except CP2KVersionError as exception:
        raise click.ClickException(f'{exception}.') from None
    click.echo(f'{code.full_label}: CP2K {format_version(parsed)} (extra {CODE_VERSION_EXTRA})')
