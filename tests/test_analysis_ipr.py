"""Löwdin weights, IPR and contributions: cross-checked against CP2K's own PDOS, physics on real runs and on a
constructed tight-binding ring, rotation invariance in degenerate sets, and the S^½ routes."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from aiida_nanohetero.analysis import (
    AOCountMismatchError,
    OverlapNotPositiveDefiniteError,
    OverlapNotSymmetricError,
    UnknownIPRMethodError,
    analyse_orbitals,
    apply_sqrt_overlap,
    atom_populations,
    atomic_weights,
    compare_with_pdos,
    find_pdos_files,
    ipr_from_weights,
    read_ldos_lists,
    read_mo_coefficients,
    read_overlap_csr,
    read_pdos,
)

DATA = pathlib.Path(__file__).parent / 'data' / 'cp2k'
CASES = {
    'cs4pbbr6': ('cube-orbitals-1_0.MOLog', 'cube-overlap-S_SPIN_1-1_0.csr'),
    'h2o': ('h2o-orbitals-1_0.MOLog', 'h2o-overlap_bin-S_SPIN_1-1_0.csr'),
    'h2o_ar': ('h2oar-orbitals-1_0.MOLog', 'h2oar-overlap_bin-S_SPIN_1-1_0.csr'),
}


def load(case: str):
    molog, csr = CASES[case]
    mos = read_mo_coefficients(DATA / case / molog)
    return mos, read_overlap_csr(DATA / case / csr, n_ao=mos.n_ao)


@pytest.fixture(scope='module', params=sorted(CASES))
def run(request):
    return (request.param, *load(request.param))


# ------------------------------------------------------------------------------------- independent cross-check


def test_lowdin_populations_reproduce_cp2k_pdos(run):
    """CP2K projects its PDOS by Löwdin (S^½ C) itself: per kind, our populations must match per orbital."""
    case, mos, overlap = run
    kinds, lists = find_pdos_files(DATA / case)
    for route in ('dense', 'chebyshev', 'shift-invert'):
        _, populations, _ = atomic_weights(overlap, mos.coefficients, mos.ao_atom, 'lowdin', route=route)
        deviations = compare_with_pdos(populations, mos.indices, mos.atom_elements, kinds, mos.energies)
        assert set(deviations) == set(mos.atom_elements)
        assert max(deviations.values()) < 1e-4, deviations
    # and the &LDOS lists of the input (arbitrary atom sets)
    inp = next((DATA / case).glob('*.inp')).read_text()
    for index, atoms in enumerate(read_ldos_lists(inp), start=1):
        pdos = lists[index]
        rows = mos.indices - pdos.indices[0]
        assert np.abs(populations[atoms].sum(axis=0) - pdos.total[rows]).max() < 1e-4


def test_pdos_cross_check_detects_a_wrong_projection():
    """The check can fail: plain (non-orthogonalised) C^2 populations do not reproduce CP2K's PDOS."""
    mos, _ = load('cs4pbbr6')
    kinds, _ = find_pdos_files(DATA / 'cs4pbbr6')
    naive = atom_populations(mos.coefficients, mos.ao_atom)
    naive = naive / naive.sum(axis=0)
    deviations = compare_with_pdos(naive, mos.indices, mos.atom_elements, kinds)
    assert max(deviations.values()) > 1e-2


# ------------------------------------------------------------------------------------------- physics, real runs


@pytest.mark.parametrize('method', ['paper', 'lowdin'])
def test_ipr_bounds_and_normalisation(run, method):
    _, mos, overlap = run
    result = analyse_orbitals(
        overlap, mos.coefficients, mos.ao_atom, mos.energies, mos.occupations, mos.atom_elements, method=method
    )
    n_atoms = mos.n_atoms
    for values in (result.ipr, result.ipr_raw):
        assert np.all(values >= 1 / n_atoms - 1e-12)
        assert np.all(values <= 1 + 1e-12)
    assert np.abs(result.populations.sum(axis=0) - 1).max() < 1e-9  # Löwdin weights of an orbital sum to 1
    assert np.all(result.populations >= 0)
    assert np.abs(result.element_contributions.sum(axis=0) - 1).max() < 1e-12


