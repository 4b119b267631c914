"""The ``tiny`` campaign for X = Br end to end with real CP2K: models built by the builder calcfunctions, the
half-sphere computed once, every model relaxed, single-pointed and analysed, results in groups with extras, and
the provenance model -> relaxation -> single point -> analysis."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm

from aiida_nanohetero.workflows.campaign import CAMPAIGNS_GROUP, MODELS_GROUP, campaign_group_label

pytestmark = pytest.mark.cp2k


def _models(campaign) -> dict[str, orm.WorkChainNode]:
    """The campaign's model work chains, found by query on the campaign's group and the extras (not by pk)."""
    query = orm.QueryBuilder()
    query.append(orm.Group, filters={'label': campaign_group_label(campaign.uuid)}, tag='group')
    query.append(orm.WorkChainNode, with_group='group', project=['*', 'extras.nanohetero_key'])
    return {key: node for node, key in query.all()}


def _calcs(workchain) -> list[orm.CalcJobNode]:
    return sorted((n for n in workchain.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)


def test_campaign_finishes_with_every_model(tiny_campaign, campaign_keys):
    assert tiny_campaign.is_finished_ok, tiny_campaign.exit_message
    outputs = tiny_campaign.outputs.models
    assert set(outputs) == set(campaign_keys)
    for key in campaign_keys:
        for name in ('structure', 'relaxed_structure', 'output_parameters', 'orbitals', 'ipr', 'summary'):
            assert name in outputs[key], f'{key}.{name} missing'


def test_results_are_found_by_query_with_their_extras(tiny_campaign, campaign_keys):
    campaigns = orm.QueryBuilder().append(orm.Group, filters={'label': CAMPAIGNS_GROUP}, tag='g')
    campaigns.append(orm.WorkChainNode, with_group='g', filters={'uuid': tiny_campaign.uuid})
    assert campaigns.count() == 1
    assert tiny_campaign.base.extras.get('nanohetero_protocol') == 'tiny'
    assert tiny_campaign.base.extras.get('nanohetero_halides') == tiny_campaign.inputs.halides.get_list()

    models = _models(tiny_campaign)
    assert set(models) == set(campaign_keys)
    expected = {
        'half_sphere': ('half-sphere', 'Br', 'Br10Pb20S15', 45),
        'cube_Br': ('cube', 'Br', 'Br6Cs4Pb', 11),
        'heterostructure_Br': ('heterostructure', 'Br', 'Br15Cs3Pb21S15', 54),  # PbX2 contact
    }
    for key, (model, halide, formula, n_atoms) in expected.items():
        extras = models[key].base.extras
        assert extras.get('nanohetero_model') == model
        assert extras.get('nanohetero_halide') == halide
        assert extras.get('nanohetero_protocol') == 'tiny'
        assert extras.get('nanohetero_formula') == formula
        assert extras.get('nanohetero_n_atoms') == n_atoms
        assert extras.get('nanohetero_campaign') == tiny_campaign.uuid
        assert 'nanohetero_size' in extras

    # the cross-campaign group finds the same heterostructure by its extras alone
    query = orm.QueryBuilder().append(orm.Group, filters={'label': MODELS_GROUP}, tag='g')
    query.append(
        orm.WorkChainNode,
        with_group='g',
        filters={
            'extras.nanohetero_model': 'heterostructure',
            'extras.nanohetero_halide': 'Br',
            'extras.nanohetero_campaign': tiny_campaign.uuid,
        },
    )
    assert [node.uuid for (node,) in query.all()] == [models['heterostructure_Br'].uuid]


def test_half_sphere_is_computed_once(tiny_campaign):
    half_spheres = [n for n in tiny_campaign.called if n.base.extras.get('nanohetero_model', None) == 'half-sphere']
    assert len(half_spheres) == 1
    builders = [n.process_label for n in tiny_campaign.called if isinstance(n, orm.CalcFunctionNode)]
    assert builders.count('build_half_sphere') == 1


def test_provenance_model_relaxation_single_point_analysis(tiny_campaign):
    """Every model: builder calcfunction -> cubic box -> relaxation -> single point on the relaxed geometry,
    restarted from its wavefunction -> orbitals, IPR and summary computed from the single point's files."""
    for key, node in _models(tiny_campaign).items():
        structure = node.outputs.structure
        box = structure.creator
        assert box.process_label == 'place_in_cubic_box'
        model = box.inputs.structure
        assert model.creator.process_label.startswith('build_'), key
        assert model.creator.caller.uuid == tiny_campaign.uuid

        relax = node.base.links.get_outgoing(link_label_filter='relax').one().node
        single_point = node.base.links.get_outgoing(link_label_filter='single_point').one().node
        relax_calcs, (sp_calc,) = _calcs(relax), _calcs(single_point)
        assert relax_calcs[0].inputs.structure.uuid == structure.uuid
        assert relax_calcs[-1].inputs.parameters['GLOBAL']['RUN_TYPE'] == 'GEO_OPT'
        relaxed = node.outputs.relaxed_structure
        assert relaxed.creator.uuid == relax_calcs[-1].uuid
        assert sp_calc.inputs.structure.uuid == relaxed.uuid
        assert sp_calc.inputs.parent_calc_folder.uuid == relax_calcs[-1].outputs.remote_folder.uuid

        orbitals, ipr, summary = node.outputs.orbitals, node.outputs.ipr, node.outputs.summary
        assert orbitals.creator.process_label == 'parse_orbitals'
        assert orbitals.creator.inputs.retrieved.uuid == sp_calc.outputs.retrieved.uuid
        assert ipr.creator.process_label == 'compute_ipr'
        assert ipr.creator.inputs.orbitals.uuid == orbitals.uuid
        assert summary.creator.inputs.ipr.uuid == ipr.uuid
        # the campaign's outputs are the same nodes
        assert tiny_campaign.outputs.models[key].ipr.uuid == ipr.uuid


