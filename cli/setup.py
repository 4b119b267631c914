"""``nanohetero setup``: create or update the AiiDA profile, computer and code from a profile spec."""

from __future__ import annotations

import click

from aiida_nanohetero.cli import clean_errors, pass_context


@click.command('setup')
@click.option(
    '--profile',
    'spec_name',
    default=None,
    help='Profile spec: a name from the package (local, production) or the path to a YAML file. '
    'Default: local, unless only --computer is given.',
)
@click.option(
    '--computer',
    'computer_spec',
    default=None,
    help='Computer spec to add to the profile: the path to a YAML file (a filled-in copy of '
    'profiles/slurm-cluster.yaml). Goes into the profile set up by --profile, else into the one chosen with '
    '`nanohetero -p NAME`.',
)
@click.option('--profile-name', default=None, help='Name of the AiiDA profile to create (default: from the spec).')
@click.option('--set-default', is_flag=True, help="Also make it AiiDA's default profile (never done otherwise).")
@click.option(
    '--verdi-config',
    type=click.Path(file_okay=False),
    default=None,
    help='With --computer: only write the computer and code as config files for `verdi computer setup --config` '
    'and `verdi code create --config` into this folder, and print the verdi commands; create nothing.',
)
@click.option(
    '--no-check',
    is_flag=True,
    help='Do not connect to a cluster computer to check it (host, key, work directory, partition, CP2K executable).',
)
@pass_context
@clean_errors
def setup(obj, spec_name, computer_spec, profile_name, set_default, verdi_config, no_check):
    """Create or update the AiiDA profile, computer, CP2K code and CP2K data files a spec describes.

    \b
    nanohetero setup                                   the embedded default (profiles/local.yaml)
    nanohetero setup --profile production              PostgreSQL + RabbitMQ (profiles/production.yaml)
    nanohetero -p NAME setup --computer my-cluster.yaml   add a SLURM cluster to profile NAME

    Idempotent: run it again and it changes nothing and says so. Everything is checked first (CP2K executable,
    basis and potential files, database and broker, and for a cluster the SSH login, work directory, partition
    and the CP2K executable after `module load`), so a failure leaves nothing half-created.
    """
    from aiida_nanohetero.profiles import load_spec
    from aiida_nanohetero.profiles.setup import aiida_config_dir, apply_computer_spec, apply_spec, cp2k_version

    if verdi_config:
        import pathlib

        from aiida_nanohetero.profiles.setup import write_verdi_config

        if computer_spec is None:
            raise click.UsageError('--verdi-config needs --computer FILE.yaml')
        computer = load_spec(computer_spec, kind='computer')
        commands = write_verdi_config(computer, pathlib.Path(verdi_config), profile_name or obj.profile_name)
        click.echo(f'Wrote the verdi config files to {verdi_config}; run:')
        for command in commands:
            click.echo(f'  {command}')
        return
    if spec_name is None and computer_spec is None:
        spec_name = 'local'
    config_dir = aiida_config_dir()
    changes = []
    spec = None
    if spec_name is not None:
        spec = load_spec(spec_name)
        if profile_name:
            spec = spec.with_profile_name(profile_name)
        click.echo(f'Profile spec:   {spec.source}')
    computer = load_spec(computer_spec, kind='computer') if computer_spec else None
    if computer is not None:
        click.echo(f'Computer spec:  {computer.source}')
    click.echo(f'AiiDA data in:  {config_dir}  (set AIIDA_PATH to put it elsewhere)')
    if spec is not None:
        changes += apply_spec(spec, set_default=set_default, check=not no_check)
        name = spec.profile['name']
    else:
        name = profile_name or obj.profile_name
    if computer is not None:
        if computer.is_remote and not no_check:
            click.echo(f'Checking {computer.computer["hostname"]} (connection, work directory, scheduler, CP2K)...')
        changes += apply_computer_spec(computer, name, check=not no_check)
    shown = set()
    for change in changes:
        if change.item in ('basis', 'potential') and (change.item, change.name) in shown:
            continue  # the same data file, stored for the profile and again for the computer
        shown.add((change.item, change.name))
        click.echo(f'  {change}')
    if all(change.action in ('unchanged', 'ok') for change in changes):
        click.secho('Nothing to do: everything was already set up as the spec describes.', fg='green')
    else:
        click.secho('Set up done.', fg='green')
    last = computer or spec
    if last.computer is None:
        click.echo(f'Next: add a computer with `nanohetero -p {name} setup --computer my-cluster.yaml` (docs/hpc.md)')
        return
    if not last.is_remote and last.computer['scheduler'] == 'core.direct':
        click.echo(f'CP2K:           {cp2k_version(last.resolve_executable())}')
    hint = '' if name == 'nanohetero' else f'-p {name} '
    click.echo(f'Next: nanohetero {hint}status   |   nanohetero {hint}demo')
