"""RelaxAndSinglePointWorkChain end to end with real CP2K on the n = 1 cube of the ``tiny`` campaign: relaxation,
single point from the relaxed wavefunction, and the orbital analysis calcfunctions, cross-checked against CP2K's
own PDOS."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from aiida import orm

pytestmark = pytest.mark.cp2k


@pytest.fixture(scope='session')
def cube_relax_single_point(tiny_cube):
    """The tiny campaign's cube (shared with the campaign tests: one real CP2K run serves both)."""
    return tiny_cube


def _calcs(workchain) -> list[orm.CalcJobNode]:
    return sorted((n for n in workchain.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)


def test_finishes_with_every_output(cube_relax_single_point):
    node = cube_relax_single_point
    assert node.is_finished_ok, node.exit_message
    for name in ('structure', 'relaxed_structure', 'output_parameters', 'retrieved', 'orbitals', 'ipr', 'summary'):
        assert name in node.outputs


def test_single_point_starts_from_the_relaxed_geometry_and_wavefunction(cube_relax_single_point):
    node = cube_relax_single_point
    relax_calcs = _calcs(node.base.links.get_outgoing(link_label_filter='relax').one().node)
    (single_point,) = _calcs(node.base.links.get_outgoing(link_label_filter='single_point').one().node)
    assert relax_calcs[-1].inputs.parameters['GLOBAL']['RUN_TYPE'] == 'GEO_OPT'
    assert single_point.inputs.parameters['GLOBAL']['RUN_TYPE'] == 'ENERGY'
    assert single_point.inputs.structure.uuid == node.outputs.relaxed_structure.uuid
    assert single_point.inputs.parent_calc_folder.uuid == relax_calcs[-1].outputs.remote_folder.uuid
    assert single_point.inputs.parameters['FORCE_EVAL']['DFT']['SCF']['SCF_GUESS'] == 'RESTART'
    # the relaxation moved the atoms and lowered the energy
    before = node.outputs.structure.get_ase().get_positions()
    after = node.outputs.relaxed_structure.get_ase().get_positions()
    assert np.abs(after - before).max() > 0.01
    first = relax_calcs[0].outputs.retrieved.base.repository.get_object_content('aiida.out')
    unrelaxed = next(float(line.split()[-1]) for line in first.splitlines() if 'Total FORCE_EVAL' in line)
    assert node.outputs.output_parameters['energy'] < unrelaxed


def test_window_holds_the_gap_and_what_the_analysis_needs(cube_relax_single_point):
    orbitals = cube_relax_single_point.outputs.orbitals
    assert orbitals.base.attributes.get('homo_index') == 41  # 82 valence electrons
    assert list(orbitals.get_array('indices')) == list(range(22, 62))
    assert orbitals.get_array('coefficients').shape == (147, 40)  # 147 AOs of Cs4PbBr6 in DZVP-MOLOPT-SR-GTH
    retrieved = cube_relax_single_point.outputs.retrieved.base.repository.list_object_names()
    assert any(name.endswith('.csr') for name in retrieved)
    assert sum(name.endswith('.pdos') for name in retrieved) == 3 + 1  # one per kind + one per domain list


def test_ipr_and_contributions_are_physical(cube_relax_single_point):
    ipr = cube_relax_single_point.outputs.ipr
    n_atoms = 11
    values = ipr.get_array('ipr')
    assert np.all(values >= 1 / n_atoms - 1e-9) and np.all(values <= 1 + 1e-9)
    np.testing.assert_allclose(ipr.get_array('element_contributions').sum(axis=0), 1.0, atol=1e-8)
    np.testing.assert_allclose(ipr.get_array('populations').sum(axis=0), 1.0, atol=1e-8)
    assert ipr.base.attributes.get('domains') == ['perovskite']
    np.testing.assert_allclose(ipr.get_array('domain_contributions'), 1.0, atol=1e-8)
    # provenance: the IPR was computed from the single point's files
    assert ipr.creator.process_label == 'compute_ipr'
    assert ipr.creator.inputs.retrieved.uuid == cube_relax_single_point.outputs.retrieved.uuid


def test_lowdin_populations_reproduce_cp2k_pdos(cube_relax_single_point, tmp_path):
    """CP2K's PDOS is a Löwdin projection too: our populations summed per kind must agree within 1e-4."""
    from aiida_nanohetero.analysis import compare_with_pdos, find_pdos_files

    retrieved = cube_relax_single_point.outputs.retrieved
    for name in retrieved.base.repository.list_object_names():
        if name.endswith('.pdos'):
            (tmp_path / name).write_bytes(retrieved.base.repository.get_object_content(name, mode='rb'))
    by_kind, by_list = find_pdos_files(tmp_path)
    assert set(by_kind) == {'Cs', 'Pb', 'Br'} and len(by_list) == 1
    ipr = cube_relax_single_point.outputs.ipr
    elements = cube_relax_single_point.outputs.orbitals.get_array('atom_elements')
    deviations = compare_with_pdos(ipr.get_array('populations'), ipr.get_array('indices'), list(elements), by_kind)
    assert max(deviations.values()) < 1e-4, deviations
    assert pathlib.Path(tmp_path).is_dir()


def test_summary_names_the_edges(cube_relax_single_point):
    summary = cube_relax_single_point.outputs.summary.get_dict()
    orbitals = cube_relax_single_point.outputs.orbitals
    assert summary['homo']['mo'] == 41 and summary['lumo']['mo'] == 42
    assert summary['gap_ev'] == pytest.approx(orbitals.base.attributes.get('gap_ev'))
    assert summary['ipr_method'] == 'paper' and summary['ipr_threshold'] == 0.03
    # an 11-atom cluster cannot have IPR < 0.03 (IPR >= 1/11): the summary says so instead of inventing edges
    assert summary['vb_edge'] is None and any('1/N_atoms' in warning for warning in summary['warnings'])
