"""CsPbX3 cube – Pb4S3Br2 half-sphere heterostructures (the seed's epitaxial model).

Geometry (frame of the chalcohalide: a ∥ x, b ∥ y, c ∥ z; origin at the sphere centre)
-------------------------------------------------------------------------------------
* The Pb4S3Br2 half-sphere (``side=+1``, y ≥ 0, the published half) keeps its bulk cell; its flat (010) face is the
  plane y = 0 and its outermost Pb sheet (Pb3, the puckered double layer of the crystal cut in half) lies 0.87 Å
  above it. That sheet is a
  centred rectangular Pb net, two Pb per a × c mesh, i.e. the same Pb density as a perovskite (100) plane rotated by
  45°: it continues the perovskite Pb sublattice (the removed upper half of the double layer sits where the
  perovskite's Cs are, the "Pb²⁺/Cs⁺ cationic subnetwork" continuity of Toso et al.).
* The CsPbX3 cube is put below (y < 0) with b_o ∥ [010] of Pb4S3Br2 (the interface normal) and its pseudo-cubic
  ⟨110⟩ along the chalcohalide's [100] and [001] (a_o ∥ a, c_o ∥ c). Its top Pb plane is one perovskite Pb–Pb
  spacing below the chalcohalide's Pb sheet, so the perovskite's terminal (apical) halides bridge the two Pb
  sublattices at the bulk Pb–X distance and the terminal Cs take the place of the removed Pb3 sheet.
* Lateral registry: the perovskite's top Pb plane is shifted (iterative closest point, starting centred on the
  half-sphere's axis) to sit on the Pb sheet.
* Strain (``strain``): ``'perovskite'`` (default) makes the interface coherent by scaling the perovskite in-plane
  (x, z) to the Pb4S3Br2 a and c, out-of-plane spacing unchanged; ``'shared'`` meets half-way (geometric mean) and
  also strains the half-sphere in-plane; ``'none'`` keeps both bulk cells (the misfit then grows towards the edges of
  the interface).
* Contact (``contact``): ``'PbX2'`` (default), the interface of the seed's published relaxed heterostructure: the
  cube's contact facet has lost its outermost CsX plane (its (n+1)² Cs sites and the n² apical X above the top Pb
  plane), so the facet is PbX2-terminated and the chalcohalide's face takes the place of that plane: its Pb sheet
  registered laterally on the removed Cs sites and brought down from their height (half a Pb–Pb spacing above
  the top Pb plane) until the closest pair across the interface reaches the validation's clash limit
  (+ 0.05 Å): the closest stacking of the ideal sites, which the relaxation then bonds. The cube keeps n²(n+2) Cs: the
  n Cs vacancies that make it neutral are taken one at a time from the Cs sites on the remaining cube's edges
  (corners included), each time at the site of highest electrostatic potential of the cube's formal charges (the
  removal that lowers its Coulomb energy most), ties (equal to 10⁻⁶ e/Å) going to the largest x, then y, then z.
  For n = 5 this removes the four corners of the opposite face and one site next to the middle of one of its
  edges, exactly the published model's Cs175Pb125X425 perovskite domain (``docs/builders.md``). ``'CsX'``: the
  free "trap-free" cube (:func:`~aiida_nanohetero.builders.perovskite.cs_vacancy_sites`) with its CsX-terminated
  facet under the half-sphere, the chalcohalide's Pb sheet one Pb–Pb spacing above the top Pb plane and registered
  on the perovskite's Pb columns, and the facet's Cs layer between the two domains.
* Both parts are neutral by construction, so the heterostructure is. Anion exchange only changes X of the perovskite:
  the chalcohalide stays Pb4S3Br2 for every halide.
* Labels: ``arrays['domain']`` 0 = perovskite, 1 = chalcohalide; ``arrays['interface']`` is True for atoms bonded
  across the interface: a counter-ion of the other domain closer than 1.3 × the sum of the covalent radii
  (see :data:`~aiida_nanohetero.builders.validation.BOND_FACTOR`) for a CsX contact, 1.6 ×
  (:data:`~aiida_nanohetero.builders.validation.ISOLATION_FACTOR`, the validation's neighbour range) for a PbX2
  contact, whose ideal stacking leaves the face anions 3.5 Å from the top Pb (the relaxation bonds them: 3.13 Å on
  average in the published model) and would otherwise have an empty interface layer for X = Cl.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

from aiida_nanohetero.builders._common import (
    CHALCOHALIDE_DOMAIN,
    PEROVSKITE_DOMAIN,
    BuilderInputError,
    check_halide,
    check_int,
    label_atoms,
)
from aiida_nanohetero.builders._data import CHALCOHALIDE, FORMAL_CHARGES
from aiida_nanohetero.builders.chalcohalide import half_sphere
from aiida_nanohetero.builders.perovskite import (
    MAX_CUBE_N,
    contact_cube_index_sites,
    contact_layer_index_sites,
    perovskite_lattice,
    perovskite_sites,
)
from aiida_nanohetero.builders.validation import BOND_FACTOR, ISOLATION_FACTOR, bonded_pairs, validate

__all__ = ('CONTACTS', 'FACETS', 'STRAIN_MODES', 'heterostructure', 'in_plane_mismatch')

#: Cube facets (Miller indices in the cube's own frame) and the proper rotation of the cube group that turns each
#: one up (towards the half-sphere, normal +y).
FACETS = {
    '010': np.eye(3, dtype=int),
    '0-10': np.diag([1, -1, -1]),
    '100': np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]),
    '-100': np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]]),
    '001': np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]),
    '00-1': np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]),
}

STRAIN_MODES = ('perovskite', 'shared', 'none')

#: Terminations of the cube's contact facet: ``PbX2`` (its CsX plane removed, as in the seed's published
#: heterostructure; the default) and ``CsX`` (the free cube's CsX-terminated facet, a Cs layer at the interface).
CONTACTS = ('PbX2', 'CsX')


def _facet(facet) -> str:
    key = str(facet).strip().strip('(){}[]').replace(' ', '').replace(',', '')
    if key not in FACETS:
        raise BuilderInputError(
            'facet',
            f'facet={facet!r} is not supported: choose one of the six {{100}} cube facets '
            f'{", ".join(FACETS)} (the cube face put on the half-sphere).',
        )
    return key


def in_plane_mismatch(
    halide: str = 'Br', lattice_constant: float | None = None, distortion: bool = False
) -> dict[str, float]:
    """In-plane lattice mismatch (d_perovskite − d_Pb4S3Br2) / d_Pb4S3Br2 along Pb4S3Br2 a and c.

    The perovskite periods along a and c are a_o and c_o of its Pnma cell (√2 a_pc for the ideal cubic one).
    Returns the periods (Å) and the mismatches (fractions).
    """
    _, (_, _, cell) = perovskite_lattice(halide, lattice_constant, distortion)
    a_ch, _, c_ch = CHALCOHALIDE.cell
    return {
        'perovskite_a': float(cell[0]),
        'perovskite_c': float(cell[2]),
        'chalcohalide_a': a_ch,
        'chalcohalide_c': c_ch,
        'mismatch_a': float(cell[0] / a_ch - 1),
        'mismatch_c': float(cell[2] / c_ch - 1),
    }


def _registry(top: np.ndarray, sheet: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Lateral (x, z) shift putting the perovskite's top Pb plane onto the chalcohalide Pb sheet (ICP)."""
    tree = cKDTree(sheet)
    shift = np.zeros(2)
    for _ in range(iterations):
        _, nearest = tree.query(top + shift)
        new = (sheet[nearest] - top).mean(axis=0)
        if np.allclose(new, shift, atol=1e-9):
            break
        shift = new
    return shift


