"""``nanohetero setup`` / ``status`` as a user runs them: a fresh AIIDA_PATH per test, the real console script."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

from aiida_nanohetero.profiles import ProfileSpecError, available_specs, load_spec

NANOHETERO = [sys.executable, '-m', 'aiida_nanohetero.cli']
needs_cp2k = pytest.mark.skipif(shutil.which('cp2k.psmp') is None and not os.environ.get('CI'), reason='no CP2K')


def run_cli(args, aiida_path: pathlib.Path, check=True):
    env = {**os.environ, 'AIIDA_PATH': str(aiida_path)}
    env.pop('NANOHETERO_PROFILE', None)
    result = subprocess.run([*NANOHETERO, *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def config(aiida_path: pathlib.Path) -> dict:
    path = aiida_path / '.aiida' / 'config.json'
    return json.loads(path.read_text()) if path.exists() else {}


def write_spec(tmp_path, **changes) -> pathlib.Path:
    data = yaml.safe_load((pathlib.Path(load_spec('local').source)).read_text())
    for dotted, value in changes.items():
        section, key = dotted.split('__')
        data[section][key] = value
    path = tmp_path / 'custom.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


def test_local_spec_is_the_embedded_default():
    spec = load_spec('local')
    assert 'local' in available_specs()
    assert spec.profile['storage'] == 'core.sqlite_dos'
    assert spec.profile['broker'] in ('core.zeromq', 'none')
    assert (spec.computer['transport'], spec.computer['scheduler']) == ('core.local', 'core.direct')
    assert spec.computer['use_login_shell'] is False
    assert 'OMP_NUM_THREADS=1' in spec.computer['prepend_text']
    assert spec.code['executable'] == 'cp2k.psmp'
    assert spec.code['with_mpi'] is False


@pytest.mark.parametrize(
    ('content', 'message'),
    [
        ('profile: [unclosed', 'is not valid YAML at line'),
        ('- a list\n', 'must be a YAML mapping'),
        ('profile: {name: x}\nservers: {}\n', 'unknown section(s) servers'),
        ('profile: {name: x, colour: red}\n', 'unknown key(s) profile.colour'),
        ('computer: {label: c}\n', 'missing required key(s) profile.name'),
        (
            'profile: {name: x, storage: core.mysql}\ncomputer: {label: c}\n',
            'profile.storage "core.mysql" is not supported',
        ),
        ('profile: {name: x, broker: kafka}\ncomputer: {label: c}\n', 'profile.broker "kafka" is not supported'),
    ],
)
def test_bad_specs_are_named(tmp_path, content, message):
    path = tmp_path / 'bad.yaml'
    path.write_text(content)
    with pytest.raises(ProfileSpecError, match=message.replace('(', r'\(').replace(')', r'\)')):
        load_spec(path)


def test_unknown_profile_name_lists_the_valid_ones(tmp_path):
    result = run_cli(['setup', '--profile', 'nosuch'], tmp_path, check=False)
    assert result.returncode != 0
    assert 'unknown profile "nosuch": choose one of local' in result.stderr
    assert 'Traceback' not in result.stderr
    assert 'nanohetero' not in config(tmp_path).get('profiles', {})


def test_malformed_yaml_is_one_clear_sentence(tmp_path):
    path = tmp_path / 'broken.yaml'
    path.write_text('profile:\n  name: x\n   storage: [\n')
    result = run_cli(['setup', '--profile', str(path)], tmp_path, check=False)
    assert result.returncode != 0
    assert 'is not valid YAML at line' in result.stderr
    assert 'Traceback' not in result.stderr


def test_missing_cp2k_stops_before_anything_is_created(tmp_path):
    spec = write_spec(tmp_path, code__executable='cp2k-that-does-not-exist.psmp')
    result = run_cli(['setup', '--profile', str(spec)], tmp_path, check=False)
    assert result.returncode != 0
    assert 'CP2K executable "cp2k-that-does-not-exist.psmp" not found on PATH' in result.stderr
    assert 'apt-get install cp2k' in result.stderr
    assert config(tmp_path).get('profiles', {}) == {}
    assert not (tmp_path / '.aiida' / 'repository').exists() or not any((tmp_path / '.aiida' / 'repository').iterdir())


@needs_cp2k
def test_setup_is_idempotent_and_leaves_the_default_profile_alone(tmp_path):
    # a user's existing default profile must survive our setup
    other = write_spec(tmp_path, profile__name='users-own', profile__broker='none', computer__label='own-pc')
    run_cli(['setup', '--profile', str(other), '--set-default'], tmp_path)
    assert config(tmp_path)['default_profile'] == 'users-own'

    first = run_cli(['setup'], tmp_path)
    assert f'AiiDA data in:  {tmp_path / ".aiida"}' in first.stdout
    assert 'profile          nanohetero' in first.stdout and 'created' in first.stdout
    assert 'cp2k version' in first.stdout and 'recorded (CP2K 20' in first.stdout  # read from the program once
    assert config(tmp_path)['default_profile'] == 'users-own'

    second = run_cli(['setup', '--profile', 'local'], tmp_path)
    lines = [line for line in second.stdout.splitlines() if line.startswith('  ')]
    assert len(lines) == 6  # profile, computer, code, its CP2K version, basis, potential
    assert all(line.split()[-1] == 'unchanged' or 'unchanged (' in line for line in lines), second.stdout
    assert 'Nothing to do' in second.stdout

    status = run_cli(['status'], tmp_path)
    assert 'cp2k@localhost' in status.stdout
    assert 'CP2K version' in status.stdout
    assert 'BASIS_MOLOPT' in status.stdout and 'GTH_POTENTIALS' in status.stdout
    assert 'daemon' in status.stdout


@needs_cp2k
def test_setup_updates_a_changed_computer(tmp_path):
    run_cli(['setup'], tmp_path)
    spec = write_spec(tmp_path, computer__prepend_text='export OMP_NUM_THREADS=1\nexport FOO=bar\n')
    result = run_cli(['setup', '--profile', str(spec)], tmp_path)
    assert 'computer         localhost                        updated (changed: prepend_text)' in result.stdout


@needs_cp2k
def test_existing_profile_of_another_kind_is_refused(tmp_path):
    run_cli(['setup'], tmp_path)
    spec = write_spec(tmp_path, profile__broker='none')
    result = run_cli(['setup', '--profile', str(spec)], tmp_path, check=False)
    assert result.returncode != 0
    assert 'already exists with storage core.sqlite_dos and broker core.zeromq' in result.stderr
    assert '--profile-name' in result.stderr


def test_status_without_profile_says_what_to_do(tmp_path):
    result = run_cli(['-p', 'absent', 'status'], tmp_path, check=False)
    assert result.returncode != 0
    assert 'AiiDA profile "absent" does not exist' in result.stderr
    assert 'nanohetero setup' in result.stderr


FOREGROUND_RUN = """
from aiida import load_profile, orm
from ase import Atoms

