"""Restart handling on calculations that really failed: CP2K's SCF running out of steps."""

from __future__ import annotations

import pytest
from aiida import orm
from ase import Atoms

from aiida_nanohetero.workflows.cp2k_base import SCF_STRATEGIES
from aiida_nanohetero.workflows.parsers import final_scf_converged
from aiida_nanohetero.workflows.single_point import SinglePointWorkChain

WATER_KINDS = {
    'H': {'BASIS_SET': 'DZVP-MOLOPT-SR-GTH', 'POTENTIAL': 'GTH-PBE-q1'},
    'O': {'BASIS_SET': 'DZVP-MOLOPT-SR-GTH', 'POTENTIAL': 'GTH-PBE-q6'},
}


def test_final_scf_check():
    converged = '  *** SCF run converged in    23 steps ***\n'
    failed = ' *** WARNING in qs_scf.F:601 :: SCF run NOT converged ***\n'
    assert final_scf_converged(converged) is True
    assert final_scf_converged(failed) is False
    assert final_scf_converged(failed + converged) is True  # a geometry step recovered
    assert final_scf_converged(converged + failed) is False
    assert final_scf_converged('no scf here') is None


def _water_builder(code, max_scf: int):
    water = orm.StructureData(ase=Atoms('OH2', positions=[(0, 0, 0), (0.757, 0.586, 0), (-0.757, 0.586, 0)]))
    overrides = {
        'kinds': WATER_KINDS,
        'cp2k': {'cp2k': {'parameters': {'FORCE_EVAL': {'DFT': {'SCF': {'MAX_SCF': max_scf, 'ADDED_MOS': 4}}}}}},
    }
    return SinglePointWorkChain.get_builder_from_protocol(code, water, protocol='tiny', overrides=overrides)


def _calculations(node) -> list[orm.CalcJobNode]:
    return sorted((n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)


@pytest.mark.cp2k
def test_scf_out_of_steps_restarts_from_wavefunction_and_finishes(cp2k_code):
    from aiida.engine import run_get_node

    _, node = run_get_node(_water_builder(cp2k_code, max_scf=4))
    assert node.is_finished_ok, node.exit_message
    calcs = _calculations(node)
    assert len(calcs) >= 2
    first, second = calcs[0], calcs[1]
    assert first.exit_status == first.process_class.exit_codes.ERROR_SCF_NOT_CONVERGED.status
    scf = second.inputs.parameters['FORCE_EVAL']['DFT']['SCF']
    assert scf['SCF_GUESS'] == 'RESTART'
    assert scf['MAX_SCF'] == 8
    assert second.inputs.parent_calc_folder.uuid == first.outputs.remote_folder.uuid
    assert calcs[-1].is_finished_ok
    # the orbitals come from the converged calculation, not from a failed one
    retrieved = node.outputs.orbitals.creator.inputs.retrieved
    assert retrieved.creator.uuid == calcs[-1].uuid
    assert node.outputs.orbitals.base.attributes.get('n_electrons') == 8


@pytest.mark.cp2k
def test_scf_that_never_converges_ends_with_a_named_exit_code(cp2k_code):
    from aiida.engine import run_get_node

    builder = _water_builder(cp2k_code, max_scf=1)
    builder.cp2k.max_iterations = orm.Int(len(SCF_STRATEGIES) + 2)
    _, node = run_get_node(builder)
    assert node.exit_status == SinglePointWorkChain.exit_codes.ERROR_SUB_PROCESS_FAILED_CP2K.status
    (restart_chain,) = [n for n in node.called if n.process_label == 'Cp2kRestartWorkChain']
    assert restart_chain.exit_status == 320
    assert 'Fermi-Dirac smearing' in restart_chain.exit_message
    calcs = _calculations(node)
    assert len(calcs) == len(SCF_STRATEGIES) + 1
    assert all(calc.exit_status == 450 for calc in calcs)
    # the last attempt used every strategy: restart, gentler mixing, smearing
    scf = calcs[-1].inputs.parameters['FORCE_EVAL']['DFT']['SCF']
    assert scf['SMEAR']['METHOD'] == 'FERMI_DIRAC' and scf['MIXING']['ALPHA'] == 0.1
    # nothing computed is lost: every failed calculation keeps its retrieved output
    assert all('retrieved' in calc.outputs for calc in calcs)
