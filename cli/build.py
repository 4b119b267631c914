"""``nanohetero build cube|sphere|half-sphere|heterostructure``: build a model, validate it, write or store it.

Without ``-o``/``--store`` the model is only built and its validation summary printed. ``-o model.xyz`` writes any
format ASE knows (chosen from the extension, or ``--format``; ``.xyz`` is extended XYZ and keeps the per-atom
``domain`` and ``interface`` arrays). ``--store`` runs the provenance-tracked calcfunction in the AiiDA profile
(``-p/--profile``, default ``nanohetero``) and prints the pk of the stored structure. Bad input stops with one
message naming the option and its valid range; nothing is written or stored.
"""

from __future__ import annotations

import os

import click

from aiida_nanohetero.builders import (
    CONTACTS,
    FACETS,
    LADDER,
    STRAIN_MODES,
    BuilderInputError,
    build_model,
    preset_parameters,
    validate,
)

__all__ = ('build',)

#: Command-line spelling of each builder parameter (for error messages).
_OPTION = {
    'n': '-n',
    'halide': '--halide',
    'lattice_constant': '--lattice-constant',
    'distortion': '--distortion',
    'radius': '--radius/--diameter',
    'anion_radius': '--anion-radius',
    'centre': '--centre',
    'side': '--side',
    'facet': '--facet',
    'strain': '--strain',
    'contact': '--contact',
    'preset': '--preset',
    'kind': 'KIND',
}


def _preset_option(function):
    return click.option(
        '--preset',
        type=click.Choice(list(LADDER)),
        default=None,
        help='Sizes of a rung of the ladder: tiny, mini, or paper (the seed: n = 5 cube, 4.2 nm sphere, its half). '
        'Explicit size options override it.',
    )(function)


def _output_options(function):
    function = click.option(
        '-p',
        '--profile',
        'profile_name',
        default=None,
        help='AiiDA profile for --store (default: the nanohetero group option, $NANOHETERO_PROFILE or nanohetero).',
    )(function)
    function = click.option(
        '--store', is_flag=True, help='Run the calcfunction in the AiiDA profile and print the pk of the structure.'
    )(function)
    function = click.option('--format', 'file_format', default=None, help='ASE file format (default: from -o).')(
        function
    )
    function = click.option(
        '-o', '--output', type=click.Path(dir_okay=False, writable=True), default=None, help='Write the model here.'
    )(function)
    return function


def _contact_option(function):
    return click.option(
        '--contact',
        type=click.Choice(CONTACTS),
        default='PbX2',
        show_default=True,
        help='Termination of the cube facet under the half-sphere: PbX2 (its CsX layer removed, the chalcohalide in '
        "its place: the published heterostructure) or CsX (the free cube's facet, a Cs layer at the interface).",
    )(function)


def _halide_option(function):
    return click.option('--halide', default='Br', show_default=True, help='Perovskite halide X: Cl, Br or I.')(function)


def _sphere_options(function):
    function = click.option(
        '--centre',
        default='4a',
        show_default=True,
        help='Sphere centre: 4a (inversion centre (0,0,0), the published one) or 4b ((0,0,1/2)).',
    )(function)
    function = click.option(
        '--anion-radius', type=float, default=None, help='S/Br sites kept before charge balance, Å (default: radius).'
    )(function)
    function = click.option('--diameter', type=float, default=None, help='Diameter in Å (instead of --radius).')(
        function
    )
    function = click.option('--radius', type=float, default=None, help='Radius in Å (Pb sites kept).')(function)
    return function


def _perovskite_options(function):
    function = click.option(
        '--distortion/--no-distortion',
        default=False,
        show_default=True,
        help='Orthorhombic Pnma octahedral tilts (Br, I only).',
    )(function)
    function = click.option(
        '--lattice-constant',
        type=float,
        default=None,
        help='Pseudo-cubic lattice constant, Å (default: experimental, Cl 5.600, Br 5.83, I 6.19).',
    )(function)
    function = click.option('-n', 'n', type=int, default=None, help='Octahedra per cube edge (≥ 1).')(function)
    return function


def _radius(radius, diameter):
    if radius is not None and diameter is not None:
        raise click.UsageError('give either --radius or --diameter, not both.')
    return diameter / 2 if diameter is not None else radius