@pytest.mark.parametrize(('method', 'lowest'), [('paper', 0.9), ('lowdin', 0.98)])
def test_orbitals_on_one_atom_have_ipr_near_one(method, lowest):
    """H2O + a distant Ar atom: the Ar 3s and 3p orbitals sit on the Ar atom alone (>99 % of the Löwdin
    population). The signed sum of the paper's method partly cancels over the three components of a p orbital,
    so its small tail on the water weighs more: its IPR is lower for one 3p orbital (about 0.94)."""
    mos, overlap = load('h2o_ar')
    result = analyse_orbitals(
        overlap, mos.coefficients, mos.ao_atom, mos.energies, mos.occupations, mos.atom_elements, method=method
    )
    argon = result.element_contributions[result.elements.index('Ar')]
    on_argon = (argon > 0.99) & (result.occupations > 0)
    assert on_argon.sum() == 4  # 3s and 3p (x3), 8 valence electrons
    assert np.all(result.ipr[on_argon] > lowest)
    water = result.element_contributions[result.elements.index('Ar')] < 0.01
    assert np.all(result.ipr[water] < 0.95)


def test_cube_valence_edge_is_spread_over_the_octahedron():
    """Cs4PbBr6: the HOMO is Br 4p / Pb 6s antibonding, shared by the 6 Br: Löwdin IPR near 1/6, not 1."""
    mos, overlap = load('cs4pbbr6')
    result = analyse_orbitals(
        overlap, mos.coefficients, mos.ao_atom, mos.energies, mos.occupations, mos.atom_elements, method='lowdin'
    )
    homo = np.flatnonzero(result.occupations > 0)[-1]
    bromine = result.populations[mos.atom_elements == 'Br', homo]
    assert bromine.sum() > 0.6
    assert np.ptp(bromine) < 1e-3  # the six Br are equivalent
    assert 1 / 11 < result.ipr[homo] < 0.2


def test_band_edge_states_of_a_large_ring_are_far_below_the_threshold():
    """A constructed 300-site ring (two AOs per site, non-orthogonal): its band-edge Bloch states are delocalised
    (IPR ~ 1/N, far below 0.03), a state bound to one impurity site is localised (IPR near 1), whatever route."""
    n_sites = 300
    n = 2 * n_sites
    ao_atom = np.repeat(np.arange(n_sites), 2)
    overlap = np.eye(n)
    hamiltonian = np.zeros((n, n))
    for site in range(n_sites):
        a, b = 2 * site, 2 * site + 1
        overlap[a, b] = overlap[b, a] = 0.3
        hamiltonian[a, a], hamiltonian[b, b] = -1.0, 1.0
        nxt = 2 * ((site + 1) % n_sites)
        for i, j, s, h in ((a, nxt, 0.2, -0.5), (b, nxt + 1, 0.2, -0.4), (a, nxt + 1, 0.05, 0.1)):
            overlap[i, j] = overlap[j, i] = s
            hamiltonian[i, j] = hamiltonian[j, i] = h
    hamiltonian[0, 0] = -6.0  # impurity
    _, coefficients = scipy.linalg.eigh(hamiltonian, overlap)
    window = slice(0, 40)
    sparse_overlap = sp.csr_array(overlap)
    for method in ('paper', 'lowdin'):
        ipr = {}
        for route, options in (('dense', {}), ('chebyshev', {}), ('shift-invert', {'precision': 'double'})):
            weights, _, _ = atomic_weights(
                sparse_overlap, coefficients[:, window], ao_atom, method, route=route, **options
            )
            ipr[route] = ipr_from_weights(weights)
        assert np.abs(ipr['dense'] - ipr['chebyshev']).max() < 1e-8
        assert np.abs(ipr['dense'] - ipr['shift-invert']).max() < 1e-8
        assert ipr['dense'][0] > 0.5  # the impurity state, lowest in energy
        assert np.all(ipr['dense'][1:] < 0.03)
        assert np.all(ipr['dense'][1:] < 3.0 / n_sites)


