"""The package installs as one import package, ``aiida_nanohetero``, with its subpackages and data files."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def wheel_path(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob('aiida_nanohetero-*.whl')
    return path


@pytest.fixture(scope='module')
def wheel(wheel_path) -> zipfile.ZipFile:
    return zipfile.ZipFile(wheel_path)


def test_wheel_holds_only_the_aiida_nanohetero_package(wheel):
    top_level = {name.split('/')[0] for name in wheel.namelist()}
    assert {t for t in top_level if not t.endswith('.dist-info')} == {'aiida_nanohetero'}
    names = set(wheel.namelist())
    for subpackage in ('workflows', 'calcfunctions', 'builders', 'analysis', 'profiles', 'cli'):
        assert f'aiida_nanohetero/{subpackage}/__init__.py' in names
    assert 'aiida_nanohetero/profiles/local.yaml' in names
    assert 'aiida_nanohetero/workflows/protocols/single_point.yaml' in names
    assert 'aiida_nanohetero/py.typed' in names
    assert not any(name.startswith('aiida_nanohetero/tests/') for name in names)


def test_wheel_registers_entry_points(wheel):
    (entry_points,) = [n for n in wheel.namelist() if n.endswith('entry_points.txt')]
    text = wheel.read(entry_points).decode()
    assert 'nanohetero = aiida_nanohetero.cli:cli' in text
    assert 'nanohetero.single_point = aiida_nanohetero.workflows.single_point:SinglePointWorkChain' in text


def test_imports_from_outside_the_repository(tmp_path):
    code = (
        'import aiida_nanohetero.workflows, aiida_nanohetero.analysis, aiida_nanohetero.profiles as p; '
        'print(p.SPEC_DIR)'
    )
    result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert (pathlib.Path(result.stdout.strip()) / 'local.yaml').is_file()
    bare = subprocess.run([sys.executable, '-c', 'import workflows'], cwd=tmp_path, capture_output=True, text=True)
    assert bare.returncode != 0  # nothing installs a bare top-level module


def test_plain_install_works_outside_the_repository(wheel_path, tmp_path):
    """A plain (non-editable) install of the wheel: every subpackage and data file imports from elsewhere."""
    target = tmp_path / 'site'
    subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(target), str(wheel_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code = (
        'import aiida_nanohetero, aiida_nanohetero.builders as b, aiida_nanohetero.analysis, '
        'aiida_nanohetero.workflows.campaign, aiida_nanohetero.cli, aiida_nanohetero.profiles as p; '
        'from aiida_nanohetero.workflows.single_point import SinglePointWorkChain as S; '
        'print(aiida_nanohetero.__file__); print(p.load_spec("local").code["executable"]); '
        'print(sorted(S.get_available_protocols())); print(b.perovskite_cube(1).get_chemical_formula())'
    )
    env = {**os.environ, 'PYTHONPATH': str(target), 'AIIDA_PATH': str(tmp_path)}
    result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    where, executable, protocols, formula = result.stdout.split('\n')[:4]
    assert where.startswith(str(target))
    assert executable == 'cp2k.psmp'
    assert protocols == "['mini', 'paper', 'tiny']"
    assert formula == 'Br6Cs4Pb'
