"""The services of a production AiiDA profile on a workstation: PostgreSQL, RabbitMQ and the AiiDA daemon.

``nanohetero services start|status|stop`` (see :mod:`aiida_nanohetero.cli.services`) uses these helpers. They
work with Debian's packages and without systemd: a service that is not running is started directly (PostgreSQL
with ``pg_ctlcluster``, RabbitMQ with its foreground ``rabbitmq-server`` as the ``rabbitmq`` user, which needs
root), its PID is recorded in a state folder, and ``stop`` stops exactly the processes that ``start`` started,
by PID. A service that was already running (for instance under systemd) is used and never stopped. Where the
helper cannot start a service itself (not root, service not installed), it says which command will.

RabbitMQ's default ``consumer_timeout`` (30 minutes) makes RabbitMQ close the channel of a daemon worker whose
task runs longer than that, which breaks long AiiDA processes: a RabbitMQ started here has it disabled
(``-rabbit consumer_timeout undefined``), and ``status`` checks the value of a RabbitMQ started otherwise.

The embedded default profile (SQLite, ZeroMQ broker) needs none of these.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
from typing import Any

from aiida_nanohetero.profiles import ProfileSpecError

__all__ = (
    'SERVICES',
    'ServiceError',
    'ServiceState',
    'check_broker',
    'check_consumer_timeout',
    'check_storage',
    'drop_database',
    'ensure_database',
    'postgres_state',
    'probe_postgres',
    'probe_rabbitmq',
    'rabbitmq_state',
    'start_postgres',
    'start_rabbitmq',
    'state_dir',
    'stop_started',
)

SERVICES = ('postgresql', 'rabbitmq', 'daemon')
RABBITMQ_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server'  # Debian's foreground server script
RABBITMQ_HOME = '/var/lib/rabbitmq'
#: What to put in /etc/rabbitmq/advanced.config for a RabbitMQ managed by systemd.
ADVANCED_CONFIG = '[{rabbit, [{consumer_timeout, undefined}]}].'
LOCAL_HOSTS = ('', 'localhost', '127.0.0.1', '::1')


class ServiceError(ProfileSpecError):
    """A service is missing or could not be started; the message says what to do."""


@dataclasses.dataclass
class ServiceState:
    name: str
    running: bool
    detail: str
    hint: str = ''


# --- the state folder: what `start` started, so that `stop` stops exactly that -------------------------------------


def state_dir() -> pathlib.Path:
    """Where PIDs and logs of the services started here are kept: ``$NANOHETERO_SERVICES_DIR``; else, for root
    (who starts PostgreSQL and RabbitMQ), ``/run/nanohetero-services``, which a reboot clears like the PIDs it
    holds; else a folder in AiiDA's configuration folder."""
    if os.environ.get('NANOHETERO_SERVICES_DIR'):
        path = pathlib.Path(os.environ['NANOHETERO_SERVICES_DIR'])
    elif os.geteuid() == 0 and os.access('/run', os.W_OK):
        path = pathlib.Path('/run/nanohetero-services')
    else:
        from aiida_nanohetero.profiles.setup import aiida_config_dir

        path = aiida_config_dir() / 'nanohetero-services'
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read_state() -> dict[str, Any]:
    path = state_dir() / 'started.json'
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_state(state: dict[str, Any]) -> None:
    (state_dir() / 'started.json').write_text(json.dumps(state, indent=2))


def _record(name: str, **info: Any) -> None:
    state = _read_state()
    state[name] = info
    _write_state(state)


def _forget(name: str) -> None:
    state = _read_state()
    state.pop(name, None)
    _write_state(state)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) counts as stopped
        return pathlib.Path(f'/proc/{pid}/stat').read_text().split(')')[-1].split()[0] != 'Z'
    except (OSError, IndexError):
        return True


def _stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 60) -> bool:
    """Send ``sig`` to ``pid`` and wait until it is gone; SIGKILL after ``timeout`` seconds. True if it was running."""
    if not _alive(pid):
        return False
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True