def _fail(exception: BuilderInputError):
    raise click.BadParameter(str(exception), param_hint=_OPTION.get(exception.parameter, exception.parameter))


def _run(kind: str, preset, parameters: dict, output, file_format, store, profile_name, required: tuple[str, ...]):
    try:
        resolved = preset_parameters(kind, preset, **parameters)
    except BuilderInputError as exception:
        _fail(exception)
    missing = [name for name in required if name not in resolved]
    if missing:
        names = ' and '.join(_OPTION[name] for name in missing)
        raise click.UsageError(f'{kind} needs {names}, or --preset ({", ".join(LADDER)}).')
    try:
        atoms = build_model(kind, **resolved)
    except BuilderInputError as exception:
        _fail(exception)
    if store:  # a missing profile stops here, before anything is printed or written
        _load_profile(profile_name)

    summary = validate(atoms)
    click.echo(f'{kind}: ' + ', '.join(f'{k}={v}' for k, v in resolved.items()))
    click.echo(summary.format())
    if kind == 'heterostructure':
        click.echo(_interface_report(atoms))

    if output:
        from ase.io import write

        try:
            write(output, atoms, format=file_format)
        except (ValueError, KeyError, TypeError) as exception:
            raise click.BadParameter(f'cannot write {output}: {exception}', param_hint='-o/--format') from None
        click.echo(f'written          {output}')
    if store:
        outputs = _store(kind, resolved)
        structure, labels = outputs['structure'], outputs['labels']
        click.echo(f'stored           StructureData pk={structure.pk} (labels ArrayData pk={labels.pk})')


def _interface_report(atoms) -> str:
    info = atoms.info
    domain = atoms.arrays['domain']
    interface = atoms.arrays['interface']
    x = info['halide']
    shared = info['strain'] == 'shared'
    chalco = (
        f'{100 * info["chalcohalide_strain_a"]:+.2f} % (a), {100 * info["chalcohalide_strain_c"]:+.2f} % (c)'
        if shared
        else 'bulk cell'
    )
    return '\n'.join(
        [
            f'epitaxy          Pb4S3Br2 (010) on the CsPb{x}3 ({info["facet"]}) facet; Pb4S3Br2 [100], [001] ∥ '
            'perovskite ⟨110⟩',
            f'contact          {_CONTACT_TEXT[info["contact"]]}',
            f'mismatch         {100 * info["mismatch_a"]:+.2f} % along a, {100 * info["mismatch_c"]:+.2f} % along c '
            f'(CsPb{x}3 vs Pb4S3Br2)',
            f'strain           mode {info["strain"]}: perovskite in-plane {100 * info["perovskite_strain_a"]:+.2f} % '
            f'(a), {100 * info["perovskite_strain_c"]:+.2f} % (c); chalcohalide {chalco}',
            f'interface        {int(interface.sum())} atoms in the interface layer (perovskite '
            f'{int((interface & (domain == 0)).sum())}, chalcohalide {int((interface & (domain == 1)).sum())}), '
            f'{info["n_interface_bonds"]} cation–anion pairs across (within {info["interface_factor"]} × covalent '
            'radii); chalcohalide Pb sheet '
            f'{info["interface_spacing"]:.3f} Å above the top perovskite Pb plane, lateral registry rms '
            f'{info["registry_rms"]:.2f} Å ({_REGISTRY_TEXT[info["contact"]]})',
        ]
    )


_CONTACT_TEXT = {
    'PbX2': 'PbX2-terminated facet (its CsX layer removed; the chalcohalide face in its place), as published',
    'CsX': "CsX-terminated facet (the free cube's; a Cs layer between the two domains)",
}
_REGISTRY_TEXT = {'PbX2': 'chalcohalide Pb on the removed Cs sites', 'CsX': 'chalcohalide Pb on the Pb columns'}


def _load_profile(profile_name):
    from aiida_nanohetero.cli import Context

    parent = click.get_current_context().find_object(Context)
    if profile_name is None and parent is not None:
        return parent.load_profile()
    name = profile_name or os.environ.get('NANOHETERO_PROFILE') or 'nanohetero'
    return Context(name).load_profile()