def test_relaxation_moves_the_atoms_and_lowers_every_energy(tiny_campaign):
    for key, node in _models(tiny_campaign).items():
        relax = node.base.links.get_outgoing(link_label_filter='relax').one().node
        energies = []
        for calc in _calcs(relax):
            output = calc.outputs.retrieved.base.repository.get_object_content('aiida.out')
            energies += [float(line.split()[-1]) for line in output.splitlines() if 'Total FORCE_EVAL' in line]
        assert len(energies) >= 2, key
        assert energies[-1] < energies[0], (key, energies)
        assert node.outputs.relax_parameters['energy'] == pytest.approx(energies[-1])
        before = node.outputs.structure.get_ase().get_positions()
        after = node.outputs.relaxed_structure.get_ase().get_positions()
        assert np.abs(after - before).max() > 0.01, key


def test_every_relaxation_reaches_its_thresholds(tiny_campaign):
    """CP2K's own convergence check passed on the last geometry, and the forces are below the threshold the
    calculation was given; without overrides that threshold is the ``tiny`` protocol's, so the models are relaxed."""
    from aiida_nanohetero.workflows.relax_single_point import RelaxAndSinglePointWorkChain

    protocol = RelaxAndSinglePointWorkChain.get_protocol_inputs('tiny')['relax']['cp2k']['parameters']
    overridden = 'overrides' in tiny_campaign.inputs and tiny_campaign.inputs.overrides.get_dict()
    for key, node in _models(tiny_campaign).items():
        relax = node.base.links.get_outgoing(link_label_filter='relax').one().node
        calc = _calcs(relax)[-1]
        geo_opt = calc.inputs.parameters.get_dict()['MOTION']['GEO_OPT']
        output = calc.outputs.retrieved.base.repository.get_object_content('aiida.out')
        assert 'GEOMETRY OPTIMIZATION COMPLETED' in output, key
        gradients = [float(line.split()[-1]) for line in output.splitlines() if 'Max. gradient  ' in line]
        assert gradients and gradients[-1] <= geo_opt['MAX_FORCE'], (key, gradients)
        if not overridden:
            assert geo_opt == protocol['MOTION']['GEO_OPT'], key


