"""``nanohetero.campaign``: the whole study for a set of halides — build, relax, single point, for every model.

For each halide X the campaign builds the CsPbX3 cube and the CsPbX3/Pb4S3Br2 heterostructure; the Pb4S3Br2
half-sphere is the same for every X (anion exchange only touches the perovskite), so it is built and computed
once. Every model runs :class:`~aiida_nanohetero.workflows.relax_single_point.RelaxAndSinglePointWorkChain`
concurrently. Results are put in groups with extras, so they are found by query:

* ``nanohetero/campaigns``: every campaign work chain (extras ``protocol``, ``halides``);
* ``nanohetero/campaign/<uuid>``: the model work chains of one campaign;
* ``nanohetero/models``: every model work chain of every campaign (extras ``model``, ``halide``,
  ``protocol``, ``size``, ``formula``, ``n_atoms``, ``campaign``).
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, while_

from aiida_nanohetero.workflows.protocols import ProtocolError
from aiida_nanohetero.workflows.relax_single_point import RelaxAndSinglePointWorkChain
from aiida_nanohetero.workflows.single_point import check_cp2k_code

__all__ = (
    'CAMPAIGNS_GROUP',
    'HALIDES',
    'MODELS_GROUP',
    'ONE_STEP_RELAX',
    'HeterostructureCampaignWorkChain',
    'campaign_group_label',
)

HALIDES = ('Br', 'Cl', 'I')

#: Overrides that end every relaxation after its first BFGS step (thresholds no step can miss): a quick look at
#: the pipeline (``nanohetero demo --one-step``), e.g. with the ``mini`` models, whose full relaxation takes hours
#: on a workstation.
ONE_STEP_RELAX = {
    'relax': {
        'cp2k': {
            'parameters': {'MOTION': {'GEO_OPT': {'MAX_FORCE': 1.0, 'RMS_FORCE': 1.0, 'MAX_DR': 10.0, 'RMS_DR': 10.0}}}
        }
    }
}
CAMPAIGNS_GROUP = 'nanohetero/campaigns'
MODELS_GROUP = 'nanohetero/models'
EXTRA_PREFIX = 'nanohetero'


def campaign_group_label(uuid: str) -> str:
    return f'nanohetero/campaign/{uuid}'


def validate_halides(value, _ctx=None):
    halides = list(value.get_list()) if isinstance(value, orm.List) else list(value)
    if not halides:
        return 'halides: give at least one of Cl, Br, I'
    unknown = [h for h in halides if h not in HALIDES]
    if unknown:
        return f'halides: unknown halide(s) {", ".join(map(str, unknown))}; choose from Cl, Br, I'
    if len(set(halides)) != len(halides):
        return f'halides: {halides} lists a halide twice'
    return None


def validate_inputs(inputs, _ctx=None):
    protocol = inputs['protocol'].value if 'protocol' in inputs else None
    overrides = inputs['overrides'].get_dict() if 'overrides' in inputs else None
    try:
        RelaxAndSinglePointWorkChain.get_protocol_inputs(protocol, overrides)
    except ProtocolError as exception:
        return str(exception)
    if 'code' in inputs:
        try:
            check_cp2k_code(inputs['code'])
        except ValueError as exception:
            return str(exception)
    return None


class HeterostructureCampaignWorkChain(WorkChain):
    """Build and compute the cube, the half-sphere and the heterostructure for each halide."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('protocol', valid_type=orm.Str, default=lambda: orm.Str('tiny'), help='tiny, mini or paper.')
        spec.input(
            'halides',
            valid_type=orm.List,
            default=lambda: orm.List(list(HALIDES)),
            validator=validate_halides,
            help='Any subset of Cl, Br, I.',
        )
        spec.input('code', valid_type=orm.AbstractCode, help='The CP2K code.')
        spec.input('overrides', valid_type=orm.Dict, required=False, help='Overrides of the protocol inputs.')
        spec.input('options', valid_type=orm.Dict, required=False, help='Calculation options (resources, walltime).')
        spec.input('relax', valid_type=orm.Bool, default=lambda: orm.Bool(True), help='Relax every model first.')
        spec.input(
            'max_concurrent',
            valid_type=orm.Int,
            required=False,
            validator=_validate_max_concurrent,
            help='Run at most this many models at a time (in waves); default: all at once. On a workstation each '
            'tiny Pb4S3Br2 model takes ~3 GB of memory, so a three-halide campaign needs a limit there.',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, cls.build_models, while_(cls.models_left)(cls.run_models), cls.inspect_models)
        spec.output_namespace(
            'models', dynamic=True, help='Per model: structures, output parameters, orbitals, IPR, summary.'
        )
        spec.exit_code(
            410,
            'ERROR_SOME_MODELS_FAILED',
            message='Some models failed ({failed}); the others are output.',
        )
        spec.exit_code(411, 'ERROR_ALL_MODELS_FAILED', message='Every model failed: {failed}.')

    def setup(self):
        from aiida_nanohetero.builders import LADDER

        protocol = self.inputs.protocol.value
        self.ctx.rung = LADDER[protocol]
        self.ctx.models = AttributeDict()  # key -> {'structure', 'labels', 'model', 'halide'}
        self.ctx.group = _group(campaign_group_label(self.node.uuid), f'Models of campaign {self.node.uuid}')
        _group(CAMPAIGNS_GROUP, 'Every nanohetero campaign').add_nodes(self.node)
        halides = self.inputs.halides.get_list()
        self.node.base.extras.set_many({f'{EXTRA_PREFIX}_protocol': protocol, f'{EXTRA_PREFIX}_halides': halides})

    def build_models(self):
        from aiida_nanohetero.calcfunctions.builders import (
            build_half_sphere,
            build_heterostructure,
            build_perovskite_cube,
        )

        rung = self.ctx.rung
        n, radius = orm.Int(rung.cube_n), orm.Float(rung.radius)
        anion = {} if rung.anion_radius is None else {'anion_radius': orm.Float(rung.anion_radius)}
        half = build_half_sphere(radius=radius, **anion)
        self.ctx.models['half_sphere'] = {**half, 'model': 'half-sphere', 'halide': 'Br', 'size': rung.radius}
        for halide in self.inputs.halides.get_list():
            cube = build_perovskite_cube(n=n, halide=orm.Str(halide))
            self.ctx.models[f'cube_{halide}'] = {**cube, 'model': 'cube', 'halide': halide, 'size': rung.cube_n}
            het = build_heterostructure(n=n, halide=orm.Str(halide), radius=radius, **anion)
            self.ctx.models[f'heterostructure_{halide}'] = {
                **het,
                'model': 'heterostructure',
                'halide': halide,
                'size': rung.cube_n,
            }
        summary = ', '.join(f'{key} {m["structure"].get_formula()}' for key, m in self.ctx.models.items())
        self.report(f'built {len(self.ctx.models)} models: {summary}')
        self.ctx.waiting = largest_first({key: len(m['structure'].sites) for key, m in self.ctx.models.items()})

    def models_left(self):
        return bool(self.ctx.waiting)

    def run_models(self):
        protocol = self.inputs.protocol.value
        overrides = self.inputs.overrides.get_dict() if 'overrides' in self.inputs else None
        options = self.inputs.options.get_dict() if 'options' in self.inputs else None
        running = {}
        every_model = _group(MODELS_GROUP, 'Every model of every nanohetero campaign')
        limit = self.inputs.max_concurrent.value if 'max_concurrent' in self.inputs else len(self.ctx.waiting)
        wave, self.ctx.waiting = self.ctx.waiting[:limit], self.ctx.waiting[limit:]
        for key in wave:
            model = self.ctx.models[key]
            builder = RelaxAndSinglePointWorkChain.get_builder_from_protocol(
                self.inputs.code, model['structure'], protocol, overrides, labels=model['labels'], options=options
            )
            builder.relax_geometry = self.inputs.relax
            builder.metadata.call_link_label = key
            builder.metadata.label = f'{key} ({protocol})'
            node = self.submit(builder)
            node.base.extras.set_many(
                {
                    f'{EXTRA_PREFIX}_model': model['model'],
                    f'{EXTRA_PREFIX}_halide': model['halide'],
                    f'{EXTRA_PREFIX}_protocol': protocol,
                    f'{EXTRA_PREFIX}_size': model['size'],
                    f'{EXTRA_PREFIX}_formula': model['structure'].get_formula(),
                    f'{EXTRA_PREFIX}_n_atoms': len(model['structure'].sites),
                    f'{EXTRA_PREFIX}_campaign': self.node.uuid,
                    f'{EXTRA_PREFIX}_key': key,
                }
            )
            self.ctx.group.add_nodes(node)
            every_model.add_nodes(node)
            running[key] = node
            self.report(f'{key}: RelaxAndSinglePointWorkChain<{node.pk}>')
        return ToContext(**{f'run_{key}': node for key, node in running.items()})

    def inspect_models(self):
        failed = []
        for key in self.ctx.models:
            node = self.ctx[f'run_{key}']
            if not node.is_finished_ok:
                failed.append(f'{key} (exit status {node.exit_status})')
                continue
            for name in ('structure', 'relaxed_structure', 'output_parameters', 'orbitals', 'ipr', 'summary'):
                if name in node.outputs:
                    self.out(f'models.{key}.{name}', node.outputs[name])
        if failed and len(failed) == len(self.ctx.models):
            return self.exit_codes.ERROR_ALL_MODELS_FAILED.format(failed=', '.join(failed))
        if failed:
            return self.exit_codes.ERROR_SOME_MODELS_FAILED.format(failed=', '.join(failed))
        self.report(f'all {len(self.ctx.models)} models finished')


def largest_first(sizes: dict[str, int]) -> list[str]:
    """The order in which the models are launched: most atoms first (ties in the given order).

    With ``max_concurrent`` the models run in waves and each wave lasts as long as its slowest model, so the
    expensive models go together and the cheap ones fill the last wave (longest-processing-time first), instead of
    one large model holding a wave open while the cores that ran a small one sit idle."""
    return sorted(sizes, key=lambda key: -sizes[key])


def _validate_max_concurrent(value, _ctx=None):
    if value is not None and value.value < 1:
        return f'max_concurrent must be at least 1, got {value.value}'
    return None


def _group(label: str, description: str) -> orm.Group:
    group, created = orm.Group.collection.get_or_create(label)
    if created:
        group.description = description
    return group
