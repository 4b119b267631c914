"""Protocols of the single-point work chain: loading, overrides, and the builder they fill."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_nanohetero.workflows.cp2k_versions import set_code_version
from aiida_nanohetero.workflows.protocols import ProtocolError
from aiida_nanohetero.workflows.single_point import SinglePointWorkChain, cp2k_walltime


@pytest.fixture
def cube_structure():
    from ase import Atoms

    atoms = Atoms('PbBr2Cs', positions=[(0, 0, 0), (2.9, 0, 0), (-2.9, 0, 0), (2.9, 2.9, 2.9)], cell=[10, 10, 10])
    return orm.StructureData(ase=atoms)


@pytest.fixture
def fake_cp2k_code(aiida_localhost):
    code = orm.InstalledCode(
        label='fake-cp2k', computer=aiida_localhost, filepath_executable='/bin/true', default_calc_job_plugin='cp2k'
    ).store()
    set_code_version(code, '2023.1')  # /bin/true is no CP2K: its version is given, as a user would
    return code


def test_available_protocols():
    assert set(SinglePointWorkChain.get_available_protocols()) == {'tiny', 'mini', 'paper'}
    assert SinglePointWorkChain.get_default_protocol() == 'tiny'


def test_protocols_grow_towards_the_paper():
    cutoffs = [
        SinglePointWorkChain.get_protocol_inputs(p)['cp2k']['cp2k']['parameters']['FORCE_EVAL']['DFT']['MGRID'][
            'CUTOFF'
        ]
        for p in ('tiny', 'mini', 'paper')
    ]
    assert cutoffs == sorted(cutoffs) and cutoffs[0] < cutoffs[-1]
    vacua = [SinglePointWorkChain.get_protocol_inputs(p)['vacuum'] for p in ('tiny', 'mini', 'paper')]
    assert vacua == sorted(vacua)


def test_unknown_protocol_is_named():
    with pytest.raises(ProtocolError, match='unknown protocol "huge": choose one of tiny, mini, paper'):
        SinglePointWorkChain.get_protocol_inputs('huge')


def test_unknown_override_is_an_error_not_ignored():
    with pytest.raises(ProtocolError, match='unknown override "vacum"'):
        SinglePointWorkChain.get_protocol_inputs('tiny', {'vacum': 3.0})
    with pytest.raises(ProtocolError, match=r'unknown override "cp2k\.max_iteration"'):
        SinglePointWorkChain.get_protocol_inputs('tiny', {'cp2k': {'max_iteration': 3}})


def test_overrides_deep_merge_into_the_cp2k_input():
    overrides = {'vacuum': 3.0, 'cp2k': {'cp2k': {'parameters': {'FORCE_EVAL': {'DFT': {'MGRID': {'NGRIDS': 5}}}}}}}
    plain = SinglePointWorkChain.get_protocol_inputs('tiny')['cp2k']['cp2k']['parameters']['FORCE_EVAL']['DFT']['MGRID']
    inputs = SinglePointWorkChain.get_protocol_inputs('tiny', overrides)
    mgrid = inputs['cp2k']['cp2k']['parameters']['FORCE_EVAL']['DFT']['MGRID']
    # the override's key is added, the protocol's keys beside it are kept
    assert set(plain) == {'CUTOFF', 'REL_CUTOFF'}
    assert mgrid == {**plain, 'NGRIDS': 5}
    assert inputs['vacuum'] == 3.0
    # the protocol itself is untouched by the merge
    assert (
        'NGRIDS'
        not in SinglePointWorkChain.get_protocol_inputs('tiny')['cp2k']['cp2k']['parameters']['FORCE_EVAL']['DFT'][
            'MGRID'
        ]
    )


@pytest.mark.parametrize('protocol', ['tiny', 'mini', 'paper'])
def test_builder_has_the_seed_level_of_theory(protocol, fake_cp2k_code, cube_structure):
    builder = SinglePointWorkChain.get_builder_from_protocol(fake_cp2k_code, cube_structure, protocol=protocol)
    parameters = builder.cp2k.cp2k.parameters.get_dict()
    dft = parameters['FORCE_EVAL']['DFT']
    assert dft['XC']['XC_FUNCTIONAL']['_'] == 'PBE'
    assert dft['POISSON'] == {'PERIODIC': 'NONE', 'POISSON_SOLVER': 'WAVELET'}
    assert parameters['FORCE_EVAL']['SUBSYS']['CELL']['PERIODIC'] == 'NONE'
    kinds = {kind['_']: kind for kind in parameters['FORCE_EVAL']['SUBSYS']['KIND']}
    assert {name: kind['POTENTIAL'] for name, kind in kinds.items()} == {
        'Cs': 'GTH-PBE-q9',
        'Pb': 'GTH-PBE-q4',
        'Br': 'GTH-PBE-q7',
    }
    assert {kind['BASIS_SET'] for kind in kinds.values()} == {'DZVP-MOLOPT-SR-GTH'}
    # the data files are stored nodes passed to the calculation, and the input names them
    assert dft['BASIS_SET_FILE_NAME'] == builder.cp2k.cp2k.file['basis'].filename == 'BASIS_MOLOPT'
    assert dft['POTENTIAL_FILE_NAME'] == builder.cp2k.cp2k.file['potential'].filename == 'GTH_POTENTIALS'
    assert builder.cp2k.cp2k.file['basis'].is_stored
    # CP2K stops cleanly before the scheduler kills it
    walltime = parameters['GLOBAL']['WALLTIME']
    assert walltime < builder.cp2k.cp2k.metadata.options.max_wallclock_seconds
    assert builder.cp2k.handler_overrides.get_dict()['restart_incomplete_calculation']['enabled'] is True
    assert '*.MOLog' in builder.cp2k.cp2k.settings['additional_retrieve_list']


def test_walltime_margin():
    assert cp2k_walltime(3600, 0.05) == 3420
    assert cp2k_walltime(86400, 0.05) == 82080
    assert cp2k_walltime(300, 0.05) == 240  # at least a minute of margin for short jobs
    assert cp2k_walltime(40, 0.05) == 30


def test_options_reach_the_calculation(fake_cp2k_code, cube_structure):
    builder = SinglePointWorkChain.get_builder_from_protocol(
        fake_cp2k_code, cube_structure, protocol='tiny', options={'max_wallclock_seconds': 600}
    )
    assert builder.cp2k.cp2k.metadata.options.max_wallclock_seconds == 600
    assert builder.cp2k.cp2k.parameters['GLOBAL']['WALLTIME'] == 540


def test_a_code_that_is_not_cp2k_is_refused(aiida_localhost, cube_structure):
    code = orm.InstalledCode(
        label='not-cp2k',
        computer=aiida_localhost,
        filepath_executable='/bin/true',
        default_calc_job_plugin='core.arithmetic.add',
    ).store()
    with pytest.raises(ValueError, match=r'runs the calculation plugin "core\.arithmetic\.add", not "cp2k"'):
        SinglePointWorkChain.get_builder_from_protocol(code, cube_structure)


def test_element_without_basis_is_refused(fake_cp2k_code):
    from ase import Atoms

    structure = orm.StructureData(ase=Atoms('PbF2', positions=[(0, 0, 0), (2, 0, 0), (-2, 0, 0)], cell=[9, 9, 9]))
    with pytest.raises(ValueError, match='no basis set / pseudopotential defined for element\\(s\\) F'):
        SinglePointWorkChain.get_builder_from_protocol(fake_cp2k_code, structure)


def test_entry_point_is_registered():
    from aiida.plugins import WorkflowFactory

    assert WorkflowFactory('nanohetero.single_point') is SinglePointWorkChain


def test_local_jobs_use_one_rank_without_mpi():
    from aiida_nanohetero.workflows.single_point import scheduler_options

    scheduler = SinglePointWorkChain.get_protocol_inputs('tiny')['scheduler']
    options = scheduler_options(56, scheduler)
    assert options['resources'] == {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
    assert options['withmpi'] is False
    assert options['environment_variables']['OMP_NUM_THREADS'] == '1'


def test_cluster_jobs_scale_with_the_model():
    from aiida_nanohetero.workflows.single_point import scheduler_options

    scheduler = SinglePointWorkChain.get_protocol_inputs('paper')['scheduler']
    assert scheduler['mode'] == 'cluster'
    sizes = {n: scheduler_options(n, scheduler)['resources']['num_machines'] for n in (11, 611, 775, 1386, 100000)}
    assert sizes[11] == 1
    assert sizes[611] <= sizes[775] <= sizes[1386]  # half-sphere, cube, heterostructure of the paper
    assert sizes[1386] == 3  # 347 ranks at 4 atoms per rank on 128-core nodes
    assert sizes[100000] == scheduler['max_machines']
    assert scheduler_options(775, scheduler)['withmpi'] is True
    threaded = scheduler_options(1386, {**scheduler, 'omp_num_threads': 4})['resources']
    assert threaded == {'num_machines': 11, 'num_mpiprocs_per_machine': 32, 'num_cores_per_mpiproc': 4}


def test_user_options_win_over_the_size_derived_ones(fake_cp2k_code, cube_structure):
    builder = SinglePointWorkChain.get_builder_from_protocol(
        fake_cp2k_code,
        cube_structure,
        protocol='paper',
        options={'resources': {'num_machines': 7}, 'max_wallclock_seconds': 7200},
    )
    options = builder.cp2k.cp2k.metadata.options
    assert options.resources == {'num_machines': 7, 'num_mpiprocs_per_machine': 128, 'num_cores_per_mpiproc': 1}
    assert options.max_wallclock_seconds == 7200
    assert builder.cp2k.cp2k.parameters['GLOBAL']['WALLTIME'] == 6840


def test_a_code_without_mpi_gets_one_process(aiida_localhost, cube_structure):
    code = orm.InstalledCode(
        label='serial-cp2k',
        computer=aiida_localhost,
        filepath_executable='/bin/true',
        default_calc_job_plugin='cp2k',
        with_mpi=False,
    ).store()
    set_code_version(code, '2023.1')
    builder = SinglePointWorkChain.get_builder_from_protocol(code, cube_structure, protocol='paper')
    options = builder.cp2k.cp2k.metadata.options
    assert options.withmpi is False
    assert options.resources == {'num_machines': 1, 'num_mpiprocs_per_machine': 1}


def test_campaign_refuses_bad_input_before_anything_runs(fake_cp2k_code, aiida_localhost):
    """Unknown halide or protocol, a code that is not CP2K, a useless concurrency limit: refused on validation."""
    from aiida.engine import run_get_node

    from aiida_nanohetero.workflows.campaign import HeterostructureCampaignWorkChain

    def launch(**inputs):
        with pytest.raises(ValueError) as error:  # the builder, or the launch, refuses it
            builder = HeterostructureCampaignWorkChain.get_builder()
            builder.code = fake_cp2k_code
            for name, value in inputs.items():
                setattr(builder, name, value)
            run_get_node(builder)
        return str(error.value)

    assert 'unknown halide(s) F' in launch(halides=orm.List(['Br', 'F']))
    assert 'huge' in launch(protocol=orm.Str('huge'))
    assert 'max_concurrent must be at least 1' in launch(max_concurrent=orm.Int(0))
    adder = orm.InstalledCode(
        label='adder',
        computer=aiida_localhost,
        filepath_executable='/bin/true',
        default_calc_job_plugin='core.arithmetic.add',
    ).store()
    assert 'not "cp2k"' in launch(code=adder)


def test_campaign_waves_start_with_the_largest_models():
    """With ``max_concurrent`` the models run in waves: the expensive Pb4S3Br2 models go first and together."""
    from aiida_nanohetero.workflows.campaign import largest_first

    sizes = {'half_sphere': 45, 'cube_Br': 11, 'heterostructure_Br': 54, 'cube_Cl': 11, 'heterostructure_Cl': 54}
    order = largest_first(sizes)
    assert order == ['heterostructure_Br', 'heterostructure_Cl', 'half_sphere', 'cube_Br', 'cube_Cl']
