"""``nanohetero services start|status|stop``: PostgreSQL, RabbitMQ and the AiiDA daemon of a production profile."""

from __future__ import annotations

import click

from aiida_nanohetero.cli import clean_errors, pass_context

SERVICE_CHOICES = ('postgresql', 'rabbitmq', 'daemon')


def _wanted(obj, services: tuple[str, ...]) -> tuple[list[str], object]:
    """The services to act on: those given, else those the profile needs, else PostgreSQL and RabbitMQ (what
    ``nanohetero setup --profile production`` needs)."""
    if services and 'daemon' not in services:
        return list(dict.fromkeys(services)), None  # system services: no AiiDA profile needed (e.g. under sudo)
    from aiida.manage.configuration import get_config

    config = get_config(create=True)
    profile = config.get_profile(obj.profile_name) if obj.profile_name in config.profile_names else None
    if services:
        return list(dict.fromkeys(services)), profile
    if profile is None:
        return ['postgresql', 'rabbitmq'], None
    wanted = []
    if profile.storage_backend == 'core.psql_dos':
        wanted.append('postgresql')
    if profile.process_control_backend == 'core.rabbitmq':
        wanted.append('rabbitmq')
    if profile.process_control_backend:
        wanted.append('daemon')
    return wanted, profile


def _db_address(profile) -> tuple[str, int]:
    if profile is not None and profile.storage_backend == 'core.psql_dos':
        config = profile.storage_config
        return config.get('database_hostname') or 'localhost', int(config.get('database_port') or 5432)
    return 'localhost', 5432


def _broker_config(profile):
    if profile is not None and profile.process_control_backend == 'core.rabbitmq':
        return profile.process_control_config
    return None


service_option = click.option(
    '--service',
    'services',
    multiple=True,
    type=click.Choice(SERVICE_CHOICES),
    help='Act on this service only (repeat for several). Default: what the profile needs (-p), or PostgreSQL and '
    'RabbitMQ if the profile does not exist yet.',
)


@click.group('services')
def services():
    """Start, check and stop PostgreSQL, RabbitMQ and the AiiDA daemon of a production profile.

    \b
    nanohetero services start     start what is not running (PostgreSQL and RabbitMQ need root here)
    nanohetero services status    what runs, and what to do about what does not
    nanohetero services stop      stop the daemon and exactly the services `start` started

    Without systemd, PostgreSQL is started with pg_ctlcluster and RabbitMQ with its consumer_timeout disabled
    (the default 30 minutes breaks long AiiDA processes); their PIDs are recorded so that `stop` stops only
    them. A service that was already running (e.g. under systemd) is left alone. The embedded default profile
    (SQLite, ZeroMQ) needs none of this.
    """


@services.command('status')
@service_option
@pass_context
@clean_errors
def status(obj, services):
    """Show whether each service runs; exit status 3 if one that is needed does not."""
    from aiida_nanohetero.profiles import services as helpers

    wanted, profile = _wanted(obj, services)
    if profile is not None and not services:
        click.echo(
            f'profile {profile.name}: storage {profile.storage_backend}, broker '
            f'{profile.process_control_backend or "none"}'
        )
        if not wanted:
            click.echo('  needs no service: everything runs inside the AiiDA process.')
    down = False
    for name in wanted:
        if name == 'postgresql':
            state = helpers.postgres_state(*_db_address(profile))
        elif name == 'rabbitmq':
            state = helpers.rabbitmq_state(_broker_config(profile))
        else:
            state = _daemon_state(profile, obj.profile_name)
        mark = click.style('running', fg='green') if state.running else click.style('NOT running', fg='red')
        click.echo(f'  {name:<11} {mark}  {state.detail}')
        if state.hint:
            click.echo(f'  {"":<11} -> {state.hint}')
        down = down or not state.running
    if down:
        raise SystemExit(3)