def _port_open(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host or 'localhost', int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _wait(predicate, timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --- PostgreSQL ----------------------------------------------------------------------------------------------------


def _clusters() -> list[dict[str, str]]:
    """Debian's PostgreSQL clusters (``pg_lsclusters``): version, name, port, status, owner, data directory."""
    if shutil.which('pg_lsclusters') is None:
        return []
    result = subprocess.run(['pg_lsclusters', '--no-header'], capture_output=True, text=True, check=False)
    keys = ('version', 'name', 'port', 'status', 'owner', 'datadir', 'log')
    return [dict(zip(keys, line.split(), strict=False)) for line in result.stdout.splitlines() if line.strip()]


def postgres_state(host: str = 'localhost', port: int = 5432) -> ServiceState:
    if _port_open(host, port):
        started = _read_state().get('postgresql')
        by_us = f', started by `nanohetero services start` (pid {started["pid"]})' if started else ''
        return ServiceState('postgresql', True, f'accepting connections on {host}:{port}{by_us}')
    if host not in LOCAL_HOSTS:
        return ServiceState(
            'postgresql', False, f'no answer from {host}:{port}', 'check that the database server is up and reachable'
        )
    clusters = _clusters()
    if not clusters:
        return ServiceState(
            'postgresql',
            False,
            'not installed',
            'install it: `sudo apt-get install postgresql` (Debian/Ubuntu), then `nanohetero services start`',
        )
    on_port = [c for c in clusters if int(c['port']) == int(port)]
    if not on_port:
        listing = ', '.join(f'{c["version"]}/{c["name"]} on port {c["port"]}' for c in clusters)
        return ServiceState(
            'postgresql',
            False,
            f'no local PostgreSQL cluster uses port {port} (clusters: {listing})',
            'fix the port (profile.storage_config.database_port), or create a cluster on it',
        )
    cluster = on_port[0]
    return ServiceState(
        'postgresql',
        False,
        f'cluster {cluster["version"]}/{cluster["name"]} is {cluster["status"]} (port {cluster["port"]})',
        'start it: `nanohetero services start` (as root), or `sudo systemctl start postgresql`',
    )


def start_postgres(host: str = 'localhost', port: int = 5432) -> str:
    """Start the local PostgreSQL cluster if it is not running. Returns what was done."""
    if _port_open(host, port):
        return f'PostgreSQL already running on {host}:{port}'
    if host not in LOCAL_HOSTS:
        raise ServiceError(
            f'PostgreSQL at {host}:{port} does not answer, and it is not on this machine: start it there.'
        )
    clusters = [c for c in _clusters() if int(c['port']) == int(port)] or _clusters()
    if not clusters:
        raise ServiceError(
            'PostgreSQL is not installed: install it with `sudo apt-get install postgresql` (Debian/Ubuntu), '
            'then run `nanohetero services start` again.'
        )
    cluster = clusters[0]
    datadir = pathlib.Path(cluster['datadir'])
    if os.geteuid() != 0 and not os.access(datadir, os.W_OK):
        raise ServiceError(
            f'PostgreSQL {cluster["version"]}/{cluster["name"]} is down and only root can start it: '
            f'`sudo systemctl start postgresql` (or `sudo pg_ctlcluster {cluster["version"]} {cluster["name"]} start`).'
        )
    result = subprocess.run(
        ['pg_ctlcluster', cluster['version'], cluster['name'], 'start'], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not _wait(lambda: _port_open(host, port), 60):
        raise ServiceError(
            f'PostgreSQL {cluster["version"]}/{cluster["name"]} did not start: {result.stderr.strip() or result.stdout}'
            f' (log: {cluster.get("log", "/var/log/postgresql")}).'
        )
    pid = int((datadir / 'postmaster.pid').read_text().split()[0])
    _record('postgresql', pid=pid, cluster=f'{cluster["version"]}/{cluster["name"]}', signal=int(signal.SIGINT))
    return f'PostgreSQL {cluster["version"]}/{cluster["name"]} started (pid {pid}, port {cluster["port"]})'


def _connect_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    return {
        'host': config.get('database_hostname') or 'localhost',
        'port': int(config.get('database_port') or 5432),
        'user': config.get('database_username'),
        'password': config.get('database_password'),
        'dbname': config.get('database_name'),
        'connect_timeout': 5,
    }


def probe_postgres(config: dict[str, Any]) -> str | None:
    """Try to connect with a ``core.psql_dos`` storage config. ``None`` if it works, else the reason."""
    import psycopg

    try:
        with psycopg.connect(**_connect_kwargs(config)):
            return None
    except psycopg.OperationalError as exception:
        return str(exception).strip().splitlines()[-1] if str(exception).strip() else type(exception).__name__


def _psql_as_superuser(sql: str, port: int) -> tuple[bool, str]:
    """Run ``sql`` as the ``postgres`` superuser through the local socket (root: runuser; else passwordless sudo)."""
    psql = ['psql', '-X', '-q', '-t', '-A', '-p', str(port), '-v', 'ON_ERROR_STOP=1', '-c', sql]
    if os.geteuid() == 0:
        command = ['runuser', '-u', 'postgres', '--', *psql]
    elif shutil.which('sudo'):
        command = ['sudo', '-n', '-u', 'postgres', *psql]
    else:
        return False, 'no way to run psql as the postgres user (needs root or sudo)'
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60, cwd='/')
    except (OSError, subprocess.TimeoutExpired) as exception:
        return False, str(exception)
    return result.returncode == 0, (result.stdout if result.returncode == 0 else result.stderr).strip()


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _identifier(value: str) -> str:
    return '"' + str(value).replace('"', '""') + '"'


def ensure_database(config: dict[str, Any]) -> str | None:
    """Create the role and database of a ``core.psql_dos`` storage config if they do not exist yet.

    Returns what was created (``None`` if both existed). Raises :class:`ServiceError` with the SQL to run by hand
    when it cannot do it (database on another machine, or no superuser access).
    """
    kwargs = _connect_kwargs(config)
    user, password, dbname = kwargs['user'], kwargs['password'], kwargs['dbname']
    statements = [
        f'CREATE USER {_identifier(user)} WITH PASSWORD {_literal("...")};',
        f"CREATE DATABASE {_identifier(dbname)} OWNER {_identifier(user)} ENCODING 'UTF8' TEMPLATE template0;",
    ]
    by_hand = (
        f'create them as the database superuser, e.g. `sudo -u postgres psql -c "{statements[0]}"` and '
        f'`sudo -u postgres psql -c "{statements[1]}"` (with the password of profile.storage_config.database_password)'
    )
    if kwargs['host'] not in LOCAL_HOSTS:
        raise ServiceError(f'cannot log in to database "{dbname}" on {kwargs["host"]} as "{user}": {by_hand}.')
    port = kwargs['port']
    ok, output = _psql_as_superuser(f'SELECT 1 FROM pg_roles WHERE rolname = {_literal(user)}', port)
    if not ok:
        raise ServiceError(f'role "{user}" / database "{dbname}" could not be checked ({output}): {by_hand}.')
    created = []
    if output.strip() != '1':
        ok, output = _psql_as_superuser(
            f'CREATE USER {_identifier(user)} WITH PASSWORD {_literal(password)} CREATEDB', port
        )
        if not ok:
            raise ServiceError(f'could not create the database role "{user}" ({output}): {by_hand}.')
        created.append(f'role {user}')
    ok, output = _psql_as_superuser(f'SELECT 1 FROM pg_database WHERE datname = {_literal(dbname)}', port)
    if ok and output.strip() != '1':
        ok, output = _psql_as_superuser(
            f"CREATE DATABASE {_identifier(dbname)} OWNER {_identifier(user)} ENCODING 'UTF8' TEMPLATE template0", port
        )
        if not ok:
            raise ServiceError(f'could not create the database "{dbname}" ({output}): {by_hand}.')
        created.append(f'database {dbname}')
    return ', '.join(created) or None


def drop_database(config: dict[str, Any]) -> None:
    """Drop the database and role of a storage config (used by the tests to clean up after themselves)."""
    kwargs = _connect_kwargs(config)
    _psql_as_superuser(f'DROP DATABASE IF EXISTS {_identifier(kwargs["dbname"])}', kwargs['port'])
    _psql_as_superuser(f'DROP ROLE IF EXISTS {_identifier(kwargs["user"])}', kwargs['port'])


# --- RabbitMQ ------------------------------------------------------------------------------------------------------


def _broker_params(config: dict[str, Any] | None) -> dict[str, Any]:
    from aiida.brokers.rabbitmq.defaults import BROKER_DEFAULTS

    config = config or {}
    return {key: config.get(f'broker_{key}', default) for key, default in BROKER_DEFAULTS.items() if key != 'heartbeat'}


def probe_rabbitmq(config: dict[str, Any] | None = None) -> str | None:
    """Try to connect with a ``core.rabbitmq`` broker config. ``None`` if it works, else the reason."""
    params = _broker_params(config)
    if not _port_open(params['host'], params['port']):
        return f'nothing listens on {params["host"]}:{params["port"]}'
    from aiida.brokers.rabbitmq.defaults import detect_rabbitmq_config

    try:
        detect_rabbitmq_config(**params)
    except ConnectionError as exception:
        cause = exception.__cause__
        return f'connection refused by RabbitMQ ({cause or exception})'
    return None


def check_consumer_timeout() -> str:
    """``disabled``, ``N ms`` (a problem for long processes) or ``unknown (...)`` for the local RabbitMQ."""
    if shutil.which('rabbitmqctl') is None:
        return 'unknown (rabbitmqctl not found)'
    try:
        result = subprocess.run(
            ['rabbitmqctl', 'eval', 'application:get_env(rabbit, consumer_timeout).'],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd='/',
        )
    except (OSError, subprocess.TimeoutExpired) as exception:
        return f'unknown ({exception})'
    output = result.stdout.strip()
    if result.returncode != 0:
        return 'unknown (rabbitmqctl needs root or the rabbitmq user)'
    if output in ('{ok,undefined}', '{ok,infinity}', '{ok,false}'):
        return 'disabled'
    if output.startswith('{ok,') and output[4:-1].isdigit():
        return f'{int(output[4:-1]) // 60000} min'
    return 'unknown (not set: RabbitMQ 3.8.15+ then uses 30 min)' if output == 'undefined' else f'unknown ({output})'


def rabbitmq_state(config: dict[str, Any] | None = None) -> ServiceState:
    params = _broker_params(config)
    reason = probe_rabbitmq(config)
    if reason is None:
        timeout = check_consumer_timeout()
        started = _read_state().get('rabbitmq')
        by_us = f', started by `nanohetero services start` (pid {started["pid"]})' if started else ''
        hint = ''
        if timeout != 'disabled' and not timeout.startswith('unknown (rabbitmqctl needs'):
            hint = (
                f'consumer_timeout is {timeout}: AiiDA processes running longer will break; put '
                f'`{ADVANCED_CONFIG}` in /etc/rabbitmq/advanced.config and restart RabbitMQ'
            )
        detail = f'accepting connections on {params["host"]}:{params["port"]}, consumer_timeout {timeout}{by_us}'
        return ServiceState('rabbitmq', True, detail, hint)
    if shutil.which('rabbitmqctl') is None and not os.path.exists(RABBITMQ_SERVER):
        return ServiceState(
            'rabbitmq',
            False,
            'not installed',
            'install it: `sudo apt-get install rabbitmq-server` (Debian/Ubuntu), then `nanohetero services start`',
        )
    return ServiceState(
        'rabbitmq',
        False,
        reason,
        'start it: `nanohetero services start` (as root), or `sudo systemctl start rabbitmq-server`',
    )


def _epmd_running() -> bool:
    if shutil.which('epmd') is None:
        return False
    return subprocess.run(['epmd', '-names'], capture_output=True, check=False).returncode == 0


def start_rabbitmq(config: dict[str, Any] | None = None, timeout: float = 120) -> str:
    """Start Debian's RabbitMQ in the background with ``consumer_timeout`` disabled, if it is not running."""
    params = _broker_params(config)
    if probe_rabbitmq(config) is None:
        timeout = check_consumer_timeout()
        return f'RabbitMQ already running on {params["host"]}:{params["port"]} (consumer_timeout {timeout})'
    if params['host'] not in LOCAL_HOSTS:
        raise ServiceError(
            f'RabbitMQ at {params["host"]}:{params["port"]} does not answer and is not on this machine: start it there.'
        )
    if not os.path.exists(RABBITMQ_SERVER):
        raise ServiceError(
            'RabbitMQ is not installed: install it with `sudo apt-get install rabbitmq-server` (Debian/Ubuntu), '
            'then run `nanohetero services start` again.'
        )
    if os.geteuid() != 0:
        raise ServiceError(
            'RabbitMQ is down and only root can start it here: `sudo systemctl start rabbitmq-server` '
            f'(and disable its consumer_timeout: `{ADVANCED_CONFIG}` in /etc/rabbitmq/advanced.config).'
        )
    epmd_before = _epmd_running()
    log = state_dir() / 'rabbitmq.log'
    env = {
        'PATH': os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin'),
        'HOME': RABBITMQ_HOME,
        'LANG': 'C.UTF-8',
        # the default consumer_timeout (30 min) breaks AiiDA processes that run longer
        'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS': '-rabbit consumer_timeout undefined',
    }
    with open(log, 'ab') as handle:
        process = subprocess.Popen(  # the foreground server script: SIGTERM to it stops RabbitMQ cleanly
            [RABBITMQ_SERVER],
            user='rabbitmq',
            group='rabbitmq',
            cwd=RABBITMQ_HOME,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _record('rabbitmq', pid=process.pid, epmd_before=epmd_before, signal=int(signal.SIGTERM))
    if not _wait(lambda: process.poll() is None and probe_rabbitmq(config) is None, timeout, interval=1):
        tail = log.read_text(errors='replace')[-2000:]
        stop_started(['rabbitmq'])
        raise ServiceError(f'RabbitMQ did not start within {timeout:.0f} s; the end of {log}:\n{tail}')
    return f'RabbitMQ started (pid {process.pid}, consumer_timeout {check_consumer_timeout()}, log {log})'


# --- the AiiDA daemon and the broker of a profile ------------------------------------------------------------------


def check_broker(profile) -> str | None:
    """``None`` if the profile's broker answers (or needs no server), else one actionable sentence."""
    if profile.process_control_backend != 'core.rabbitmq':
        return None
    reason = probe_rabbitmq(profile.process_control_config)
    if reason is None:
        return None
    return (
        f'RabbitMQ, the broker of profile {profile.name}, does not answer ({reason}): start it with '
        '`nanohetero services start` (or `sudo systemctl start rabbitmq-server`).'
    )


def check_storage(profile) -> str | None:
    """``None`` if the profile's database answers (or is a file), else one actionable sentence."""
    if profile.storage_backend != 'core.psql_dos':
        return None
    config = profile.storage_config
    reason = probe_postgres(config)
    if reason is None:
        return None
    where = f'{config.get("database_hostname") or "localhost"}:{config.get("database_port") or 5432}'
    return (
        f'the PostgreSQL database of profile {profile.name} ({config.get("database_name")} on {where}) does not '
        f'answer: {reason}. Start PostgreSQL with `nanohetero services start` (or `sudo systemctl start postgresql`).'
    )


def stop_started(names: list[str] | None = None) -> list[str]:
    """Stop the services that ``start`` started (all of them, or those named), by their recorded PIDs."""
    done = []
    state = _read_state()
    for name in names or [n for n in ('rabbitmq', 'postgresql') if n in state]:
        info = state.get(name)
        if not info:
            continue
        pid = int(info['pid'])
        was_running = _stop_pid(pid, int(info.get('signal', signal.SIGTERM)))
        if name == 'rabbitmq' and not info.get('epmd_before') and shutil.which('epmd'):
            # Erlang's port mapper was started along with RabbitMQ: stop it too
            subprocess.run(['epmd', '-kill'], capture_output=True, check=False)
        _forget(name)
        done.append(f'{name} stopped (pid {pid})' if was_running else f'{name} was no longer running (pid {pid})')
    return done
