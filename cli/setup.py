"""``nanohetero setup``: create or update the AiiDA profile, computer and code from a profile spec."""

from __future__ import annotations

import click

from aiida_nanohetero.cli import clean_errors


@click.command('setup')
@click.option(
    '--profile',
    'spec_name',
    default='local',
    show_default=True,
    help='Profile spec: a name from the package (local, ...) or the path to a YAML file.',
)
@click.option('--profile-name', default=None, help='Name of the AiiDA profile to create (default: from the spec).')
@click.option('--set-default', is_flag=True, help="Also make it AiiDA's default profile (never done otherwise).")
@clean_errors
def setup(spec_name, profile_name, set_default):
    """Create or update the AiiDA profile, computer, CP2K code and CP2K data files a profile spec describes.

    Idempotent: run it again and it changes nothing and says so. Everything is checked first (CP2K executable,
    basis and potential files), so a failure leaves nothing half-created.
    """
    from aiida_nanohetero.profiles import load_spec
    from aiida_nanohetero.profiles.setup import aiida_config_dir, apply_spec, cp2k_version

    spec = load_spec(spec_name)
    if profile_name:
        spec = spec.with_profile_name(profile_name)
    config_dir = aiida_config_dir()
    click.echo(f'Profile spec:   {spec.source}')
    click.echo(f'AiiDA data in:  {config_dir}  (set AIIDA_PATH to put it elsewhere)')
    changes = apply_spec(spec, set_default=set_default)
    for change in changes:
        click.echo(f'  {change}')
    if all(change.action == 'unchanged' for change in changes):
        click.secho('Nothing to do: everything was already set up as the spec describes.', fg='green')
    else:
        click.secho('Set up done.', fg='green')
    if spec.computer['transport'] == 'core.local':
        click.echo(f'CP2K:           {cp2k_version(spec.resolve_executable())}')
    name = spec.profile['name']
    hint = '' if name == 'nanohetero' else f'-p {name} '
    click.echo(f'Next: nanohetero {hint}status   |   nanohetero {hint}demo')
