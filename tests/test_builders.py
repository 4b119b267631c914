"""Model builders: compositions, charge balance, the published models, the heterostructure interface, bad input.

The published DFT models (``shared/reference/models``, beside the repository or at ``$NANOHETERO_SHARED``) are only
read here, as references; tests that need them skip when they are absent.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase.io import read
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from aiida_nanohetero.builders import (
    CONTACTS,
    DOMAINS,
    FACETS,
    HALIDES,
    KINDS,
    LADDER,
    MIN_RADIUS,
    PSEUDOCUBIC_A,
    STRAIN_MODES,
    BuilderInputError,
    build_model,
    chalcohalide_sphere,
    cs_vacancy_sites,
    cube_composition,
    formal_charge,
    formula,
    half_sphere,
    heterostructure,
    in_plane_mismatch,
    perovskite_cube,
    validate,
)
from aiida_nanohetero.builders._data import CHALCOHALIDE
from aiida_nanohetero.builders.compare import compare_chalcohalide, compare_cube
from aiida_nanohetero.builders.perovskite import _OH, perovskite_lattice, perovskite_sites

PAPER = LADDER['paper']

#: RMSD bound (Å) of an ideal cube (experimental a = 5.83 Å) against the published PBE-relaxed CsPbBr3 cubes after
#: the best alignment. Measured: n = 1 0.59, n = 2 0.47, n = 3 0.60, n = 5 0.67 Å; the residual is the relaxation
#: (PBE lattice expansion, surface halides near the Cs vacancies moving up to 1.9 Å), not a wrong site.
CUBE_RMSD_BOUND = 0.75

PUBLISHED_CUBES = {
    1: 'cspbbr3_0.6nm_opt.xyz',
    2: 'cspbbr3_1.2nm_opt.xyz',
    3: 'cspbbr3_1.8nm_opt.xyz',
    5: 'cspbbr3_3.0nm_opt.xyz',
}


@pytest.fixture(scope='module')
def models(shared_dir):
    path = shared_dir / 'reference' / 'models'
    if not path.is_dir():
        pytest.skip(f'published models not found in {path}')
    return path


def counts(atoms) -> dict[str, int]:
    symbols = atoms.get_chemical_symbols()
    return {s: symbols.count(s) for s in set(symbols)}


def doubled(sites, n) -> set[tuple[int, ...]]:
    """Cs index sites in doubled centred coordinates (integers), for comparisons up to the cube group."""
    return {tuple(int(x) for x in 2 * np.asarray(s) - n) for s in sites}


def equivalent_under_oh(a: set, b: set) -> bool:
    return any({tuple(int(x) for x in op @ np.array(s)) for s in a} == b for op in _OH)


def published_vacancies(atoms, n) -> set[tuple[int, int, int]]:
    """Cs vacancy sites (i, j, k ∈ 0…n) of a published cube, read off its relaxed Cs positions."""
    symbols = np.array(atoms.get_chemical_symbols())
    pb = atoms.positions[symbols == 'Pb']
    centre = pb.mean(axis=0)
    if n > 1:
        a = np.median(cKDTree(pb).query(pb, k=2)[0][:, 1])
    else:  # one Pb: twice the mean Pb–X distance
        a = 2 * np.linalg.norm(atoms.positions[symbols == 'Br'] - centre, axis=1).mean()
    index = np.rint((atoms.positions[symbols == 'Cs'] - centre) / a + n / 2).astype(int)
    kept = {tuple(int(x) for x in i) for i in index}
    assert len(kept) == (symbols == 'Cs').sum()  # one Cs per site: the rounding is unambiguous
    return set(itertools.product(range(n + 1), repeat=3)) - kept


# ----------------------------------------------------------------------------------------------------- cubes


@pytest.mark.parametrize('halide', HALIDES)
@pytest.mark.parametrize('n', [1, 2, 3, 4, 5, 6])
def test_cube_composition_and_neutrality(n, halide):
    atoms = perovskite_cube(n, halide)
    expected = cube_composition(n)
    assert counts(atoms) == {'Cs': n * n * (n + 3), 'Pb': n**3, halide: 3 * n * n * (n + 1)}
    assert expected == {'Cs': n * n * (n + 3), 'Pb': n**3, 'X': 3 * n * n * (n + 1)}
    assert formal_charge(atoms) == 0
    summary = validate(atoms)
    assert summary.ok, summary.problems
    # Every Pb is a full octahedron: six X at a/2 (corner sharing, CsX-terminated faces).
    assert summary.coordination['Pb'] == {'mean': 6.0, 'min': 6, 'max': 6}
    assert summary.min_distance == pytest.approx(PSEUDOCUBIC_A[halide] / 2)
    assert np.allclose(atoms.positions[atoms.numbers == 82].mean(axis=0), 0)
    assert not atoms.pbc.any() and not atoms.cell.any()
    assert (atoms.arrays['domain'] == DOMAINS['perovskite']).all() and not atoms.arrays['interface'].any()


def test_n1_cube_is_the_contract_cs4pbbr6():
    a = PSEUDOCUBIC_A['Br']
    atoms = perovskite_cube(1, 'Br')
    symbols = np.array(atoms.get_chemical_symbols())
    assert np.allclose(atoms.positions[symbols == 'Pb'], 0)
    br = {tuple(np.round(p / a, 6)) for p in atoms.positions[symbols == 'Br']}
    assert br == {tuple(s * v for v in e) for s in (0.5, -0.5) for e in np.eye(3)}
    cs = {tuple(np.round(p / a, 6)) for p in atoms.positions[symbols == 'Cs']}
    assert cs == {(-0.5, -0.5, -0.5), (-0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.5, 0.5, -0.5)}


@pytest.mark.parametrize('n', range(1, 10))
def test_cs_vacancy_rule(n):
    vacancies = cs_vacancy_sites(n)
    assert len(set(vacancies)) == 3 * n + 1
    corners = set(itertools.product((0, n), repeat=3))
    on_corners = [v for v in vacancies if v in corners]
    assert len(on_corners) == min(8, 3 * n + 1)  # corners first
    edges = [v for v in vacancies if v not in corners]
    for v in edges:  # the rest on edges (two coordinates in {0, n}) ...
        assert sum(c in (0, n) for c in v) == 2
    per_edge = {}
    for v in edges:
        key = tuple(c if c in (0, n) else None for c in v)
        per_edge[key] = per_edge.get(key, 0) + 1
    if edges:  # ... spread as evenly as possible over the 12 edges, near their middles when one per edge
        assert max(per_edge.values()) - min(per_edge.get(k, 0) for k in _edge_keys(n)) <= 1
        if max(per_edge.values()) == 1:
            assert all(abs(c - n / 2) <= 0.5 for v in edges for c in v if c not in (0, n))
    symmetric = sum(doubled(vacancies, n) == {tuple(op @ np.array(s)) for s in doubled(vacancies, n)} for op in _OH)
    assert symmetric >= 2  # not just the identity
    assert cs_vacancy_sites(n) == vacancies  # deterministic


def _edge_keys(n):
    keys = []
    for axis in range(3):
        for a, b in itertools.product((0, n), repeat=2):
            key = [a, b]
            key.insert(axis, None)
            keys.append(tuple(key))
    return keys


@pytest.mark.parametrize('n', sorted(PUBLISHED_CUBES))
def test_cube_against_published_model(models, n):
    reference = read(models / PUBLISHED_CUBES[n])
    model = perovskite_cube(n, 'Br')
    assert formula(model.get_chemical_symbols()) == formula(reference.get_chemical_symbols())
    ours = doubled(cs_vacancy_sites(n), n)
    theirs = doubled(published_vacancies(reference, n), n)
    assert equivalent_under_oh(ours, theirs), (sorted(ours), sorted(theirs))
    result = compare_cube(model, reference)
    assert result['rmsd'] < CUBE_RMSD_BOUND, result


def test_vacancy_comparison_can_fail(models):
    """The up-to-symmetry check is sharp: moving one edge vacancy to the neighbouring edge site breaks it."""
    theirs = doubled(published_vacancies(read(models / PUBLISHED_CUBES[5]), 5), 5)
    ours = set(cs_vacancy_sites(5))
    edge_site = next(v for v in sorted(ours) if sum(c in (0, 5) for c in v) == 2)
    axis = next(k for k, c in enumerate(edge_site) if c not in (0, 5))
    moved = list(edge_site)
    moved[axis] = 5 - moved[axis]  # the mirror site on the same edge (2 <-> 3)
    assert equivalent_under_oh(doubled(ours, 5), theirs)
    assert not equivalent_under_oh(doubled(ours - {edge_site} | {tuple(moved)}, 5), theirs)


@pytest.mark.parametrize('halide', ['Br', 'I'])
def test_pnma_distortion(halide):
    ideal, tilted = perovskite_cube(3, halide), perovskite_cube(3, halide, distortion=True)
    assert counts(ideal) == counts(tilted)
    shift = np.linalg.norm(tilted.positions - ideal.positions, axis=1)
    assert 0.1 < shift.max() < 1.2  # octahedral tilts move X and Cs by a few tenths of an Å
    assert validate(tilted).ok
    # Pb stays on the 4a sites of the Pnma cell (b_o along y): half-integer fractional coordinates.
    _, (_, _, cell) = perovskite_lattice(halide, None, True)
    symbols, positions = perovskite_sites(3, halide, distortion=True)
    frac = 2 * positions[np.array(symbols) == 'Pb'] / cell
    assert np.allclose(frac, np.rint(frac), atol=1e-9)
    assert shift[tilted.numbers != 82].max() > 0.3  # X and Cs move


def test_lattice_constant_scales_the_cube():
    small, large = perovskite_cube(2, 'Cl', 5.6), perovskite_cube(2, 'Cl', 5.9)
    assert np.allclose(large.positions, small.positions * 5.9 / 5.6)


# ----------------------------------------------------------------------------------------- Pb4S3Br2 spheres


def test_crystal_pb_shell_of_the_paper_sphere():
    """548 Pb sites lie within 20.035 Å of the 4a centre (the last at 20.031 Å, the next at 20.040 Å)."""
    unit = CHALCOHALIDE.unit_cell()
    frac = unit.get_scaled_positions()[unit.numbers == 82]
    shifts = np.array(list(itertools.product(range(-4, 5), repeat=3)))
    r = np.linalg.norm(((frac[None] + shifts[:, None]).reshape(-1, 3)) * CHALCOHALIDE.cell, axis=1)
    assert (r < PAPER.radius).sum() == 548 and np.sort(r)[548] > 20.035 + 0.004


def test_paper_sphere_composition():
    sphere = chalcohalide_sphere(PAPER.radius, anion_radius=PAPER.anion_radius)
    c = counts(sphere)
    assert c['Pb'] == 548
    assert formal_charge(sphere) == 0
    # Published: Pb548S423Br250; the deterministic rule gives one S fewer and two Br more (see docs/builders.md).
    assert abs(c['S'] - 423) <= 2 and abs(c['Br'] - 250) <= 4
    assert validate(sphere).ok
    assert (sphere.arrays['domain'] == DOMAINS['chalcohalide']).all()


def test_paper_sphere_against_published_model(models):
    reference = read(models / 'pb4s3br2_4nm_OPT.xyz')
    sphere = chalcohalide_sphere(PAPER.radius, anion_radius=PAPER.anion_radius)
    assert counts(sphere)['Pb'] == counts(reference)['Pb']
    result = compare_chalcohalide(sphere, reference)
    a_scale, b_scale, c_scale = result['scales']
    assert 1.03 < b_scale < 1.07 and abs(a_scale - 1) < 0.01 and abs(c_scale - 1) < 0.01  # stretched along b
    assert result['rms_inner'] < 0.3  # inside 14 Å every atom sits near its ideal site
    assert result['element_match'] >= 0.95, result['element_match']
    assert result['within_0.8'] > 0.8


def test_sphere_comparison_detects_a_wrong_model(models):
    """A sphere about the other inversion centre (4b) is a different particle: the element match drops."""
    reference = read(models / 'pb4s3br2_4nm_OPT.xyz')
    wrong = chalcohalide_sphere(PAPER.radius, centre='4b', anion_radius=PAPER.anion_radius)
    assert compare_chalcohalide(wrong, reference)['element_match'] < 0.9


def test_half_sphere_is_half_of_the_sphere():
    sphere = chalcohalide_sphere(PAPER.radius, anion_radius=PAPER.anion_radius)
    for side in (1, -1):
        half = half_sphere(PAPER.radius, anion_radius=PAPER.anion_radius, side=side)
        assert counts(half)['Pb'] == 274 and formal_charge(half) == 0
        inside = sphere.positions[:, 1] >= 0 if side == 1 else sphere.positions[:, 1] < 0
        ours = {(z, *np.round(p, 4)) for z, p in zip(half.numbers, half.positions, strict=True)}
        cut = {(z, *np.round(p, 4)) for z, p in zip(sphere.numbers[inside], sphere.positions[inside], strict=True)}
        assert ours == cut  # no re-balancing was needed for the paper half
        assert validate(half).ok


def test_half_sphere_against_published_half(models):
    """The published half (Cl analogue, Pb274S211Cl126) is the y ≥ 0 half: same composition, same sites."""
    reference = read(models / 'half_pb4s3cl2_OPT.xyz')
    half = half_sphere(PAPER.radius, anion_radius=PAPER.anion_radius)
    ref_counts = counts(reference)
    assert counts(half) == {'Pb': ref_counts['Pb'], 'S': ref_counts['S'], 'Br': ref_counts['Cl']}
    result = compare_chalcohalide(half, reference)
    assert result['flip'] == [1, 1, 1]  # the same side, no mirror needed
    assert result['element_match'] > 0.93  # measured 0.948


@pytest.mark.parametrize('radius', [7.264, 8.25, 9.0, 10.0, 12.5, 15.0])
@pytest.mark.parametrize('centre', ['4a', '4b'])
def test_spheres_are_neutral(radius, centre):
    models = (chalcohalide_sphere(radius, centre), half_sphere(radius, centre), half_sphere(radius, centre, side=-1))
    for atoms in models:
        c = counts(atoms)
        assert formal_charge(atoms) == 0 and c['Pb'] >= 4 and c['S'] >= 3 and c['Br'] >= 2
        assert np.linalg.norm(atoms.positions[atoms.numbers == 82], axis=1).max() < radius
        assert validate(atoms).ok


def test_minimum_radius_is_the_threshold():
    """Every radius above MIN_RADIUS['4a'] gives valid particles (checked up to 12 Å); the one just below does not."""
    from aiida_nanohetero.builders.chalcohalide import _crystal_sites

    _, positions = _crystal_sites(13.0, np.zeros(3))
    radii = np.unique(np.round(np.linalg.norm(positions, axis=1), 4))
    for radius in radii[(radii > MIN_RADIUS['4a'] - 0.01) & (radii < 12.0)] + 1e-3:
        for atoms in (chalcohalide_sphere(radius), half_sphere(radius)):
            assert formal_charge(atoms) == 0
    just_below = radii[radii < MIN_RADIUS['4a'] - 0.01][-1] + 1e-3  # the shell before the last needed one
    from aiida_nanohetero.builders.chalcohalide import _formula_ok, _half_arrays, _sphere_arrays

    z, positions, charge = _sphere_arrays(just_below, just_below, np.zeros(3))
    z_half, _, charge_half = _half_arrays(z, positions, 1)
    assert charge != 0 or charge_half != 0 or not (_formula_ok(z) and _formula_ok(z_half))


# -------------------------------------------------------------------------------------------- heterostructure


@pytest.mark.parametrize('halide', HALIDES)
@pytest.mark.parametrize('rung', list(LADDER))
def test_heterostructure_interface_csx_contact(halide, rung):
    """The CsX contact (the free cube's facet under the half-sphere): Pb sublattice continued across, Cs layer."""
    r = LADDER[rung]
    atoms = heterostructure(r.cube_n, halide, r.radius, anion_radius=r.anion_radius, contact='CsX')
    summary = validate(atoms)
    assert summary.ok and summary.neutral and summary.clashes == 0
    domain = atoms.arrays['domain']
    perovskite, chalco = domain == DOMAINS['perovskite'], domain == DOMAINS['chalcohalide']
    # The parts are exactly the cube and the half-sphere; anion exchange never touches the chalcohalide.
    assert counts(atoms[perovskite]) == counts(perovskite_cube(r.cube_n, halide))
    assert counts(atoms[chalco]) == counts(half_sphere(r.radius, anion_radius=r.anion_radius))
    assert set(atoms[chalco].get_chemical_symbols()) == {'Pb', 'S', 'Br'}
    # Pb registry: the perovskite's top Pb plane continues the chalcohalide's Pb sheet along [010] ...
    pb = atoms.numbers == 82
    top = atoms.positions[pb & perovskite]
    top = top[top[:, 1] > top[:, 1].max() - 0.5]
    sheet = atoms.positions[pb & chalco]
    sheet = sheet[sheet[:, 1] < sheet[:, 1].min() + 0.5]
    assert sheet[:, 1].mean() - top[:, 1].mean() == pytest.approx(PSEUDOCUBIC_A[halide], abs=1e-6)
    lateral, _ = cKDTree(sheet[:, [0, 2]]).query(top[:, [0, 2]])
    assert lateral.max() < 0.8  # ... each perovskite Pb column under a chalcohalide Pb
    # ... and bonded to it through the perovskite's apical X (Pb–X–Pb), at a Pb–X bond length.
    x = atoms.positions[perovskite & (atoms.numbers != 82) & (atoms.numbers != 55)]
    over_cube = cKDTree(top[:, [0, 2]]).query(sheet[:, [0, 2]])[0] < 0.8
    bridge, _ = cKDTree(x).query(sheet[over_cube])
    assert over_cube.sum() == len(top) and (2.6 < bridge).all() and (bridge < 3.4).all()
    # Interface layer: atoms of both domains, all near the interface plane.
    interface = atoms.arrays['interface']
    assert (interface & perovskite).any() and (interface & chalco).any()
    y_interface = (sheet[:, 1].mean() + top[:, 1].mean()) / 2
    assert np.abs(atoms.positions[interface, 1] - y_interface).max() < PSEUDOCUBIC_A[halide]


def test_mismatch_per_halide():
    """In-plane mismatch against Pb4S3Br2 a and c, from the embedded cells (values as in crystals.md)."""
    br = in_plane_mismatch('Br', distortion=True)
    assert br['mismatch_a'] == pytest.approx(8.2440 / 8.20261 - 1)
    assert br['mismatch_c'] == pytest.approx(8.1982 / 8.16986 - 1)
    cl = in_plane_mismatch('Cl')
    i = in_plane_mismatch('I')
    percent = pytest.approx
    assert 100 * cl['mismatch_a'] == percent(-3.5, abs=0.06) and 100 * cl['mismatch_c'] == percent(-3.1, abs=0.06)
    assert 100 * i['mismatch_a'] == percent(6.7, abs=0.06) and 100 * i['mismatch_c'] == percent(7.2, abs=0.06)
    assert 100 * br['mismatch_a'] == percent(0.50, abs=0.006) and 100 * br['mismatch_c'] == percent(0.35, abs=0.006)


@pytest.mark.parametrize('strain', STRAIN_MODES)
def test_where_the_strain_goes(strain):
    atoms = heterostructure(2, 'I', 10.0, strain=strain)
    info = atoms.info
    ideal = in_plane_mismatch('I')
    perovskite = atoms.arrays['domain'] == 0
    pb = atoms.positions[perovskite & (atoms.numbers == 82)]
    xs = np.unique(np.round(pb[:, 0], 6))  # Pb columns along x are half a perovskite a_o apart
    period_x = 2 * (xs[1] - xs[0])
    expected = {
        'perovskite': CHALCOHALIDE.cell[0],
        'shared': np.sqrt(CHALCOHALIDE.cell[0] * ideal['perovskite_a']),
        'none': ideal['perovskite_a'],
    }[strain]
    assert period_x == pytest.approx(expected, rel=1e-4)
    assert info['perovskite_strain_a'] == pytest.approx(expected / ideal['perovskite_a'] - 1)
    assert validate(atoms).ok


@pytest.mark.parametrize('halide', HALIDES)
@pytest.mark.parametrize('strain', STRAIN_MODES)
def test_paper_heterostructure_every_strain(halide, strain):
    for distortion in (False, True) if halide != 'Cl' else (False,):
        atoms = heterostructure(
            PAPER.cube_n, halide, PAPER.radius, anion_radius=PAPER.anion_radius, strain=strain, distortion=distortion
        )
        summary = validate(atoms)
        assert summary.ok and summary.neutral, summary.problems


@pytest.mark.parametrize('facet', list(FACETS))
def test_every_facet(facet):
    atoms = heterostructure(3, 'Br', 10.0, facet=facet)
    assert validate(atoms).ok
    assert atoms.info['facet'] == facet


def test_builders_are_deterministic():
    first = heterostructure(2, 'Cl', 9.0, facet='100', strain='shared')
    second = heterostructure(2, 'Cl', 9.0, facet='100', strain='shared')
    assert first.get_chemical_symbols() == second.get_chemical_symbols()
    assert np.array_equal(first.positions, second.positions)
    assert np.array_equal(first.arrays['interface'], second.arrays['interface'])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 4),
    halide=st.sampled_from(HALIDES),
    radius=st.floats(MIN_RADIUS['4a'], 21.0),
    facet=st.sampled_from(list(FACETS)),
    strain=st.sampled_from(STRAIN_MODES),
    distortion=st.booleans(),
    scale=st.floats(0.97, 1.04),
    contact=st.sampled_from(CONTACTS),
)
def test_random_valid_parameters_give_valid_models(n, halide, radius, facet, strain, distortion, scale, contact):
    distortion = distortion and halide != 'Cl'
    lattice_constant = PSEUDOCUBIC_A[halide] * scale
    atoms = heterostructure(
        n,
        halide,
        radius,
        lattice_constant=lattice_constant,
        distortion=distortion,
        facet=facet,
        strain=strain,
        contact=contact,
    )
    summary = validate(atoms)
    assert summary.ok, summary.problems
    assert summary.charge == 0
    cube = perovskite_cube(n, halide, lattice_constant, distortion)
    expected = counts(cube)
    if contact == 'PbX2':  # the contact CsX plane removed, n²(n+2) Cs kept
        expected = {'Cs': n * n * (n + 2), 'Pb': n**3, halide: 3 * n * n * (n + 1) - n * n}
    assert counts(atoms[atoms.arrays['domain'] == 0]) == expected
    half = half_sphere(radius)
    assert counts(atoms[atoms.arrays['domain'] == 1]) == counts(half)
    assert validate(cube).ok and validate(half).ok


