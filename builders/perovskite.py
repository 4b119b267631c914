"""CsPbX3 nanocubes made of n × n × n corner-sharing PbX6 octahedra, CsX-terminated and charge balanced.

Index coordinates
-----------------
Sites are first generated on integer/half-integer *index* coordinates in units of the Pb–Pb spacing, Pb at
``(i, j, k)`` with ``i, j, k = 0 … n−1``:

* Pb ``n³``: every ``(i, j, k)``;
* X ``3n²(n+1)``: every corner-sharing and apical halide, ``(i ± ½, j, k)`` and permutations, so that all six
  faces are CsX-terminated;
* Cs sites ``(n+1)³``: ``(i − ½, j − ½, k − ½)`` with ``i, j, k = 0 … n``, of which ``n²(n+3)`` are kept, i.e.
  ``3n + 1`` Cs vacancies make the cube neutral (Cs⁺ Pb²⁺ X⁻: ``Cs = X − 2 Pb``).

The "trap-free" vacancy recipe of the published models
------------------------------------------------------
The vacancies are put where a missing Cs⁺ costs least: first the 8 corner Cs (for n = 1, 2 only 3n + 1 of
them), then ``3n − 7`` edge Cs, spread over the 12 edges as evenly as possible (one per edge for n ≤ 6), at
evenly spaced positions along each edge (the midpoint, or one of the two sites nearest it). Among all such
arrangements :func:`cs_vacancy_sites` picks, deterministically,

1. the one with the highest point symmetry (the order of its stabiliser in the cube group Oh), then
2. the lowest electrostatic repulsion between the vacancies (sum of 1/r over vacancy pairs, corners included),
3. ties (arrangements equivalent under Oh) broken by taking the lexicographically largest sorted list of sites.

For n = 1, 2, 3, 5 this reproduces the vacancy sets of the published models up to the cube's symmetry
(n = 1: a tetrahedral set of corners; n = 2: 7 of 8 corners; n = 3: corners + an inversion pair of edge sites;
n = 5: corners + 8 edge sites, y-edges intact, C2 about z); plain Coulomb minimisation alone does not give the
published n = 5 pattern, the symmetry criterion does.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
from ase import Atoms

from aiida_nanohetero.builders._common import (
    PEROVSKITE_DOMAIN,
    BuilderInputError,
    check_halide,
    check_int,
    check_positive,
    label_atoms,
)
from aiida_nanohetero.builders._data import PEROVSKITE_PNMA, PSEUDOCUBIC_A
from aiida_nanohetero.builders.validation import validate

__all__ = (
    'MAX_CUBE_N',
    'contact_cube_index_sites',
    'contact_layer_index_sites',
    'cs_vacancy_sites',
    'cube_composition',
    'cube_index_sites',
    'perovskite_cube',
    'perovskite_lattice',
    'perovskite_sites',
)

#: Largest cube edge (in octahedra) the builder accepts (27 000 Pb; keeps memory and time bounded).
MAX_CUBE_N = 30

#: The 48 operations of the cube group Oh as signed permutation matrices (acting on centred coordinates).
_OH = np.array(
    [
        np.diag(signs) @ np.eye(3, dtype=int)[list(perm)]
        for perm in itertools.permutations(range(3))
        for signs in itertools.product((1, -1), repeat=3)
    ],
    dtype=int,
)


def cube_composition(n: int) -> dict[str, int]:
    """Composition of the charge-balanced n-cube: Cs n²(n+3), Pb n³, X 3n²(n+1)."""
    return {'Cs': n * n * (n + 3), 'Pb': n**3, 'X': 3 * n * n * (n + 1)}


def _edge_positions(n: int, k: int) -> list[tuple[int, ...]]:
    """The k evenly spaced interior sites of an edge with Cs sites 0 … n (1 or 2 mirror-image choices)."""
    if k == 0:
        return [()]
    ideal = n * (np.arange(k) + 0.5) / k
    half = np.isclose(ideal - np.floor(ideal), 0.5)
    low = np.where(half, np.floor(ideal), np.rint(ideal)).astype(int)
    high = np.where(half, np.ceil(ideal), np.rint(ideal)).astype(int)
    return [tuple(low), tuple(high)] if half.any() else [tuple(low)]


def _edges(n: int) -> list[tuple[int, tuple[int, int], tuple[int, int]]]:
    """The 12 cube edges as (axis along the edge, the other two axes, their fixed values in {0, n})."""
    edges = []
    for axis in range(3):
        others = tuple(i for i in range(3) if i != axis)
        for a, b in itertools.product((0, n), repeat=2):
            edges.append((axis, others, (a, b)))
    return edges


def _edge_site(n: int, edge, t: int) -> tuple[int, int, int]:
    axis, others, fixed = edge
    site = [0, 0, 0]
    site[axis] = t
    site[others[0]], site[others[1]] = fixed
    return tuple(site)


def _stabiliser_order(sites: np.ndarray, n: int) -> int:
    """Number of Oh operations (about the cube centre) that map a set of Cs index sites onto itself."""
    doubled = 2 * np.asarray(sites, int) - n
    reference = {tuple(p) for p in doubled}
    return sum({tuple(p) for p in doubled @ op.T} == reference for op in _OH)


def _best(energy: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Indices with the highest symmetry and, among those, the lowest repulsion."""
    best = np.flatnonzero(order == order.max())
    lowest = energy[best].min()
    return best[energy[best] <= lowest + 1e-9 * max(1.0, abs(lowest))]