def test_analysis_is_physical_for_every_model(tiny_campaign):
    for key, node in _models(tiny_campaign).items():
        n_atoms = node.base.extras.get('nanohetero_n_atoms')
        ipr = node.outputs.ipr
        values = ipr.get_array('ipr')
        assert np.all(values >= 1 / n_atoms - 1e-9) and np.all(values <= 1 + 1e-9), key
        np.testing.assert_allclose(ipr.get_array('element_contributions').sum(axis=0), 1.0, atol=1e-8)
        np.testing.assert_allclose(ipr.get_array('domain_contributions').sum(axis=0), 1.0, atol=1e-8)
        summary = node.outputs.summary.get_dict()
        assert summary['gap_ev'] > 0, key


def test_heterostructure_has_both_domains_and_an_alignment(tiny_campaign):
    models = _models(tiny_campaign)
    node = models['heterostructure_Br']
    ipr = node.outputs.ipr
    domains = ipr.base.attributes.get('domains')
    assert {'perovskite', 'chalcohalide'} <= set(domains)
    contributions = ipr.get_array('domain_contributions')
    # each domain carries a real share of the window's states
    for domain in ('perovskite', 'chalcohalide'):
        assert contributions[domains.index(domain)].max() > 0.5, domain
    summary = node.outputs.summary.get_dict()
    assert summary['alignment'] in {'type I', 'quasi-type II', 'type II', 'delocalised'}
    # the heterostructure's LUMO is a Pb 6p state of the half-sphere: the same campaign's isolated half-sphere has
    # its LUMO more than 1 eV below the cube's, a step no interface can close in a 54-atom model
    lumo = {key: models[key].outputs.summary['lumo']['energy_ev'] for key in ('half_sphere', 'cube_Br')}
    assert lumo['half_sphere'] < lumo['cube_Br'] - 1.0, lumo
    assert summary['lumo_domain_fractions']['chalcohalide'] > 0.7
    # the HOMO is localised in one of the two domains (on the cube for the relaxed Br and Cl models, on the
    # half-sphere for I and for geometries cut to one BFGS step), and the class follows from where the two lie
    homo = summary['homo_domain_fractions']
    homo_domain = max(('perovskite', 'chalcohalide'), key=lambda domain: homo[domain])
    assert homo[homo_domain] > 0.7, homo
    if summary['alignment_basis'] == 'HOMO/LUMO':
        assert summary['alignment'] == ('type I' if homo_domain == 'chalcohalide' else 'type II')
    # a 54-atom model may have no state below the seed's IPR threshold (0.03 > 1/54 only just): then the class
    # comes from the HOMO and LUMO and the summary says so
    if summary.get('vb_edge') is not None and summary.get('cb_edge') is not None:
        assert summary['alignment_basis'] == 'IPR-filtered band edges'
    else:
        assert summary['alignment_basis'] == 'HOMO/LUMO'
        assert any('IPR < 0.03' in warning for warning in summary['warnings'])


def test_status_shows_every_model_done(tiny_campaign, campaign_keys, capsys):
    from aiida_nanohetero.cli.status import print_campaign

    print_campaign(tiny_campaign)
    out = capsys.readouterr().out
    for key in campaign_keys:
        line = next(line for line in out.splitlines() if line.strip().startswith(key))
        assert line.rstrip().endswith('done'), line


def test_foreground_run_shows_each_model_moving_on(tiny_campaign, tiny_campaign_progress, campaign_keys):
    """While the campaign ran in the foreground (as `nanohetero demo` runs it), every model's stage was printed as
    it moved on, a running relaxation with its geometry steps and largest force, and no stage went backwards."""
    import re

    if not tiny_campaign_progress:
        pytest.skip('the campaign was replayed from an archive: there was no run to watch')
    lines = [line.split('] ', 1)[1] for line in tiny_campaign_progress]
    order = ('building', 'relaxing', 'single point', 'analysing', 'done')
    for key in campaign_keys:
        stages = [line.split(': ', 1)[1] for line in lines if line.startswith(f'{key}: ')]
        assert stages, f'no progress line for {key}: {lines}'
        ranks = [next(i for i, stage in enumerate(order) if text.startswith(stage)) for text in stages]
        assert ranks == sorted(ranks), stages
    force = r'relaxing, \d+ geometry steps? done, largest force [0-9.]+ Ha/bohr \(converged below [0-9.e-]+\)'
    assert any(re.search(force, line) for line in lines), lines
