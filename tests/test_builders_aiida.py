"""Builder calcfunctions (provenance) and the ``nanohetero build`` command."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read
from click.testing import CliRunner

from aiida_nanohetero.builders import LADDER, formal_charge
from aiida_nanohetero.cli.build import build


def node_count() -> int:
    from aiida import orm

    return orm.QueryBuilder().append(orm.Node).count()


# ------------------------------------------------------------------------------------------------ calcfunctions


def test_cube_calcfunction_records_provenance(aiida_profile):
    from aiida import orm

    from aiida_nanohetero.calcfunctions import build_perovskite_cube

    results, node = build_perovskite_cube.run_get_node(n=orm.Int(2), halide=orm.Str('I'))
    structure, labels = results['structure'], results['labels']
    assert node.is_finished_ok and structure.is_stored and labels.is_stored
    assert structure.creator.pk == node.pk and node.inputs.n.value == 2 and node.inputs.halide.value == 'I'
    assert sorted(structure.get_kind_names()) == ['Cs', 'I', 'Pb']  # plain element kinds for CP2K
    assert structure.get_formula() == 'Cs20I36Pb8'
    assert structure.pbc == (False, False, False)
    positions = np.array([site.position for site in structure.sites])
    cell = np.array(structure.cell)
    assert (positions > 0).all() and (positions < np.diag(cell)).all()  # inside the vacuum box
    assert labels.get_array('domain').shape == (64,) and not labels.get_array('interface').any()
    assert labels.base.attributes.get('domain_codes') == {'perovskite': 0, 'chalcohalide': 1}
    summary = labels.base.attributes.get('summary')
    assert summary['formula'] == 'Cs20Pb8I36' and summary['neutral'] and summary['ok']


def test_heterostructure_calcfunction_labels(aiida_profile):
    from aiida import orm

    from aiida_nanohetero.calcfunctions import build_heterostructure

    tiny = LADDER['tiny']
    results = build_heterostructure(n=orm.Int(tiny.cube_n), halide=orm.Str('Cl'), radius=orm.Float(tiny.radius))
    structure, labels = results['structure'], results['labels']
    domain, interface = labels.get_array('domain'), labels.get_array('interface')
    symbols = [structure.get_kind(site.kind_name).symbol for site in structure.sites]
    assert len(domain) == len(symbols) == len(interface)
    assert {symbols[i] for i in np.flatnonzero(domain == 0)} == {'Cs', 'Pb', 'Cl'}
    assert {symbols[i] for i in np.flatnonzero(domain == 1)} == {'Pb', 'S', 'Br'}
    assert interface[domain == 0].any() and interface[domain == 1].any()
    model = labels.base.attributes.get('model')
    assert model['strain'] == 'perovskite' and model['mismatch_a'] < 0  # CsPbCl3 is smaller than Pb4S3Br2
    assert labels.base.attributes.get('summary')['interface'] == int(interface.sum())


def test_sphere_calcfunctions(aiida_profile):
    from aiida import orm

    from aiida_nanohetero.calcfunctions import build_half_sphere, build_sphere

    sphere = build_sphere(radius=orm.Float(9.0))['structure']
    half = build_half_sphere(radius=orm.Float(9.0), side=orm.Int(-1))['structure']
    assert len(half.sites) < len(sphere.sites)
    for structure in (sphere, half):
        assert formal_charge(structure.get_ase()) == 0


@pytest.mark.parametrize(
    ('function', 'inputs', 'words'),
    [
        ('build_perovskite_cube', {'n': 0, 'halide': 'Br'}, ['n=0', 'integer']),
        ('build_perovskite_cube', {'n': 2, 'halide': 'F'}, ['halide', 'Cl, Br, I']),
        ('build_perovskite_cube', {'n': 2, 'halide': 'Br', 'lattice_constant': -1.0}, ['lattice_constant', 'positive']),
        ('build_sphere', {'radius': 3.0}, ['radius', 'too small']),
        ('build_half_sphere', {'radius': 9.0, 'side': 0}, ['side']),
        ('build_heterostructure', {'n': 2, 'halide': 'Br', 'radius': 9.0, 'facet': '111'}, ['facet', '{100}']),
    ],
)
def test_bad_input_stores_nothing(aiida_profile, function, inputs, words):
    from aiida import orm

    from aiida_nanohetero.calcfunctions import builders

    def node(value):
        return {int: orm.Int, float: orm.Float, str: orm.Str}[type(value)](value)

    before = node_count()
    with pytest.raises(ValueError) as info:
        getattr(builders, function)(**{key: node(value) for key, value in inputs.items()})
    for word in words:
        assert word in str(info.value)
    assert node_count() == before


# ----------------------------------------------------------------------------------------------------- the CLI


def test_done_when_command(tmp_path):
    """``nanohetero build heterostructure --halide I --preset paper -o het.xyz``: neutral, clash-free, reported."""
    output = tmp_path / 'het.xyz'
    result = CliRunner().invoke(build, ['heterostructure', '--halide', 'I', '--preset', 'paper', '-o', str(output)])
    assert result.exit_code == 0, result.output
    atoms = read(output)
    assert formal_charge(atoms) == 0
    assert {'Cs', 'Pb', 'I', 'S', 'Br'} == set(atoms.get_chemical_symbols())
    assert set(atoms.arrays) >= {'domain', 'interface'}  # extended XYZ keeps the labels
    for text in (
        'Cs175Pb399S211Br126I425',
        'PbX2-terminated',
        'neutral',
        '0 clash',
        'mismatch',
        '+6.72 %',
        'interface',
        'valid',
    ):
        assert text in result.output, text


@pytest.mark.parametrize('kind', ['cube', 'sphere', 'half-sphere', 'heterostructure'])
def test_every_command_with_a_preset(kind, tmp_path):
    output = tmp_path / 'model.cif'
    result = CliRunner().invoke(build, [kind, '--preset', 'tiny', '-o', str(output)])
    assert result.exit_code == 0, result.output
    assert formal_charge(read(output)) == 0
    assert 'status           valid' in result.output


@pytest.mark.parametrize(
    ('arguments', 'option'),
    [
        (['cube', '-n', '2', '--halide', 'F'], '--halide'),
        (['cube', '-n', '0'], '-n'),
        (['cube', '-n', '2', '--lattice-constant', '0'], '--lattice-constant'),
        (['sphere', '--diameter', '8'], '--radius/--diameter'),
        (['half-sphere', '--radius', '9', '--side', '2'], '--side'),
        (['heterostructure', '--preset', 'tiny', '--facet', '110'], '--facet'),
        (['heterostructure', '--preset', 'tiny', '--halide', 'F'], '--halide'),
        (['cube', '-n', '1', '--halide', 'Cl', '--distortion'], '--distortion'),
    ],
)
def test_bad_input_is_one_clear_message(arguments, option, tmp_path):
    output = tmp_path / 'never.xyz'
    result = CliRunner().invoke(build, [*arguments, '-o', str(output)])
    assert result.exit_code == 2
    assert f'Invalid value for {option}' in result.output or option in result.output
    assert 'Traceback' not in result.output
    assert not output.exists()


def test_size_is_required():
    result = CliRunner().invoke(build, ['heterostructure', '--halide', 'Br'])
    assert result.exit_code == 2 and '--preset' in result.output


def test_store_prints_the_pk(aiida_profile):
    from aiida import orm

    result = CliRunner().invoke(build, ['cube', '-n', '1', '--halide', 'Br', '--store', '-p', aiida_profile.name])
    assert result.exit_code == 0, result.output
    pk = int(result.output.split('StructureData pk=')[1].split()[0])
    structure = orm.load_node(pk)
    assert isinstance(structure, orm.StructureData) and structure.get_formula() == 'Br6Cs4Pb'
    assert structure.creator.process_label == 'build_perovskite_cube'


def test_store_with_an_unknown_profile_stores_nothing(aiida_profile):
    before = node_count()
    result = CliRunner().invoke(build, ['cube', '-n', '1', '--store', '-p', 'no-such-profile'])
    assert result.exit_code == 2 and 'no-such-profile' in result.output
    assert node_count() == before