def _lexicographic_max(candidates: list[np.ndarray]) -> tuple[tuple[int, int, int], ...]:
    """Deterministic tie-break among equivalent arrangements: the largest sorted list of sites."""
    return max(tuple(sorted(map(tuple, np.asarray(c, int).tolist()))) for c in candidates)


@lru_cache(maxsize=64)
def cs_vacancy_sites(n: int) -> tuple[tuple[int, int, int], ...]:
    """The 3n + 1 removed Cs sites ``(i, j, k)``, ``i, j, k ∈ 0 … n``, of the charge-balanced n-cube.

    See the module docstring for the rule. The search is exhaustive over the allowed arrangements (at most
    126 720 of them, e.g. for n = 5, 13, 21, 29) and vectorised; results are cached per n.
    """
    n = check_int(n, 'n', 1, MAX_CUBE_N)
    m = 3 * n + 1
    corners = np.array(list(itertools.product((0, n), repeat=3)), dtype=int)

    if m <= 8:  # n = 1, 2: only corners are removed
        combos = [corners[list(c)] for c in itertools.combinations(range(8), m)]
        energy = np.array([_coulomb(c) for c in combos])
        order = np.array([_stabiliser_order(c, n) for c in combos])
        return _lexicographic_max([combos[i] for i in _best(energy, order)])

    q, r = divmod(m - 8, 12)  # every edge gets q vacancies, r of them one more
    edges = _edges(n)
    options = [(k, ts) for k in sorted({q, q + 1}) for ts in _edge_positions(n, k)]
    n_opt = len(options)
    # Site coordinates of option o on edge e, and the pieces of the vacancy-vacancy repulsion.
    sites = [[np.array([_edge_site(n, e, t) for t in ts], float).reshape(-1, 3) for _, ts in options] for e in edges]
    self_energy = np.zeros((12, n_opt))
    pair_energy = np.zeros((12 * n_opt, 12 * n_opt))
    for e, o in itertools.product(range(12), range(n_opt)):
        s = sites[e][o]
        self_energy[e, o] = _coulomb(s) + _coulomb_between(s, corners)
        for f, p in itertools.product(range(e + 1, 12), range(n_opt)):
            value = _coulomb_between(s, sites[f][p])
            pair_energy[e * n_opt + o, f * n_opt + p] = value
            pair_energy[f * n_opt + p, e * n_opt + o] = value

    # Enumerate: choose the r edges with q + 1 vacancies, then the mirror choice on every edge (mixed radix).
    by_k = {k: np.array([o for o, (kk, _) in enumerate(options) if kk == k]) for k in {q, q + 1}}
    blocks = []
    for extra in itertools.combinations(range(12), r):
        lists = [by_k[q + 1] if e in extra else by_k[q] for e in range(12)]
        sizes = np.array([len(x) for x in lists])
        strides = np.concatenate([[1], np.cumprod(sizes)[:-1]])
        counter = np.arange(int(np.prod(sizes)))
        blocks.append(np.stack([x[(counter // st) % sz] for x, st, sz in zip(lists, strides, sizes, strict=True)]))
    config = np.ascontiguousarray(np.concatenate(blocks, axis=1))  # (12, N): option index per edge
    # Stabiliser order: an operation maps (edge e, option o) to (edge π(e), option μ(e, o)), or to no option (-1).
    edge_index = {frozenset(_edge_ends(n, edge)): i for i, edge in enumerate(edges)}
    doubled = [[(2 * s - n).astype(int) for s in per_edge] for per_edge in sites]
    lookup = {(e, frozenset(map(tuple, doubled[e][o].tolist()))): o for e in range(12) for o in range(n_opt)}
    n_config = config.shape[1]
    order = np.zeros(n_config, dtype=int)
    for op in _OH:
        alive = np.arange(n_config)  # configurations invariant so far; most fail on the first edges
        for e, edge in enumerate(edges):
            image = edge_index[frozenset(tuple(op @ np.array(p)) for p in _edge_ends(n, edge))]
            mu = np.array(
                [lookup.get((image, frozenset(map(tuple, (doubled[e][o] @ op.T).tolist()))), -1) for o in range(n_opt)]
            )
            alive = alive[config[image, alive] == mu[config[e, alive]]]
        order[alive] += 1

    # The repulsion is only needed among the most symmetric arrangements.
    top = np.flatnonzero(order == order.max())
    flat = config[:, top] + n_opt * np.arange(12)[:, None]
    energy = self_energy[np.arange(12)[:, None], config[:, top]].sum(axis=0)
    for e, f in itertools.combinations(range(12), 2):
        energy += pair_energy[flat[e], flat[f]]
    best = top[_best(energy, order[top])]
    candidates = [
        np.concatenate([corners, *[sites[e][o].astype(int) for e, o in enumerate(config[:, i])]]) for i in best
    ]
    return _lexicographic_max(candidates)


def _edge_ends(n: int, edge) -> set[tuple[int, int, int]]:
    """The two corner sites of an edge, in doubled centred coordinates ``2u − n``."""
    return {tuple((2 * np.array(_edge_site(n, edge, t)) - n).tolist()) for t in (0, n)}


def _coulomb(points: np.ndarray) -> float:
    points = np.asarray(points, float)
    if len(points) < 2:
        return 0.0
    d = np.linalg.norm(points[:, None] - points[None], axis=2)
    iu = np.triu_indices(len(points), 1)
    return float((1.0 / d[iu]).sum())


def _coulomb_between(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 or len(b) == 0:
        return 0.0
    return float((1.0 / np.linalg.norm(np.asarray(a, float)[:, None] - np.asarray(b, float)[None], axis=2)).sum())


def cube_index_sites(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Species codes (0 Cs, 1 Pb, 2 X) and *uncentred* index coordinates of the charge-balanced n-cube.

    Pb at integer ``(i, j, k)``, ``0 ≤ i, j, k < n``; X at the half-integer bond midpoints (also outside the
    outermost Pb, so the cube is CsX-terminated); Cs at ``(i − ½, j − ½, k − ½)``, ``0 ≤ i, j, k ≤ n``, less the
    :func:`cs_vacancy_sites`. Sorted by species then coordinates.
    """
    n = check_int(n, 'n', 1, MAX_CUBE_N)
    grid = np.arange(n)
    pb = np.array(list(itertools.product(grid, repeat=3)), float)
    halves = np.arange(n + 1) - 0.5
    x = []
    for axis in range(3):
        for h, j, k in itertools.product(halves, grid, grid):
            site = [j, k]
            site.insert(axis, h)
            x.append(site)
    x = np.array(sorted(map(tuple, x)), float)
    vacant = set(cs_vacancy_sites(n))
    cs = np.array([s for s in itertools.product(range(n + 1), repeat=3) if s not in vacant], float) - 0.5
    codes = np.concatenate([np.zeros(len(cs), int), np.ones(len(pb), int), np.full(len(x), 2)])
    return codes, np.concatenate([cs, pb, x])


def contact_cube_index_sites(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Species codes and index coordinates of the n-cube whose +y facet has lost its CsX layer, before any Cs vacancy.

    The CsX-terminated cube of :func:`cube_index_sites` less its outermost CsX plane on the +y side (j = n − ½):
    the (n+1)² Cs sites of that plane and the n² apical X above the top Pb plane. The top facet is then
    PbX2-terminated (Pb and its equatorial X), the termination the seed's heterostructure has at its interface.
    All remaining n(n+1)² Cs sites are returned; the cube needs n²(n+2) of them (n vacancies) to be neutral,
    chosen by the heterostructure builder once the cube is placed (``_contact_cs_vacancies``).
    """
    n = check_int(n, 'n', 1, MAX_CUBE_N)
    codes, index = cube_index_sites(n)
    top = np.isclose(index[:, 1], n - 0.5)
    cs_sites = np.array(list(itertools.product(range(n + 1), range(n), range(n + 1))), float) - 0.5
    keep = (codes == 2) & ~top | (codes == 1)
    codes = np.concatenate([np.zeros(len(cs_sites), int), codes[keep]])
    return codes, np.concatenate([cs_sites, index[keep]])


def contact_layer_index_sites(n: int) -> np.ndarray:
    """Index coordinates of the (n+1)² Cs sites of the removed contact CsX plane (j = n − ½)."""
    n = check_int(n, 'n', 1, MAX_CUBE_N)
    return np.array(list(itertools.product(range(n + 1), (n,), range(n + 1))), float) - 0.5


def perovskite_lattice(halide: str, lattice_constant: float | None = None, distortion: bool = False):
    """Pseudo-cubic vectors (rows e1, e2, e3, in Å) in the orthorhombic frame and the Pnma crystal, if any.

    The orthorhombic frame has a_o ∥ x, b_o ∥ y, c_o ∥ z; the pseudo-cubic axes are e1 = (a_o/2, 0, c_o/2),
    e2 = (0, b_o/2, 0), e3 = (−a_o/2, 0, c_o/2). Without the distortion the cell is the ideal cubic one,
    a_o = c_o = √2 a, b_o = 2a (a = ``lattice_constant``, default the experimental a_pc of the halide). With it
    (X = Br, I only) the Pnma cell of the source is used as published or, if ``lattice_constant`` is given, scaled
    isotropically so that its pseudo-cubic constant (V/4)^(1/3) is ``lattice_constant``.
    """
    halide = check_halide(halide)
    if lattice_constant is not None:
        lattice_constant = check_positive(lattice_constant, 'lattice_constant', maximum=20.0)
    if distortion:
        if halide not in PEROVSKITE_PNMA:
            raise BuilderInputError(
                'distortion',
                f'distortion=True is not available for {halide}: CsPb{halide}3 is cubic; the Pnma distortion '
                'exists for halide Br and I only.',
            )
        crystal = PEROVSKITE_PNMA[halide]
        scale = 1.0 if lattice_constant is None else lattice_constant / (crystal.volume / 4) ** (1 / 3)
        a, b, c = (scale * x for x in crystal.cell)
    else:
        if lattice_constant is None:
            lattice_constant = PSEUDOCUBIC_A[halide]
        crystal, scale = None, 1.0
        a = c = np.sqrt(2) * lattice_constant
        b = 2 * lattice_constant
    vectors = np.array([[a / 2, 0, c / 2], [0, b / 2, 0], [-a / 2, 0, c / 2]])
    return vectors, (crystal, scale, np.array([a, b, c]))


def perovskite_sites(
    n: int,
    halide: str = 'Br',
    lattice_constant: float | None = None,
    distortion: bool = False,
    operation: np.ndarray | None = None,
    sites: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[list[str], np.ndarray]:
    """Symbols and positions (Å) of the n-cube in the *orthorhombic* frame, centred on its Pb sublattice.

    ``operation`` (a 3 × 3 integer matrix of the cube group) re-orients the vacancy pattern about the cube centre
    before the sites are mapped on the lattice: the heterostructure builder uses it to choose which facet faces the
    chalcohalide while b_o stays along the interface normal. ``sites`` (codes and index coordinates, e.g.
    :func:`contact_cube_index_sites`) replaces the charge-balanced cube's :func:`cube_index_sites`.
    """
    halide = check_halide(halide)
    n = check_int(n, 'n', 1, MAX_CUBE_N)
    vectors, (crystal, scale, cell) = perovskite_lattice(halide, lattice_constant, distortion)
    codes, index = cube_index_sites(n) if sites is None else sites
    centre = (n - 1) / 2
    if operation is not None:
        index = (index - centre) @ np.asarray(operation, float).T + centre
    positions = index @ vectors
    symbols = np.array(['Cs', 'Pb', halide])[codes]
    if crystal is not None:
        positions = positions + _pnma_displacements(crystal, scale, cell, symbols, positions, halide)
    positions -= centre * vectors.sum(axis=0)
    return list(symbols), positions


def _pnma_displacements(crystal, scale, cell, symbols, ideal, halide) -> np.ndarray:
    """Move every ideal pseudo-cubic site onto the nearest site of the same element in the Pnma crystal."""
    unit = crystal.unit_cell()
    frac_atoms = unit.get_scaled_positions()
    elements = np.array(unit.get_chemical_symbols())
    frac_ideal = ideal / cell
    shift = np.zeros_like(ideal)
    for element in set(symbols):
        mine = np.flatnonzero(np.asarray(symbols) == element)
        theirs = frac_atoms[elements == (element if element in ('Cs', 'Pb') else halide)]
        delta = theirs[None, :, :] - frac_ideal[mine, None, :]
        delta -= np.rint(delta)
        length = np.linalg.norm(delta * cell, axis=2)
        nearest = length.argmin(axis=1)
        shift[mine] = delta[np.arange(len(mine)), nearest] * cell
    if np.linalg.norm(shift, axis=1).max() > 1.2:  # a wrong origin would show up here
        raise RuntimeError(f'Pnma {crystal.name}: a pseudo-cubic site is more than 1.2 Å from the crystal')
    return shift


#: Rotation about y by +45°: maps the orthorhombic frame onto the pseudo-cubic one (e1 → x, e3 → z).
_ORTHO_TO_CUBE = np.array(
    [[np.sqrt(0.5), 0.0, np.sqrt(0.5)], [0.0, 1.0, 0.0], [-np.sqrt(0.5), 0.0, np.sqrt(0.5)]],
)


def perovskite_cube(
    n: int,
    halide: str = 'Br',
    lattice_constant: float | None = None,
    distortion: bool = False,
) -> Atoms:
    """The charge-balanced CsPbX3 cube of n × n × n corner-sharing PbX6 octahedra (Cs n²(n+3) Pb n³ X 3n²(n+1)).

    :param n: octahedra along each edge, n ≥ 1 (n = 5 is the seed's Cs200Pb125X450 "3.2 nm" cube).
    :param halide: X, one of ``Cl``, ``Br``, ``I``.
    :param lattice_constant: pseudo-cubic lattice constant in Å; default the experimental one of the halide
        (5.600, 5.83, 6.19 Å; with the distortion, the published Pnma cell itself).
    :param distortion: use the orthorhombic Pnma octahedral tilts of CsPbBr3 / γ-CsPbI3 (b_o along y);
        not available for Cl (cubic).
    :return: ``ase.Atoms`` centred on the Pb sublattice (the origin), pseudo-cubic axes along x, y, z, zero cell,
        no periodicity; ``arrays['domain']`` all perovskite (0), ``arrays['interface']`` all False.
    """
    halide = check_halide(halide)
    n = check_int(n, 'n', 1, MAX_CUBE_N)
    distortion = bool(distortion)
    vectors, _ = perovskite_lattice(halide, lattice_constant, distortion)  # validates the lattice parameters
    lattice_constant = float(abs(np.linalg.det(vectors)) ** (1 / 3))  # the pseudo-cubic a actually used
    if distortion:
        symbols, positions = perovskite_sites(n, halide, lattice_constant, True)  # same cell: a_pc = (V/4)^(1/3)
        positions = positions @ _ORTHO_TO_CUBE.T
    else:  # exact ideal positions: index coordinates times a
        codes, index = cube_index_sites(n)
        symbols = list(np.array(['Cs', 'Pb', halide])[codes])
        positions = (index - (n - 1) / 2) * lattice_constant
    atoms = Atoms(symbols=symbols, positions=positions, pbc=False)
    atoms.info.update(
        builder='perovskite_cube',
        n=n,
        halide=halide,
        lattice_constant=lattice_constant,
        distortion=distortion,
    )
    label_atoms(atoms, PEROVSKITE_DOMAIN)
    validate(atoms).raise_if_invalid()
    return atoms