def heterostructure(
    n: int = 5,
    halide: str = 'Br',
    radius: float = 20.035,
    *,
    anion_radius: float | None = None,
    lattice_constant: float | None = None,
    distortion: bool = False,
    facet: str = '010',
    strain: str = 'perovskite',
    centre='4a',
    contact: str = 'PbX2',
) -> Atoms:
    """The CsPbX3 n-cube on the flat (010) face of a Pb4S3Br2 half-sphere (see the module docstring).

    :param n: octahedra along the cube edge (≥ 1).
    :param halide: X of the perovskite (Cl, Br, I); the chalcohalide is always Pb4S3Br2.
    :param radius: half-sphere radius in Å (Pb sites), ``anion_radius`` and ``centre`` as for
        :func:`~aiida_nanohetero.builders.chalcohalide.half_sphere`.
    :param lattice_constant: perovskite pseudo-cubic constant (Å), default the experimental one of the halide.
    :param distortion: Pnma octahedral tilts for Br, I.
    :param facet: the cube facet (its own frame) put on the half-sphere: 010, 0-10, 100, -100, 001, 00-1.
    :param strain: where the in-plane mismatch goes: ``perovskite``, ``shared`` or ``none``.
    :param contact: termination of the contact facet, ``PbX2`` (the published interface: the facet's CsX plane
        removed, the chalcohalide's face in its place) or ``CsX`` (the free cube's facet, Cs layer at the
        interface). With ``PbX2`` the Cs vacancies are placed by the contact rule, so ``facet`` does not change
        the model (every face of the cube without vacancies is the same).
    :return: ``ase.Atoms`` (perovskite atoms first), zero cell, no periodicity, with ``arrays['domain']`` and
        ``arrays['interface']``; ``info`` holds the mismatch, strain, interface spacing and registry shift.
    """
    halide = check_halide(halide)
    n = check_int(n, 'n', 1, MAX_CUBE_N)
    key = _facet(facet)
    if strain not in STRAIN_MODES:
        raise BuilderInputError(
            'strain', f'strain={strain!r} is not supported: choose one of {", ".join(STRAIN_MODES)}.'
        )
    contact = _contact(contact)
    mismatch = in_plane_mismatch(halide, lattice_constant, distortion)  # validates lattice_constant, distortion

    half = half_sphere(radius, centre=centre, anion_radius=anion_radius, side=1)
    bare = contact == 'PbX2'
    if bare:
        sites = contact_cube_index_sites(n)
        symbols, positions = perovskite_sites(n, halide, lattice_constant, distortion, sites=sites)
        vectors, _ = perovskite_lattice(halide, lattice_constant, distortion)
        removed_layer = (contact_layer_index_sites(n) - (n - 1) / 2) @ vectors
    else:
        symbols, positions = perovskite_sites(n, halide, lattice_constant, distortion, operation=FACETS[key])
    positions = np.array(positions)
    chalco = half.positions.copy()

    a_p, c_p = mismatch['perovskite_a'], mismatch['perovskite_c']
    a_ch, c_ch = mismatch['chalcohalide_a'], mismatch['chalcohalide_c']
    if strain == 'perovskite':
        target_a, target_c = a_ch, c_ch
    elif strain == 'shared':
        target_a, target_c = np.sqrt(a_p * a_ch), np.sqrt(c_p * c_ch)
    else:
        target_a, target_c = a_p, c_p
    in_plane = np.array([target_a / a_p, 1.0, target_c / c_p])
    positions *= in_plane
    if strain == 'shared':
        chalco[:, 0] *= target_a / a_ch
        chalco[:, 2] *= target_c / c_ch

    # Vertical: the chalcohalide's Pb sheet one Pb–Pb spacing (b_o / 2) above the perovskite's top Pb plane (CsX),
    # or its lowest anions half a spacing above it, where the removed apical X were (PbX2).
    vectors, _ = perovskite_lattice(halide, lattice_constant, distortion)
    lattice_constant = float(abs(np.linalg.det(vectors)) ** (1 / 3))
    is_pb = np.asarray(symbols) == 'Pb'
    sheet = _top_plane(chalco[half.numbers == 82], -1)
    top = _top_plane(positions[is_pb], +1)
    spacing = float(vectors[1, 1])
    lift = sheet[:, 1].mean() - spacing / (2 if bare else 1) - top[:, 1].mean()
    positions[:, 1] += lift

    # Lateral registry: the chalcohalide's Pb sheet on the perovskite's Pb columns (CsX) or on the removed Cs sites.
    targets = removed_layer * in_plane + [0.0, lift, 0.0] if bare else top
    shift = _registry(targets[:, [0, 2]], sheet[:, [0, 2]])
    positions[:, [0, 2]] += shift
    targets[:, [0, 2]] += shift
    if bare:
        keep = _contact_cs_vacancies(symbols, positions, sites[1], n)
        symbols, positions = list(np.asarray(symbols)[keep]), positions[keep]
        is_pb = np.asarray(symbols) == 'Pb'
        # Then the chalcohalide's face down onto the PbX2 facet, as far as the clash limits allow.
        drop = _closest_approach(symbols, positions, half.get_chemical_symbols(), chalco, limit=spacing / 2)
        positions[:, 1] += drop
        targets[:, 1] += drop
        spacing = spacing / 2 - drop

    atoms = Atoms(
        symbols=list(symbols) + half.get_chemical_symbols(),
        positions=np.concatenate([positions, chalco]),
        pbc=False,
    )
    domain = np.concatenate([np.full(len(positions), PEROVSKITE_DOMAIN), np.full(len(chalco), CHALCOHALIDE_DOMAIN)])
    factor = ISOLATION_FACTOR if bare else BOND_FACTOR
    pairs = bonded_pairs(atoms, factor)
    across = pairs[domain[pairs[:, 0]] != domain[pairs[:, 1]]]
    interface = np.zeros(len(atoms), bool)
    interface[across.ravel()] = True

    atoms.info.update(
        builder='heterostructure',
        n=n,
        halide=halide,
        radius=half.info['radius'],
        anion_radius=half.info['anion_radius'],
        centre=half.info['centre'],
        lattice_constant=float(lattice_constant),
        distortion=bool(distortion),
        facet=key,
        strain=strain,
        mismatch_a=mismatch['mismatch_a'],
        mismatch_c=mismatch['mismatch_c'],
        perovskite_strain_a=float(target_a / a_p - 1),
        perovskite_strain_c=float(target_c / c_p - 1),
        chalcohalide_strain_a=float(target_a / a_ch - 1) if strain == 'shared' else 0.0,
        chalcohalide_strain_c=float(target_c / c_ch - 1) if strain == 'shared' else 0.0,
        contact=contact,
        interface_spacing=spacing,
        registry_shift=[float(x) for x in shift],
        registry_rms=float(_registry_rms(targets, sheet)),
        n_interface_bonds=len(across),
        interface_factor=factor,
    )
    label_atoms(atoms, domain, interface)
    validate(atoms).raise_if_invalid()
    return atoms