# ------------------------------------------------------------------------------------------------ the ladder


@pytest.mark.parametrize('rung', list(LADDER))
@pytest.mark.parametrize('kind', list(KINDS))
def test_every_rung_is_valid(rung, kind):
    for halide in HALIDES if 'halide' in KINDS[kind] else [None]:
        atoms = build_model(kind, rung, halide=halide)
        summary = validate(atoms)
        assert summary.ok and summary.neutral, (rung, kind, halide, summary.problems)


def test_ladder_sizes():
    tiny = build_model('heterostructure', 'tiny')
    assert len(tiny) <= 80  # CP2K on 2 cores
    mini_half = build_model('half-sphere', 'mini')
    pb = mini_half.positions[mini_half.numbers == 82]
    assert 15.0 <= 2 * np.linalg.norm(pb, axis=1).max() <= 20.0  # a 1.5–2 nm half-sphere
    assert build_model('cube', 'mini').info['n'] == 2
    paper = build_model('heterostructure', 'paper')
    assert counts(paper[paper.arrays['domain'] == 0]) == {'Cs': 175, 'Pb': 125, 'Br': 425}  # PbX2 contact
    assert counts(paper[paper.arrays['domain'] == 1])['Pb'] == 274


# --------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ('call', 'parameter'),
    [
        (lambda: perovskite_cube(2, 'F'), 'halide'),
        (lambda: perovskite_cube(0), 'n'),
        (lambda: perovskite_cube(-3), 'n'),
        (lambda: perovskite_cube(1.5), 'n'),
        (lambda: perovskite_cube(2, 'Br', lattice_constant=0.0), 'lattice_constant'),
        (lambda: perovskite_cube(2, 'Br', lattice_constant=-5.8), 'lattice_constant'),
        (lambda: perovskite_cube(2, 'Cl', distortion=True), 'distortion'),
        (lambda: chalcohalide_sphere(3.0), 'radius'),
        (lambda: chalcohalide_sphere(-1.0), 'radius'),
        (lambda: chalcohalide_sphere(10.0, centre='8d'), 'centre'),
        (lambda: half_sphere(5.0), 'radius'),
        (lambda: half_sphere(10.0, side=0), 'side'),
        (lambda: heterostructure(2, 'Br', 10.0, facet='111'), 'facet'),
        (lambda: heterostructure(2, 'Br', 10.0, strain='elastic'), 'strain'),
        (lambda: heterostructure(2, 'F', 10.0), 'halide'),
        (lambda: heterostructure(0, 'Br', 10.0), 'n'),
        (lambda: heterostructure(2, 'Br', 4.0), 'radius'),
        (lambda: heterostructure(2, 'Br', 10.0, lattice_constant=-1), 'lattice_constant'),
        (lambda: build_model('cube', 'huge'), 'preset'),
        (lambda: build_model('sphere', radius=10.0, halide='Br'), 'halide'),
    ],
)
def test_bad_input_names_the_parameter(call, parameter):
    with pytest.raises(BuilderInputError) as info:
        call()
    assert info.value.parameter == parameter
    message = str(info.value)
    assert message.startswith(parameter) or f'{parameter}=' in message or parameter in message
    assert '\n' not in message
    assert isinstance(info.value, ValueError)
