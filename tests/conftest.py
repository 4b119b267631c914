"""Shared fixtures. AiiDA's own pytest fixtures give a temporary SQLite profile (no services).

Real CP2K runs are expensive on the 2-core CI machine, so each one is a session-scoped fixture shared by all the
tests that look at it. Tests that need CP2K carry the ``cp2k`` marker; without a CP2K executable they are skipped
locally but fail in CI (``CI`` set), so a broken install cannot turn the suite green.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

# Importing aiida without AIIDA_PATH creates ~/.aiida: point it at a throw-away folder first.
os.environ.setdefault('AIIDA_PATH', tempfile.mkdtemp(prefix='nanohetero-tests-aiida-'))

import pytest

pytest_plugins = ['aiida.tools.pytest_fixtures']

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get('NANOHETERO_SHARED', REPO.parent / 'shared'))


@pytest.fixture(scope='session')
def shared_dir() -> pathlib.Path:
    """The ``shared/`` reference folder beside the repository (published models, format notes)."""
    if not SHARED.is_dir():
        pytest.skip(f'reference folder {SHARED} not found (set NANOHETERO_SHARED)')
    return SHARED


@pytest.fixture(scope='session')
def example_archive() -> pathlib.Path:
    """The real tiny campaign committed under ``examples/`` (see README, "Results and figures")."""
    archive = REPO / 'examples' / 'tiny-campaign.aiida'
    if not archive.is_file():
        if os.environ.get('CI'):
            pytest.fail(f'the example archive {archive} is not in the repository')
        pytest.skip(f'the example archive {archive} is not there yet')
    return archive


@pytest.fixture(scope='session')
def cp2k_executable() -> str:
    executable = shutil.which('cp2k.psmp')
    if executable is None:
        if os.environ.get('CI'):
            pytest.fail('cp2k.psmp is not on PATH in CI: the install step (make test) is broken')
        pytest.skip('cp2k.psmp not installed (apt-get install cp2k)')
    return executable


#: Basis and potentials of water, the cheap molecule of the restart tests.
WATER_KINDS = {
    'H': {'BASIS_SET': 'DZVP-MOLOPT-SR-GTH', 'POTENTIAL': 'GTH-PBE-q1'},
    'O': {'BASIS_SET': 'DZVP-MOLOPT-SR-GTH', 'POTENTIAL': 'GTH-PBE-q6'},
}


@pytest.fixture(scope='session')
def water_kinds() -> dict:
    return WATER_KINDS


#: The water tests' grid: where their time limits were measured, whatever ``tiny`` uses for the nanocrystals.
WATER_MGRID = {'CUTOFF': 200, 'REL_CUTOFF': 40}


@pytest.fixture(scope='session')
def water_mgrid() -> dict:
    return WATER_MGRID


#: Geometry thresholds of the water relaxations that are split into several jobs (walltime tests): CP2K's default
#: forces (4.5e-4, 3e-4 Ha/bohr) and the ``mini`` protocol's steps (3e-2, 1.5e-2 bohr). Not tighter: the rotations of
#: a free molecule cost almost nothing, so at forces near 1e-4 Ha/bohr, where the 200 Ry grid's noise dominates, BFGS
#: still predicts steps of 1e-2 bohr along them and now and then jumps by its whole trust radius (0.47 bohr). With
#: step thresholds of 1e-4 bohr a relaxation met them only by luck, and the SLURM walltime test failed in CI when ten
#: jobs of a minute did not.
WATER_SPLIT_GEO_OPT = {'MAX_FORCE': 4.5e-4, 'RMS_FORCE': 3e-4, 'MAX_DR': 3e-2, 'RMS_DR': 1.5e-2, 'MAX_ITER': 200}


@pytest.fixture(scope='session')
def water_split_geo_opt() -> dict:
    return WATER_SPLIT_GEO_OPT


@pytest.fixture(scope='session')
def water_relaxation():
    """A factory of ``Cp2kRestartWorkChain`` inputs relaxing a bent water molecule with the tiny protocol's
    relaxation step, ``parameters`` merged into its CP2K input: ``water_relaxation(code, parameters,
    max_iterations, box=3.0, options=None)`` (box: vacuum in Å; options: calculation options).

    The grid and the SCF threshold stay at the values the restart tests' time limits were measured with (200 Ry,
    EPS_SCF 1e-5), whatever ``tiny`` uses for the nanocrystals: a cheaper water would finish before its limits."""
    from aiida import orm
    from ase import Atoms

    from aiida_nanohetero.calcfunctions.cp2k import place_in_cubic_box
    from aiida_nanohetero.workflows.cp2k_base import merge_parameters
    from aiida_nanohetero.workflows.relax_single_point import RelaxAndSinglePointWorkChain

    def inputs(code, parameters: dict, max_iterations: int, box: float = 3.0, options: dict | None = None) -> dict:
        water = orm.StructureData(ase=Atoms('OH2', positions=[(0, 0, 0), (0.95, 0.75, 0.0), (-0.70, 0.45, 0.15)]))
        overrides = {'kinds': WATER_KINDS, 'mo_window': {'occupied': 2, 'virtual': 2}}
        grid = {'FORCE_EVAL': {'DFT': {'MGRID': WATER_MGRID, 'SCF': {'EPS_SCF': 1e-5}}}}
        relax = RelaxAndSinglePointWorkChain.get_builder_from_protocol(
            code, water, 'tiny', overrides, options=options
        ).relax
        return {
            'cp2k': {
                'code': relax.cp2k.code,
                'parameters': orm.Dict(
                    merge_parameters(merge_parameters(relax.cp2k.parameters.get_dict(), grid), parameters)
                ),
                'settings': relax.cp2k.settings,
                'file': dict(relax.cp2k.file),
                'structure': place_in_cubic_box(water, orm.Float(box)),
                'metadata': {'options': dict(relax.cp2k.metadata.options)},
            },
            'max_iterations': orm.Int(max_iterations),
            'handler_overrides': relax.handler_overrides,
        }

    return inputs


@pytest.fixture(scope='session')
def cp2k_code(aiida_profile, cp2k_executable):
    """Computer and CP2K code made by the same code path as ``nanohetero setup`` from ``profiles/local.yaml``."""
    from aiida_nanohetero.profiles import load_spec
    from aiida_nanohetero.profiles.setup import setup_code, setup_computer

    spec = load_spec('local')
    changes = []
    computer = setup_computer(spec, changes)
    return setup_code(spec, computer, spec.resolve_executable(), changes)


@pytest.fixture(scope='session')
def cube_single_point(cp2k_code):
    """One real CP2K single point (tiny protocol) on the n = 1 CsPbBr3 cube, Cs4PbBr6, run through AiiDA."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_nanohetero.calcfunctions.builders import build_perovskite_cube
    from aiida_nanohetero.workflows.single_point import SinglePointWorkChain

    model = build_perovskite_cube(n=orm.Int(1), halide=orm.Str('Br'))['structure']
    builder = SinglePointWorkChain.get_builder_from_protocol(cp2k_code, model, protocol='tiny')
    _, node = run_get_node(builder)
    return node