# ----------------------------------------------------------------------------------------- degenerate orbitals


def rotate_within(coefficients: np.ndarray, members: np.ndarray, angle_seed: int) -> np.ndarray:
    rng = np.random.default_rng(angle_seed)
    q, _ = np.linalg.qr(rng.standard_normal((members.size, members.size)))
    rotated = coefficients.copy()
    rotated[:, members] = coefficients[:, members] @ q
    return rotated


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), method=st.sampled_from(['paper', 'lowdin', 'mulliken']))
def test_degenerate_sets_are_rotation_invariant(seed, method):
    mos, overlap = CUBE_DATA
    base = analyse_orbitals(
        overlap, mos.coefficients, mos.ao_atom, mos.energies, mos.occupations, mos.atom_elements, method=method
    )
    for set_id in np.unique(base.degenerate_set[base.degenerate]):
        members = np.flatnonzero(base.degenerate_set == set_id)
        rotated = rotate_within(mos.coefficients, members, seed)
        other = analyse_orbitals(
            overlap, rotated, mos.ao_atom, mos.energies, mos.occupations, mos.atom_elements, method=method
        )
        assert np.abs(other.ipr - base.ipr).max() < 1e-9
        assert np.abs(other.element_contributions - base.element_contributions).max() < 1e-9


CUBE_DATA = load('cs4pbbr6')


def test_cube_has_degenerate_sets_where_raw_paper_ipr_depends_on_rotation():
    """The reason for the invariant value: in the real run the signed-sum IPR differs inside a set."""
    mos, overlap = CUBE_DATA
    result = analyse_orbitals(overlap, mos.coefficients, mos.ao_atom, mos.energies, mos.occupations, mos.atom_elements)
    assert result.degenerate.sum() >= 10
    spread = [np.ptp(result.ipr_raw[result.degenerate_set == s]) for s in np.unique(result.degenerate_set)]
    assert max(spread) > 0.01
    for s in np.unique(result.degenerate_set):
        assert np.ptp(result.ipr[result.degenerate_set == s]) == 0
    assert np.array_equal(result.ipr[~result.degenerate], result.ipr_raw[~result.degenerate])


# ---------------------------------------------------------------------------------------------- S^½ routes


@pytest.mark.parametrize('case', sorted(CASES))
def test_chebyshev_matches_dense_sqrtm(case):
    mos, overlap = load(case)
    reference = scipy.linalg.sqrtm(overlap.toarray()).real @ mos.coefficients
    for product in ('sparse', 'dense'):
        result, info = apply_sqrt_overlap(overlap, mos.coefficients, route='chebyshev', tol=1e-10, product=product)
        assert np.abs(result - reference).max() / np.abs(reference).max() < 1e-8
        assert info.degree > 10 and info.norm_error < 1e-8
    dense, info = apply_sqrt_overlap(overlap, mos.coefficients, route='dense')
    assert np.abs(dense - reference).max() / np.abs(reference).max() < 1e-10


