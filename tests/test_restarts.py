"""Restart handling on calculations that really failed: CP2K's SCF running out of steps."""

from __future__ import annotations

import pytest
from aiida import orm
from ase import Atoms

from aiida_nanohetero.workflows.cp2k_base import SCF_STRATEGIES, geometry_steps_done
from aiida_nanohetero.workflows.parsers import final_scf_converged
from aiida_nanohetero.workflows.single_point import SinglePointWorkChain


def test_final_scf_check():
    converged = '  *** SCF run converged in    23 steps ***\n'
    failed = ' *** WARNING in qs_scf.F:601 :: SCF run NOT converged ***\n'
    assert final_scf_converged(converged) is True
    assert final_scf_converged(failed) is False
    assert final_scf_converged(failed + converged) is True  # a geometry step recovered
    assert final_scf_converged(converged + failed) is False
    assert final_scf_converged('no scf here') is None
    # OT with an outer loop reports on the outer loop only
    assert final_scf_converged('  outer SCF loop converged in   3 iterations or   22 steps\n') is True
    assert final_scf_converged(' outer SCF loop FAILED to converge after   4 iterations or  200 steps\n') is False


def test_geometry_steps_done():
    output = ' --------  Informations at step =     0 ------------\n --------  Informations at step =     3 ---\n'
    assert geometry_steps_done(output) == 3
    assert geometry_steps_done(' --------  Informations at step =     0 ------------\n') == 0
    assert geometry_steps_done('') == 0


def test_an_ot_override_gets_ot_settings_and_ot_strategies():
    """The protocols diagonalise; a user who switches a step to OT gets an input CP2K accepts (no mixing, smearing
    or ADDED_MOS left over) and, on SCF failures, strategies that change only OT keywords."""
    from aiida_nanohetero.workflows.cp2k_base import OT_SCF_STRATEGIES, uses_ot
    from aiida_nanohetero.workflows.relax_single_point import RelaxAndSinglePointWorkChain

    ot = {'OT': {'MINIMIZER': 'DIIS', 'PRECONDITIONER': 'FULL_SINGLE_INVERSE'}}
    overrides = {'relax': {'cp2k': {'parameters': {'FORCE_EVAL': {'DFT': {'SCF': ot}}}}}}
    inputs = RelaxAndSinglePointWorkChain.get_protocol_inputs('tiny', overrides)
    relax = inputs['relax']['cp2k']['parameters']
    single_point = inputs['single_point']['cp2k']['parameters']
    assert uses_ot(relax) and not uses_ot(single_point)
    scf = relax['FORCE_EVAL']['DFT']['SCF']
    assert not {'DIAGONALIZATION', 'MIXING', 'SMEAR'} & set(scf) and scf['ADDED_MOS'] == 0
    assert 'SMEAR' in single_point['FORCE_EVAL']['DFT']['SCF']
    assert not uses_ot({'FORCE_EVAL': {'DFT': {'SCF': {'OT': {'_': 'OFF'}}}}})
    for _, changes in OT_SCF_STRATEGIES[1:]:
        assert set(changes['FORCE_EVAL']['DFT']['SCF']) == {'OT'}


def _water_builder(code, max_scf: int, kinds: dict, mgrid: dict):
    water = orm.StructureData(ase=Atoms('OH2', positions=[(0, 0, 0), (0.757, 0.586, 0), (-0.757, 0.586, 0)]))
    overrides = {
        'kinds': kinds,
        'cp2k': {
            'cp2k': {
                'parameters': {'FORCE_EVAL': {'DFT': {'MGRID': mgrid, 'SCF': {'MAX_SCF': max_scf, 'ADDED_MOS': 4}}}}
            }
        },
    }
    return SinglePointWorkChain.get_builder_from_protocol(code, water, protocol='tiny', overrides=overrides)


