"""``nanohetero status`` on a relaxation that is still running: the geometry step and its largest force.

The CP2K output is an excerpt of a real relaxation (``tests/data/cp2k/geo_opt``); the provenance graph around it is
built by hand, as a running campaign would have it (a model's work chain, its ``relax`` work chain, the CP2K job and
its remote folder on this computer).
"""

from __future__ import annotations

import pathlib
import shutil

import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_nanohetero.workflows.cp2k_base import geometry_progress, geometry_steps_done

DATA = pathlib.Path(__file__).parent / 'data' / 'cp2k' / 'geo_opt'
OUTPUT = (DATA / 'relax_steps.out').read_text()
#: Where step 1 ends and step 2's SCF begins in the excerpt.
STEP_0_ONLY = OUTPUT[: OUTPUT.index('Informations at step =     1')]


def test_geometry_progress_reads_the_last_finished_step():
    progress = geometry_progress(OUTPUT)
    assert progress['step'] == geometry_steps_done(OUTPUT) == 1
    assert progress['max_force'] == pytest.approx(0.0235347294)
    assert progress['max_force_limit'] == pytest.approx(0.015)  # the tiny protocol's MAX_FORCE
    assert progress['max_force'] > progress['max_force_limit']  # CP2K said "Conv. for gradients = NO"
    assert progress['energy'] == pytest.approx(-524.4286776004)


def test_geometry_progress_before_the_first_step():
    start = geometry_progress(STEP_0_ONLY)
    assert start['step'] == 0
    assert start['energy'] == pytest.approx(-524.2353652514)
    assert start['max_force'] is None and start['max_force_limit'] is None  # step 0 has no convergence check
    assert geometry_progress('') is None
    assert geometry_progress(OUTPUT[: OUTPUT.index('Informations at step')]) is None  # first SCF still running


def _running_model(computer, workdir: pathlib.Path) -> orm.WorkflowNode:
    """A model's work chain whose ``relax`` step has launched one CP2K job, running in ``workdir``."""
    model = orm.WorkChainNode(process_type='aiida.workflows:nanohetero.relax_single_point')
    model.set_process_state('running')
    model.store()
    relax = orm.WorkflowNode(process_type='aiida.workflows:nanohetero.cp2k')
    relax.set_process_state('running')
    relax.base.links.add_incoming(model, LinkType.CALL_WORK, 'relax')
    relax.store()
    calc = orm.CalcJobNode(computer=computer, process_type='aiida.calculations:cp2k')
    calc.set_process_state('running')
    calc.base.links.add_incoming(relax, LinkType.CALL_CALC, 'iteration_01')
    calc.store()
    remote = orm.RemoteData(computer=computer, remote_path=str(workdir))
    remote.base.links.add_incoming(calc, LinkType.CREATE, 'remote_folder')
    remote.store()
    return model


def test_status_shows_the_step_and_its_largest_force(aiida_profile, aiida_localhost, tmp_path):
    from aiida_nanohetero.cli.status import model_stage

    model = _running_model(aiida_localhost, tmp_path)
    assert model_stage(model) == 'relaxing, first SCF'  # CP2K has written nothing yet

    (tmp_path / 'aiida.out').write_text(STEP_0_ONLY)  # the starting point is done, step 1 is running
    assert model_stage(model) == 'relaxing, 0 geometry steps done'

    shutil.copy(DATA / 'relax_steps.out', tmp_path / 'aiida.out')
    assert model_stage(model) == 'relaxing, 1 geometry step done, largest force 0.0235 Ha/bohr (converged below 0.015)'


def test_status_of_a_model_placed_in_its_cell_is_building_not_analysing(aiida_profile):
    """The work chain's first step is a calcfunction (the model placed in its CP2K cell); so are its last ones (the
    orbital analysis). Only the latter are 'analysing'."""
    from aiida_nanohetero.cli.status import model_stage

    model = orm.WorkflowNode(process_type='aiida.workflows:nanohetero.relax_single_point')
    model.set_process_state('running')
    model.store()

    def call_calcfunction(label):
        function = orm.CalcFunctionNode(process_type=f'aiida_nanohetero.calcfunctions:{label}')
        function.set_process_state('finished')
        function.base.links.add_incoming(model, LinkType.CALL_CALC, label)
        function.store()

    call_calcfunction('place_in_cubic_box')
    assert model_stage(model) == 'building'
    single_point = orm.WorkflowNode(process_type='aiida.workflows:nanohetero.cp2k')
    single_point.set_process_state('finished')
    single_point.base.links.add_incoming(model, LinkType.CALL_WORK, 'single_point')
    single_point.store()
    call_calcfunction('parse_orbitals')
    assert model_stage(model) == 'analysing'


def test_stage_changes_tell_what_moved_since_the_last_call(aiida_profile, aiida_localhost, tmp_path):
    """What a campaign run in the foreground prints every minute: only the models whose stage changed."""
    from aiida_nanohetero.cli.status import stage_changes
    from aiida_nanohetero.workflows.campaign import campaign_group_label

    campaign = orm.WorkflowNode(process_type='aiida.workflows:nanohetero.campaign').store()
    group = orm.Group(label=campaign_group_label(campaign.uuid)).store()
    seen: dict = {}
    assert stage_changes(campaign, seen) == []  # the models are being built: nothing to show yet

    model = _running_model(aiida_localhost, tmp_path)
    model.base.extras.set('nanohetero_key', 'cube_Br')
    group.add_nodes(model)
    assert stage_changes(campaign, seen) == ['cube_Br: relaxing, first SCF']
    assert stage_changes(campaign, seen) == []  # nothing moved
    shutil.copy(DATA / 'relax_steps.out', tmp_path / 'aiida.out')
    assert stage_changes(campaign, seen) == [
        'cube_Br: relaxing, 1 geometry step done, largest force 0.0235 Ha/bohr (converged below 0.015)'
    ]
