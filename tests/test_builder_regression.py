"""Regression of the protocol builders: every input the campaign would pass to CP2K, serialised and compared.

For each protocol (tiny, mini, paper) and each model kind (cube, half-sphere, heterostructure, X = Br) the
``RelaxAndSinglePointWorkChain`` builder is serialised to YAML (parameters, settings, options, resources,
structure summary) and compared with the committed file in ``tests/data/builders``. A change of a protocol,
of the resources derived from the model size or of the builders' geometry shows up as a readable diff.

Regenerate after an intended change with ``NANOHETERO_REGENERATE=1 pytest tests/test_builder_regression.py``
and review the diff of the YAML files.
"""

from __future__ import annotations

import os
import pathlib

import pytest
import yaml
from aiida import orm

from aiida_nanohetero.builders import LADDER
from aiida_nanohetero.workflows.cp2k_versions import set_code_version
from aiida_nanohetero.workflows.relax_single_point import RelaxAndSinglePointWorkChain

DATA = pathlib.Path(__file__).parent / 'data' / 'builders'
MODELS = ('cube', 'half_sphere', 'heterostructure')


@pytest.fixture
def cluster_code(aiida_localhost):
    """A CP2K code as on a cluster: MPI on, so the paper protocol's resources are derived from the model size."""
    code = orm.InstalledCode(
        label='cp2k-cluster',
        computer=aiida_localhost,
        filepath_executable='/opt/cp2k/bin/cp2k.psmp',
        default_calc_job_plugin='cp2k',
        use_double_quotes=False,
        with_mpi=True,
    ).store()
    set_code_version(code, '2023.1')  # not installed here: its version is given, as a user would
    return code


def _model(kind: str, protocol: str):
    from aiida_nanohetero.calcfunctions.builders import (
        build_half_sphere,
        build_heterostructure,
        build_perovskite_cube,
    )

    rung = LADDER[protocol]
    anion = {} if rung.anion_radius is None else {'anion_radius': orm.Float(rung.anion_radius)}
    if kind == 'cube':
        return build_perovskite_cube(n=orm.Int(rung.cube_n), halide=orm.Str('Br'))
    if kind == 'half_sphere':
        return build_half_sphere(radius=orm.Float(rung.radius), **anion)
    return build_heterostructure(n=orm.Int(rung.cube_n), halide=orm.Str('Br'), radius=orm.Float(rung.radius), **anion)


def _plain(value):
    """Builder inputs as plain YAML-able values (nodes by content, never by pk or uuid)."""
    if isinstance(value, orm.Dict):
        return value.get_dict()
    if isinstance(value, orm.StructureData):
        return {'formula': value.get_formula(), 'n_atoms': len(value.sites)}
    if isinstance(value, orm.AbstractCode):
        return f'<code {value.default_calc_job_plugin}>'
    if isinstance(value, orm.SinglefileData):
        return f'<file {value.filename}>'
    if isinstance(value, orm.ArrayData):
        return {name: value.get_shape(name) for name in sorted(value.get_arraynames())}
    if isinstance(value, orm.BaseType):
        return value.value
    if isinstance(value, orm.Data):
        return f'<{type(value).__name__}>'
    if isinstance(value, dict) or hasattr(value, 'items'):
        return {key: _plain(item) for key, item in sorted(value.items()) if item is not None and item != {}}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def serialise(builder) -> dict:
    return _plain(builder._inputs(prune=True))


@pytest.mark.parametrize('protocol', ['tiny', 'mini', 'paper'])
def test_protocol_builders_match_the_committed_serialisation(protocol, cluster_code, fake_cp2k_code):
    code = cluster_code if protocol == 'paper' else fake_cp2k_code
    serialised = {}
    for kind in MODELS:
        model = _model(kind, protocol)
        builder = RelaxAndSinglePointWorkChain.get_builder_from_protocol(
            code, model['structure'], protocol, labels=model['labels']
        )
        serialised[kind] = serialise(builder)
    path = DATA / f'{protocol}.yaml'
    text = yaml.safe_dump(serialised, sort_keys=True, width=120)
    if os.environ.get('NANOHETERO_REGENERATE'):
        path.write_text(text)
    assert path.exists(), f'{path} missing: run with NANOHETERO_REGENERATE=1 once and commit it'
    assert yaml.safe_load(path.read_text()) == yaml.safe_load(text), (
        f'the {protocol} builders changed; if intended, regenerate {path.name} (see the module docstring)'
    )


@pytest.fixture
def fake_cp2k_code(aiida_localhost):
    code = orm.InstalledCode(
        label='fake-cp2k', computer=aiida_localhost, filepath_executable='/bin/true', default_calc_job_plugin='cp2k'
    ).store()
    set_code_version(code, '2023.1')  # /bin/true is no CP2K: its version is given, as a user would
    return code