profile = load_profile('nanohetero')
from aiida_nanohetero.calcfunctions.cp2k import place_in_cubic_box
from aiida_nanohetero.cli.demo import _run_with_progress

builder = place_in_cubic_box.process_class.get_builder()
builder.structure = orm.StructureData(ase=Atoms('H2', positions=[(0, 0, 0), (0.74, 0, 0)]))
builder.vacuum = orm.Float(3.0)
result, node = _run_with_progress(builder, every=0.01)
print(profile.process_control_backend, node.is_finished_ok, result['result'].cell[0][0])
"""


@needs_cp2k
def test_foreground_run_needs_no_broker_running(tmp_path):
    """`nanohetero demo` and `run` run in the foreground on the embedded default, whose ZeroMQ broker is only
    started by the daemon: their runner (with its progress timer) must not wait for the broker."""
    run_cli(['setup'], tmp_path)
    env = {**os.environ, 'AIIDA_PATH': str(tmp_path)}
    result = subprocess.run(
        [sys.executable, '-c', FOREGROUND_RUN], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    backend, finished_ok, edge = result.stdout.split()[-3:]
    assert backend == 'core.zeromq' and finished_ok == 'True'
    assert float(edge) == pytest.approx(0.74 + 2 * 3.0, abs=0.01)
