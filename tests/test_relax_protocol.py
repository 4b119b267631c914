"""Protocols and builder of RelaxAndSinglePointWorkChain (no CP2K run needed)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from ase import Atoms

from aiida_nanohetero.workflows.cp2k_versions import set_code_version
from aiida_nanohetero.workflows.protocols import ProtocolError
from aiida_nanohetero.workflows.relax_single_point import (
    RelaxAndSinglePointWorkChain,
    mo_window_range,
    valence_electrons,
)

KINDS = RelaxAndSinglePointWorkChain.get_protocol_inputs('tiny')['kinds']


@pytest.fixture
def cs4pbbr6():
    a = 5.83
    positions = [(0, 0, 0)] + [tuple(s * a / 2 if i == ax else 0 for i in range(3)) for ax in range(3) for s in (-1, 1)]
    positions += [
        ((i - 0.5) * a, (j - 0.5) * a, (k - 0.5) * a) for i, j, k in [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)]
    ]
    return orm.StructureData(ase=Atoms('PbBr6Cs4', positions=positions, cell=[12, 12, 12]))


@pytest.fixture
def fake_cp2k_code(aiida_localhost):
    code = orm.InstalledCode(
        label='fake-cp2k', computer=aiida_localhost, filepath_executable='/bin/true', default_calc_job_plugin='cp2k'
    ).store()
    set_code_version(code, '2023.1')  # /bin/true is no CP2K: its version is given, as a user would
    return code


def test_valence_electrons_from_the_potentials(cs4pbbr6):
    assert valence_electrons(cs4pbbr6, KINDS) == 4 * 9 + 4 + 6 * 7


def test_mo_window_range():
    assert mo_window_range(82, 20, 20) == (22, 61)
    assert mo_window_range(82, 100, 5) == (1, 46)  # clipped at the first orbital
    with pytest.raises(ValueError, match='not closed-shell'):
        mo_window_range(81, 10, 10)
    with pytest.raises(ValueError, match='at least one occupied and one virtual'):
        mo_window_range(82, 0, 10)


def test_steps_share_the_level_of_theory_and_differ_in_run_type():
    inputs = RelaxAndSinglePointWorkChain.get_protocol_inputs('tiny')
    relax = inputs['relax']['cp2k']['parameters']
    single_point = inputs['single_point']['cp2k']['parameters']
    assert relax['GLOBAL']['RUN_TYPE'] == 'GEO_OPT'
    assert single_point['GLOBAL']['RUN_TYPE'] == 'ENERGY'
    assert relax['FORCE_EVAL']['DFT']['MGRID'] == single_point['FORCE_EVAL']['DFT']['MGRID']
    assert relax['FORCE_EVAL']['DFT']['XC'] == single_point['FORCE_EVAL']['DFT']['XC']
    assert 'MOTION' not in single_point
    assert 'MO' not in relax['FORCE_EVAL']['DFT'].get('PRINT', {})  # no orbitals at every geometry step
    assert 'MO' in single_point['FORCE_EVAL']['DFT']['PRINT']
    assert inputs['vacuum'] == 4.0


def test_unknown_override_is_refused():
    with pytest.raises(ProtocolError, match=r'unknown override "mo_window\.occ"'):
        RelaxAndSinglePointWorkChain.get_protocol_inputs('tiny', {'mo_window': {'occ': 3}})
    inputs = RelaxAndSinglePointWorkChain.get_protocol_inputs(
        'tiny', {'relax': {'cp2k': {'parameters': {'MOTION': {'GEO_OPT': {'MAX_ITER': 7}}}}}}
    )
    assert inputs['relax']['cp2k']['parameters']['MOTION']['GEO_OPT']['MAX_ITER'] == 7


def test_single_point_prints_what_the_analysis_needs(fake_cp2k_code, cs4pbbr6):
    labels = orm.ArrayData()
    labels.set_array('domain', np.array([0] * 7 + [1] * 4))
    builder = RelaxAndSinglePointWorkChain.get_builder_from_protocol(
        fake_cp2k_code, cs4pbbr6, protocol='tiny', labels=labels
    )
    parameters = builder.single_point.cp2k.parameters.get_dict()
    dft = parameters['FORCE_EVAL']['DFT']
    assert dft['PRINT']['MO']['MO_INDEX_RANGE'] == '22 61'
    assert dft['PRINT']['MO']['EIGENVECTORS'] is True
    assert dft['SCF']['ADDED_MOS'] >= 20
    assert dft['PRINT']['PDOS']['NLUMO'] == 20
    assert dft['PRINT']['S_CSR_WRITE']['BINARY'] is True
    ldos = dft['PRINT']['PDOS']['LDOS']
    assert [' '.join(entry['LIST']) for entry in ldos] == ['1 2 3 4 5 6 7', '8 9 10 11']
    retrieve = builder.single_point.cp2k.settings['additional_retrieve_list']
    assert {'*.MOLog', '*.csr', '*.pdos'} <= set(retrieve)
    relax = builder.relax.cp2k.parameters.get_dict()
    assert relax['MOTION']['GEO_OPT']['OPTIMIZER'] == 'BFGS'
    for step in (builder.relax, builder.single_point):
        assert step.cp2k.file['basis'].filename == 'BASIS_MOLOPT'
        assert step.cp2k.parameters['GLOBAL']['WALLTIME'] < step.cp2k.metadata.options.max_wallclock_seconds


def test_paper_protocol_uses_limited_memory_bfgs_and_a_400_orbital_window(fake_cp2k_code, cs4pbbr6):
    builder = RelaxAndSinglePointWorkChain.get_builder_from_protocol(fake_cp2k_code, cs4pbbr6, protocol='paper')
    assert builder.relax.cp2k.parameters['MOTION']['GEO_OPT']['OPTIMIZER'] == 'LBFGS'
    low, high = map(
        int, builder.single_point.cp2k.parameters['FORCE_EVAL']['DFT']['PRINT']['MO']['MO_INDEX_RANGE'].split()
    )
    assert (low, high) == (1, 41 + 200)  # 41 occupied orbitals: the window is clipped at orbital 1