def _top_plane(pb: np.ndarray, direction: int) -> np.ndarray:
    """The Pb within 0.5 Å of the extreme plane along y (``direction`` +1: highest, -1: lowest)."""
    y = direction * pb[:, 1]
    return pb[y > y.max() - 0.5]


def _registry_rms(targets: np.ndarray, sheet: np.ndarray) -> float:
    """RMS lateral distance from the registered perovskite sites to the nearest Pb of the chalcohalide sheet."""
    distance, _ = cKDTree(sheet[:, [0, 2]]).query(targets[:, [0, 2]])
    return float(np.sqrt(np.mean(distance**2)))


def _contact(contact) -> str:
    for known in CONTACTS:
        if isinstance(contact, str) and contact.strip().lower() == known.lower():
            return known
    raise BuilderInputError(
        'contact',
        f'contact={contact!r} is not supported: choose PbX2 (the facet without its CsX layer, as in the published '
        "heterostructure) or CsX (the free cube's CsX-terminated facet).",
    )


#: Margin (Å) kept above the clash limits when the chalcohalide is brought down onto a PbX2 facet.
_CONTACT_MARGIN = 0.05


def _closest_approach(symbols, positions: np.ndarray, chalco_symbols, chalco: np.ndarray, limit: float) -> float:
    """How far (Å, ≤ ``limit``) the perovskite can move up (+y) before any pair across the interface clashes.

    The clash limits are the validation's (:data:`~aiida_nanohetero.builders.validation.CLASH_FACTOR` × the sum of
    covalent radii, like-charged ions :data:`~aiida_nanohetero.builders.validation.LIKE_ION_MINIMUM`), plus
    ``_CONTACT_MARGIN``. For every pair of a perovskite atom and a chalcohalide atom closer laterally than its
    limit, the vertical gap may shrink until the pair reaches the limit; the smallest such move wins.
    """
    from ase.data import atomic_numbers, covalent_radii

    from aiida_nanohetero.builders.validation import CLASH_FACTOR, LIKE_ION_MINIMUM

    symbols, chalco_symbols = np.asarray(symbols), np.asarray(chalco_symbols)
    charge_p = np.sign([FORMAL_CHARGES[x] for x in symbols])
    charge_c = np.sign([FORMAL_CHARGES[x] for x in chalco_symbols])
    radius_p = covalent_radii[[atomic_numbers[x] for x in symbols]]
    radius_c = covalent_radii[[atomic_numbers[x] for x in chalco_symbols]]
    reach = max(LIKE_ION_MINIMUM, CLASH_FACTOR * 2 * covalent_radii.max()) + _CONTACT_MARGIN
    lateral = cKDTree(positions[:, [0, 2]]).sparse_distance_matrix(
        cKDTree(chalco[:, [0, 2]]), reach, output_type='ndarray'
    )
    i, j, distance = lateral['i'], lateral['j'], lateral['v']
    minimum = (
        np.where(charge_p[i] == charge_c[j], LIKE_ION_MINIMUM, CLASH_FACTOR * (radius_p[i] + radius_c[j]))
        + _CONTACT_MARGIN
    )
    vertical = chalco[j, 1] - positions[i, 1]
    close = (distance < minimum) & (vertical > 0)
    allowed = vertical[close] - np.sqrt(minimum[close] ** 2 - distance[close] ** 2)
    return float(min(limit, allowed.min())) if close.any() else float(limit)