def _store(kind: str, resolved: dict) -> dict:
    from aiida import orm

    from aiida_nanohetero.calcfunctions import builders as functions

    def node(value):
        if isinstance(value, bool):
            return orm.Bool(value)
        if isinstance(value, int):
            return orm.Int(value)
        if isinstance(value, float):
            return orm.Float(value)
        return orm.Str(str(value))

    inputs = {}
    for key, value in resolved.items():
        if key in ('radius', 'anion_radius', 'lattice_constant'):
            inputs[key] = orm.Float(float(value))
        else:
            inputs[key] = node(value)
    function = {
        'cube': functions.build_perovskite_cube,
        'sphere': functions.build_sphere,
        'half-sphere': functions.build_half_sphere,
        'heterostructure': functions.build_heterostructure,
    }[kind]
    if kind in ('cube', 'heterostructure'):
        inputs.setdefault('halide', orm.Str('Br'))
    if kind == 'heterostructure':
        inputs.setdefault('n', orm.Int(5))
        inputs.setdefault('radius', orm.Float(20.035))
    return function(**inputs)


@click.group('build')
def build():
    """Build an atomistic model (cube, sphere, half-sphere, heterostructure), validate it, write or store it."""


@build.command('cube')
@_perovskite_options
@_halide_option
@_preset_option
@_output_options
def cube(n, lattice_constant, distortion, halide, preset, output, file_format, store, profile_name):
    """CsPbX3 cube of n × n × n corner-sharing PbX6 octahedra (Cs n²(n+3) Pb n³ X 3n²(n+1))."""
    parameters = {'n': n, 'halide': halide, 'lattice_constant': lattice_constant, 'distortion': distortion}
    _run('cube', preset, parameters, output, file_format, store, profile_name, required=('n',))


@build.command('sphere')
@_sphere_options
@_preset_option
@_output_options
def sphere(radius, diameter, anion_radius, centre, preset, output, file_format, store, profile_name):
    """Charge-balanced Pb4S3Br2 sphere (a ∥ x, b ∥ y, c ∥ z)."""
    parameters = {'radius': _radius(radius, diameter), 'anion_radius': anion_radius, 'centre': centre}
    _run('sphere', preset, parameters, output, file_format, store, profile_name, required=('radius',))


@build.command('half-sphere')
@_sphere_options
@click.option('--side', type=int, default=1, show_default=True, help='+1: keep y ≥ 0 (published half); -1: y < 0.')
@_preset_option
@_output_options
def half_sphere(radius, diameter, anion_radius, centre, side, preset, output, file_format, store, profile_name):
    """One half of the Pb4S3Br2 sphere, cut by the plane through its centre perpendicular to b."""
    parameters = {'radius': _radius(radius, diameter), 'anion_radius': anion_radius, 'centre': centre, 'side': side}
    _run('half-sphere', preset, parameters, output, file_format, store, profile_name, required=('radius',))


@build.command('heterostructure')
@_perovskite_options
@_halide_option
@_sphere_options
@click.option(
    '--facet',
    default='010',
    show_default=True,
    help=f'Cube facet put on the half-sphere: {", ".join(FACETS)}.',
)
@click.option(
    '--strain',
    type=click.Choice(STRAIN_MODES),
    default='perovskite',
    show_default=True,
    help='Where the in-plane mismatch goes: perovskite (coherent), shared (half-way) or none (both bulk).',
)
@_contact_option
@_preset_option
@_output_options
def heterostructure(
    n,
    lattice_constant,
    distortion,
    halide,
    radius,
    diameter,
    anion_radius,
    centre,
    facet,
    strain,
    contact,
    preset,
    output,
    file_format,
    store,
    profile_name,
):
    """CsPbX3 cube on the flat (010) face of a Pb4S3Br2 half-sphere; prints mismatch and interface summary."""
    parameters = {
        'n': n,
        'halide': halide,
        'lattice_constant': lattice_constant,
        'distortion': distortion,
        'radius': _radius(radius, diameter),
        'anion_radius': anion_radius,
        'centre': centre,
        'facet': facet,
        'strain': strain,
        'contact': contact,
    }
    _run('heterostructure', preset, parameters, output, file_format, store, profile_name, required=('n', 'radius'))