@pytest.mark.parametrize('case', sorted(CASES))
def test_shift_invert_matches_dense_sqrtm(case):
    """The shift-and-invert Lanczos route: float64 to 1e-10, float32 to its rounding floor (~1e-6), on real S."""
    mos, overlap = load(case)
    reference = scipy.linalg.sqrtm(overlap.toarray()).real @ mos.coefficients
    scale = np.linalg.norm(reference, axis=0)
    for precision, limit in (('double', 1e-10), ('single', 2e-6)):
        result, info = apply_sqrt_overlap(overlap, mos.coefficients, route='shift-invert', precision=precision)
        assert np.max(np.linalg.norm(result - reference, axis=0) / scale) < limit
        assert info.route == 'shift-invert' and info.precision == precision and info.shift > 0
        assert 5 < info.degree < 80 and info.norm_error < limit and info.error_estimate < limit
        eigenvalues = scipy.linalg.eigvalsh(overlap.toarray())
        assert info.lambda_min == pytest.approx(eigenvalues[0], rel=1e-3)  # the Ritz values find the spectrum
        assert info.lambda_max == pytest.approx(eigenvalues[-1], rel=1e-3)


def test_float32_ipr_agrees_with_float64():
    """The float32 route against float64 on the real Cs4PbBr6 window: the (degenerate-set invariant) paper IPR,
    the lowdin IPR and the contributions to 1e-6; the raw per-orbital paper IPR, whose signed sums cancel, to
    5e-6 (measured 2.7e-6; the authors' float32 sqrtm route is off by ~1e-5 on the benchmark's windows)."""
    mos, overlap = CUBE_DATA
    args = (overlap, mos.coefficients, mos.ao_atom, mos.energies, mos.occupations, mos.atom_elements)
    domains = ['octahedron'] * 7 + ['cs'] * 4
    single, double = (
        analyse_orbitals(*args, route='shift-invert', precision=precision, atom_domains=domains)
        for precision in ('single', 'double')
    )
    assert np.max(np.abs(single.ipr / double.ipr - 1)) < 1e-6
    assert np.max(np.abs(single.ipr_raw / double.ipr_raw - 1)) < 5e-6
    lowdin = [ipr_from_weights(r.populations) for r in (single, double)]
    assert np.max(np.abs(lowdin[0] / lowdin[1] - 1)) < 1e-6
    assert np.abs(single.element_contributions - double.element_contributions).max() < 1e-6
    assert np.abs(single.domain_contributions - double.domain_contributions).max() < 1e-6
    assert single.sqrt_info['precision'] == 'single' and double.sqrt_info['precision'] == 'double'


def test_shift_invert_detects_an_indefinite_overlap_that_the_shift_hides():
    """S + σI can be positive definite while S is not: the Ritz values then reveal λ_min < 0."""
    mos, overlap = load('cs4pbbr6')
    smallest = scipy.linalg.eigvalsh(overlap.toarray())[0]
    indefinite = overlap - (smallest + 0.01) * sp.eye(overlap.shape[0])  # λ_min = -0.01, far above -σ
    with pytest.raises(OverlapNotPositiveDefiniteError):
        apply_sqrt_overlap(indefinite, mos.coefficients, route='shift-invert', shift=0.2)


def test_shift_invert_exact_cases_and_zero_columns():
    """Eigenvectors of S (Krylov space of one vector: the process stops at once and is exact) and zero columns."""
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    eigenvalues = np.linspace(0.1, 3.0, 30)
    overlap = (q * eigenvalues) @ q.T
    block = np.column_stack([q[:, 0], 2 * q[:, 7], np.zeros(30)])
    result, info = apply_sqrt_overlap(overlap, block, route='shift-invert', precision='double')
    expected = np.column_stack([np.sqrt(eigenvalues[0]) * q[:, 0], 2 * np.sqrt(eigenvalues[7]) * q[:, 7], np.zeros(30)])
    assert np.abs(result - expected).max() < 1e-12
    assert info.degree == 1 and np.all(np.isfinite(result))
    vector, _ = apply_sqrt_overlap(overlap, q[:, 3], route='shift-invert', precision='double')  # 1-D block
    assert np.abs(vector - np.sqrt(eigenvalues[3]) * q[:, 3]).max() < 1e-12