#: Potentials closer than this (e/Å) are a tie in the contact Cs-vacancy rule.
_POTENTIAL_TIE = 1e-6


def _contact_cs_vacancies(symbols, positions: np.ndarray, index: np.ndarray, count: int) -> np.ndarray:
    """Keep-mask of the cube's sites after removing ``count`` Cs by the contact rule (see the module docstring).

    Candidates are the Cs on the remaining cube's edges (at least two of the three index coordinates extreme);
    the electrostatic potential of the cube's formal charges at each is computed once and updated as Cs⁺ leave.
    """
    symbols = np.asarray(symbols)
    charges = np.array([FORMAL_CHARGES[s] for s in symbols], float)
    cs = np.flatnonzero(symbols == 'Cs')
    lo, hi = index[cs].min(axis=0), index[cs].max(axis=0)
    extreme = np.isclose(index[cs], lo) | np.isclose(index[cs], hi)
    candidates = cs[extreme.sum(axis=1) >= 2]
    distance = np.linalg.norm(positions[candidates, None] - positions[None], axis=2)
    with np.errstate(divide='ignore'):
        inverse = np.where(distance > 1e-9, 1.0 / distance, 0.0)
    potential = inverse @ charges
    keep = np.ones(len(symbols), bool)
    free = np.ones(len(candidates), bool)
    for _ in range(count):
        best = potential[free].max()
        tied = np.flatnonzero(free & (potential > best - _POTENTIAL_TIE))
        order = np.lexsort(np.round(positions[candidates[tied]], 6).T[::-1])  # x, then y, then z
        chosen = tied[order[-1]]
        free[chosen] = False
        keep[candidates[chosen]] = False
        potential -= inverse[:, candidates[chosen]] * charges[candidates[chosen]]
    return keep