@build.command('compare')
@click.argument('reference', type=click.Path(exists=True, dir_okay=False))
@click.option('--halide', default='Br', show_default=True, help='Perovskite halide X of the model: Cl, Br or I.')
@_contact_option
@click.option(
    '--tolerance', type=float, default=1.0, show_default=True, help='Distance (Å) within which a site is matched.'
)
@click.option(
    '--any-composition',
    is_flag=True,
    help='Compare even if the compositions differ (the element sets must still agree).',
)
@click.option('--format', 'file_format', default=None, help='ASE format of REFERENCE (default: from its name).')
@click.option(
    '--preset',
    type=click.Choice(list(LADDER)),
    default='paper',
    show_default=True,
    help='Rung of the model built for the comparison.',
)
def compare(reference, halide, contact, tolerance, any_composition, file_format, preset):
    """Compare our heterostructure site by site with REFERENCE (e.g. the published relaxed model, any ASE format).

    The model is fitted onto REFERENCE (translation, rotation, small strain), atoms are matched one-to-one per
    element; printed: the matched fraction within --tolerance per element and domain, the unmatched sites, the site
    occupation (reference sites carrying our element) and the Pb registry across the interface of both.
    """
    from ase.io import read

    from aiida_nanohetero.builders.compare import ComparisonInputError, compare_heterostructure

    if not tolerance > 0:
        raise click.BadParameter(f'{tolerance} Å: it must be a positive distance.', param_hint='--tolerance')
    try:
        atoms = build_model('heterostructure', preset, halide=halide, contact=contact)
    except BuilderInputError as exception:
        _fail(exception)
    try:
        ref = read(reference, format=file_format)
    except Exception as exception:  # ASE raises many kinds for a file it cannot parse
        raise click.BadParameter(
            f'cannot read {reference} as a structure ({type(exception).__name__}: {exception}); give a file in a '
            'format ASE reads, or --format.',
            param_hint='REFERENCE',
        ) from None
    if isinstance(ref, list) or len(ref) == 0:
        raise click.BadParameter(f'{reference} holds no atoms.', param_hint='REFERENCE')
    try:
        result = compare_heterostructure(atoms, ref, tolerance=tolerance, strict=not any_composition)
    except ComparisonInputError as exception:
        hint = '' if 'element set' in str(exception) else '; --any-composition compares them anyway'
        raise click.BadParameter(f'{exception}{hint}.', param_hint='REFERENCE') from None
    click.echo(_comparison_report(result, preset, contact))


def _comparison_report(result: dict, preset: str, contact: str) -> str:
    lines = [
        f'model            {result["model_formula"]} ({preset}, contact {contact})',
        f'reference        {result["reference_formula"]}',
        'fit              affine; strain (singular values − 1) '
        + ', '.join(f'{100 * x:+.2f} %' for x in result['strain']),
        f'matched          {100 * result["matched"]:.1f} % of the reference atoms within {result["tolerance"]:g} Å '
        f'(rms {result["rms_matched"]:.2f} Å)',
    ]
    for domain, table in result['per_domain'].items():
        cells = ', '.join(f'{e} {v["matched"]}/{v["total"]}' for e, v in table.items())
        lines.append(f'  {domain:<14} {cells}')
    unmatched = {d: t for d, t in result['unmatched'].items() if t}
    lines.append(
        'unmatched        '
        + ('; '.join(f'{d}: ' + ', '.join(f'{e} {k}' for e, k in t.items()) for d, t in unmatched.items()) or 'none')
    )
    lines.append(
        f'site occupation  {100 * result["site_element_match"]:.1f} % of the reference sites carry our element'
    )
    for domain, table in result['site_element_per_domain'].items():
        cells = ', '.join(f'{e} {v["same"]}/{v["total"]}' for e, v in table.items())
        lines.append(f'  {domain:<14} {cells}')
    lines.append(
        f'Pb registry      rms {result["registry_rms_model"]:.2f} Å (model), {result["registry_rms_reference"]:.2f} Å '
        '(reference): lateral distance of each top perovskite Pb to the nearest chalcohalide Pb above it'
    )
    return '\n'.join(lines)