def test_auto_route_uses_shift_invert_above_3000_aos():
    """A well-conditioned sparse S of 3,200 AOs: ``auto`` takes the shift-invert route; it agrees with Chebyshev."""
    n = 3200
    overlap = sp.diags([0.2, 1.0, 0.2], [-1, 0, 1], shape=(n, n), format='csr')  # spectrum in [0.6, 1.4]
    block = np.random.default_rng(4).standard_normal((n, 6))
    result, info = apply_sqrt_overlap(overlap, block)
    reference, _ = apply_sqrt_overlap(overlap, block, route='chebyshev', tol=1e-12)
    assert info.route == 'shift-invert' and info.precision == 'single'
    assert np.max(np.linalg.norm(result - reference, axis=0) / np.linalg.norm(reference, axis=0)) < 2e-6


def test_bad_overlap_and_method_are_named_errors():
    mos, overlap = load('h2o')
    with pytest.raises(UnknownIPRMethodError):
        atomic_weights(overlap, mos.coefficients, mos.ao_atom, 'participation')
    with pytest.raises(UnknownIPRMethodError):
        apply_sqrt_overlap(overlap, mos.coefficients, route='magic')
    indefinite = overlap - 0.5 * sp.eye(overlap.shape[0])  # smallest eigenvalue of S is about 0.05
    for route in ('dense', 'chebyshev', 'shift-invert'):
        with pytest.raises(OverlapNotPositiveDefiniteError):
            apply_sqrt_overlap(indefinite, mos.coefficients, route=route)
    with pytest.raises(UnknownIPRMethodError):
        apply_sqrt_overlap(overlap, mos.coefficients, route='shift-invert', precision='half')
    asymmetric = overlap.toarray()
    asymmetric[0, 1] += 0.1
    with pytest.raises(OverlapNotSymmetricError):
        apply_sqrt_overlap(asymmetric, mos.coefficients)
    with pytest.raises(AOCountMismatchError):
        apply_sqrt_overlap(overlap, mos.coefficients[:-1])
    with pytest.raises(AOCountMismatchError):
        analyse_orbitals(overlap, mos.coefficients, mos.ao_atom, mos.energies[:-1], mos.occupations, mos.atom_elements)


def test_domain_contributions():
    mos, overlap = CUBE_DATA
    domains = ['octahedron'] * 7 + ['cs'] * 4
    result = analyse_orbitals(
        overlap, mos.coefficients, mos.ao_atom, mos.energies, mos.occupations, mos.atom_elements, atom_domains=domains
    )
    assert result.domains == ['cs', 'octahedron']
    cs = result.domain_contributions[0]
    assert np.allclose(cs, result.element_contributions[result.elements.index('Cs')])
    lists = read_pdos(DATA / 'cs4pbbr6' / 'cube-pdos-list2-1.pdos')  # LDOS over the 4 Cs atoms
    assert np.abs(cs[~result.degenerate] - lists.total[mos.indices - 1][~result.degenerate]).max() < 1e-4


def test_blocked_cholesky_of_a_large_overlap(monkeypatch):
    """Above 2 GiB the shifted overlap is factorised by blocks of columns (OpenBLAS's potrf crashes there):
    forced on a small matrix, the blocked factorisation gives the same S^½ C."""
    import aiida_nanohetero.analysis.ipr as ipr

    mos, overlap = load('cs4pbbr6')
    whole, _ = apply_sqrt_overlap(overlap, mos.coefficients, route='shift-invert', precision='double')
    monkeypatch.setattr(ipr, '_POTRF_MAX_BYTES', 1000)
    monkeypatch.setattr(ipr, '_CHOLESKY_BLOCK', 40)
    blocked, _ = apply_sqrt_overlap(overlap, mos.coefficients, route='shift-invert', precision='double')
    assert np.abs(blocked - whole).max() < 1e-12
    with pytest.raises(OverlapNotPositiveDefiniteError):
        apply_sqrt_overlap(overlap - 0.5 * sp.eye(overlap.shape[0]), mos.coefficients, route='shift-invert')