@services.command('start')
@service_option
@click.option('--workers', type=int, default=None, help='Daemon workers (default: the profile option).')
@pass_context
@clean_errors
def start(obj, services, workers):
    """Start PostgreSQL, RabbitMQ and the daemon (those that are not running yet), in that order."""
    from aiida_nanohetero.profiles import services as helpers

    wanted, profile = _wanted(obj, services)
    if not wanted:
        click.echo(f'profile {obj.profile_name} needs no service.')
    for name in wanted:
        if name == 'postgresql':
            click.echo(helpers.start_postgres(*_db_address(profile)))
        elif name == 'rabbitmq':
            click.echo(helpers.start_rabbitmq(_broker_config(profile)))
        else:
            click.echo(_start_daemon(profile, obj.profile_name, workers))


@services.command('stop')
@service_option
@pass_context
@clean_errors
def stop(obj, services):
    """Stop the daemon, then RabbitMQ and PostgreSQL if `nanohetero services start` started them (by their PIDs)."""
    from aiida_nanohetero.profiles import services as helpers

    wanted, profile = _wanted(obj, services)
    if 'daemon' in wanted:
        click.echo(_stop_daemon(profile, obj.profile_name))
    for name in ('rabbitmq', 'postgresql'):
        if name not in wanted:
            continue
        done = helpers.stop_started([name])
        click.echo(done[0] if done else f'{name} left alone: `nanohetero services start` did not start it')


def _daemon_state(profile, name):
    from aiida_nanohetero.profiles.services import ServiceState

    if profile is None:
        return ServiceState('daemon', False, f'profile {name} does not exist', 'create it: nanohetero setup --profile')
    if profile.process_control_backend is None:
        return ServiceState('daemon', False, f'profile {name} has no broker', 'processes run in the foreground only')
    from aiida.engine.daemon.client import get_daemon_client

    client = get_daemon_client(profile.name)
    if not client.is_daemon_running:
        return ServiceState('daemon', False, 'not running', f'start it: nanohetero -p {profile.name} services start')
    try:
        workers = client.get_numprocesses(timeout=5).get('numprocesses', '?')
    except Exception:
        workers = '?'
    return ServiceState('daemon', True, f'{workers} worker(s), pid {client.get_daemon_pid()}')


def _start_daemon(profile, name, workers):
    from aiida_nanohetero.profiles import ProfileSpecError
    from aiida_nanohetero.profiles import services as helpers

    if profile is None:
        raise ProfileSpecError(
            f'profile {name} does not exist, so there is no daemon to start: create it with '
            '`nanohetero setup --profile production` (then run this again with -p and its name).'
        )
    if profile.process_control_backend is None:
        raise ProfileSpecError(f'profile {name} has no broker, so it has no daemon: processes run in the foreground.')
    for problem in (helpers.check_storage(profile), helpers.check_broker(profile)):
        if problem:
            raise ProfileSpecError(f'the daemon cannot start: {problem}')
    from aiida.engine.daemon.client import get_daemon_client
    from aiida.manage.configuration import get_config

    client = get_daemon_client(profile.name)
    if client.is_daemon_running:
        return f'daemon of {profile.name} already running (pid {client.get_daemon_pid()})'
    _verdi_on_path()
    number = workers or get_config().get_option('daemon.default_workers', scope=profile.name)
    client.start_daemon(number_workers=number)
    return f'daemon of {profile.name} started: {number} worker(s), pid {client.get_daemon_pid()}'


def _verdi_on_path() -> None:
    """The daemon is started with `verdi`: use the one of this environment even if it is not activated."""
    import pathlib
    import sys

    from aiida.engine.daemon import client

    verdi = pathlib.Path(sys.executable).parent / 'verdi'
    if client.VERDI_BIN is None and verdi.exists():
        client.VERDI_BIN = str(verdi)


def _stop_daemon(profile, name):
    if profile is None or profile.process_control_backend is None:
        return f'daemon: profile {name} has none'
    from aiida.engine.daemon.client import get_daemon_client

    client = get_daemon_client(profile.name)
    if not client.is_daemon_running:
        return f'daemon of {profile.name} was not running'
    pid = client.get_daemon_pid()
    client.stop_daemon(wait=True)
    return f'daemon of {profile.name} stopped (pid {pid})'