@pytest.fixture(scope='session')
def tiny_campaign(cp2k_code):
    """The ``tiny`` campaign for X = Br, end to end with real CP2K: the half-sphere, the cube and the
    heterostructure built, relaxed, single-pointed and analysed (the most expensive fixture of the suite).

    Every model is relaxed to the ``tiny`` protocol's thresholds, as ``nanohetero run --protocol tiny`` does (the
    54-atom heterostructure converges in a few BFGS steps; the whole campaign takes about 20 minutes here).

    For fast iterations on the analysis, ``NANOHETERO_REPLAY_CAMPAIGN=FILE.aiida`` replays a campaign that this
    package ran with real CP2K (an archive from ``nanohetero export`` or ``benchmarks/bench_campaign.py --keep``)
    instead of running CP2K; CI never sets it.
    """
    from aiida import orm

    from aiida_nanohetero.workflows.campaign import HeterostructureCampaignWorkChain

    replay = os.environ.get('NANOHETERO_REPLAY_CAMPAIGN')
    if replay and not os.environ.get('CI'):
        from aiida.tools.archive import import_archive

        import_archive(replay)
        query = orm.QueryBuilder().append(
            orm.WorkChainNode, filters={'attributes.process_label': 'HeterostructureCampaignWorkChain'}
        )
        node = query.order_by({orm.WorkChainNode: {'ctime': 'desc'}}).first()[0]
        # an archive carries the campaign's own group; restore the cross-campaign groups the campaign used
        from aiida_nanohetero.workflows.campaign import CAMPAIGNS_GROUP, MODELS_GROUP, campaign_group_label

        orm.Group.collection.get_or_create(CAMPAIGNS_GROUP)[0].add_nodes(node)
        models = list(orm.load_group(campaign_group_label(node.uuid)).nodes)
        orm.Group.collection.get_or_create(MODELS_GROUP)[0].add_nodes(models)
        return node

    from aiida_nanohetero.cli.demo import _run_with_progress

    builder = HeterostructureCampaignWorkChain.get_builder()
    builder.code = cp2k_code
    builder.protocol = orm.Str('tiny')
    builder.halides = orm.List(['Br'])
    # run as `nanohetero demo` and `nanohetero run` run it in the foreground, keeping the progress lines they print
    _, node = _run_with_progress(builder, every=10, echo=CAMPAIGN_PROGRESS.append)
    return node


#: The progress lines that ``tiny_campaign`` printed while it ran (empty when it was replayed from an archive).
CAMPAIGN_PROGRESS: list[str] = []


@pytest.fixture(scope='session')
def tiny_campaign_progress(tiny_campaign) -> list[str]:
    return CAMPAIGN_PROGRESS


@pytest.fixture(scope='session')
def tiny_cube(tiny_campaign):
    """The campaign's n = 1 CsPbBr3 cube (Cs4PbBr6): its RelaxAndSinglePointWorkChain."""
    return tiny_campaign.base.links.get_outgoing(link_label_filter='cube_Br').one().node


@pytest.fixture(scope='session')
def campaign_keys(tiny_campaign) -> list[str]:
    """The models of ``tiny_campaign`` in table order: Br only in CI; any halides when replayed from an archive."""
    from aiida_nanohetero.analysis.queries import expected_model_keys

    return expected_model_keys(tiny_campaign.inputs.halides.get_list())