def _calculations(node) -> list[orm.CalcJobNode]:
    return sorted((n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)


@pytest.mark.cp2k
def test_scf_out_of_steps_restarts_from_wavefunction_and_finishes(cp2k_code, water_kinds, water_mgrid):
    from aiida.engine import run_get_node

    _, node = run_get_node(_water_builder(cp2k_code, max_scf=4, kinds=water_kinds, mgrid=water_mgrid))
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
def test_scf_that_never_converges_ends_with_a_named_exit_code(cp2k_code, water_kinds, water_mgrid):
    from aiida.engine import run_get_node

    builder = _water_builder(cp2k_code, max_scf=1, kinds=water_kinds, mgrid=water_mgrid)
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


@pytest.mark.cp2k
def test_relaxation_stopped_by_walltime_continues_from_last_geometry_and_wavefunction(
    cp2k_code, water_relaxation, water_split_geo_opt
):
    """CP2K's GLOBAL/WALLTIME stops a geometry optimisation cleanly (as it would a few minutes before the scheduler's
    limit); aiida-cp2k's handler, enabled by our protocols, continues it from the last geometry and wavefunction."""
    from aiida.engine import run_get_node

    from aiida_nanohetero.workflows.cp2k_base import Cp2kRestartWorkChain

    # WALLTIME 20 s: a few geometry steps of water per run, not the whole relaxation (3 jobs here)
    parameters = {'GLOBAL': {'WALLTIME': 20}, 'MOTION': {'GEO_OPT': water_split_geo_opt}}
    _, node = run_get_node(Cp2kRestartWorkChain, **water_relaxation(cp2k_code, parameters, max_iterations=12))
    assert node.is_finished_ok, node.exit_message
    calcs = _calculations(node)
    assert len(calcs) >= 2
    first, second = calcs[0], calcs[1]
    assert first.exit_status == first.process_class.exit_codes.ERROR_OUT_OF_WALLTIME.status
    stopped = first.outputs.retrieved.base.repository.get_object_content('aiida.out')
    assert 'exceeded requested execution time' in stopped
    assert geometry_steps_done(stopped) >= 1
    restart = second.inputs.parameters.get_dict()
    assert restart['EXT_RESTART']['RESTART_FILE_NAME'] == './parent_calc/aiida-1.restart'
    assert restart['FORCE_EVAL']['DFT']['SCF']['SCF_GUESS'] == 'RESTART'
    assert second.inputs.parent_calc_folder.uuid == first.outputs.remote_folder.uuid
    # BFGS goes on with the Hessian it had built, read from the stopped run's folder
    assert 'aiida-BFGS.Hessian' in first.outputs.remote_folder.listdir()
    bfgs = restart['MOTION']['GEO_OPT']['BFGS']
    assert bfgs['RESTART_HESSIAN'] is True and bfgs['RESTART_FILE_NAME'] == './parent_calc/aiida-BFGS.Hessian'
    # nothing computed is lost: the continued run starts from the geometry the stopped one reached
    assert second.inputs.structure.uuid == first.outputs.output_structure.uuid
    assert calcs[-1].is_finished_ok
    final = node.outputs.output_structure.get_ase()
    oh = sorted(final.get_distance(0, i) for i in (1, 2))
    assert oh == pytest.approx([0.97, 0.97], abs=0.03)  # PBE O-H bond length


@pytest.mark.cp2k
def test_relaxation_out_of_geometry_steps_continues(cp2k_code, water_relaxation, water_split_geo_opt):
    """A geometry optimisation that reaches MAX_ITER continues from its last geometry with more steps allowed."""
    from aiida.engine import run_get_node

    from aiida_nanohetero.workflows.cp2k_base import Cp2kRestartWorkChain

    # CP2K's default forces (the tiny protocol's are loose enough for water to converge within 3 steps); MAX_ITER
    # 3, 4, 5, 7, 9, 12 in turn: converged in the sixth job here
    parameters = {'MOTION': {'GEO_OPT': {**water_split_geo_opt, 'MAX_ITER': 3}}}
    _, node = run_get_node(Cp2kRestartWorkChain, **water_relaxation(cp2k_code, parameters, max_iterations=10))
    assert node.is_finished_ok, node.exit_message
    calcs = _calculations(node)
    first, second = calcs[0], calcs[1]
    assert first.exit_status == first.process_class.exit_codes.ERROR_MAXIMUM_NUMBER_OPTIMIZATION_STEPS_REACHED.status
    assert second.inputs.parameters['MOTION']['GEO_OPT']['MAX_ITER'] > 3
    assert second.inputs.structure.uuid == first.outputs.output_structure.uuid
    assert second.inputs.parameters['EXT_RESTART']['RESTART_FILE_NAME'] == './parent_calc/aiida-1.restart'
    assert second.inputs.parameters['MOTION']['GEO_OPT']['BFGS']['RESTART_HESSIAN'] is True
    assert calcs[-1].is_finished_ok
