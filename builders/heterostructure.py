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
* Both parts are neutral by construction, so the heterostructure is. Anion exchange only changes X of the perovskite:
  the chalcohalide stays Pb4S3Br2 for every halide.
* Labels: ``arrays['domain']`` 0 = perovskite, 1 = chalcohalide; ``arrays['interface']`` is True for atoms bonded
  across the interface: an atom of the other domain closer than 1.3 × the sum of the covalent radii
  (see :data:`~aiida_nanohetero.builders.validation.BOND_FACTOR`).
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
from aiida_nanohetero.builders._data import CHALCOHALIDE
from aiida_nanohetero.builders.chalcohalide import half_sphere
from aiida_nanohetero.builders.perovskite import MAX_CUBE_N, perovskite_lattice, perovskite_sites
from aiida_nanohetero.builders.validation import bonded_pairs, validate

__all__ = ('FACETS', 'STRAIN_MODES', 'heterostructure', 'in_plane_mismatch')

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
    mismatch = in_plane_mismatch(halide, lattice_constant, distortion)  # validates lattice_constant, distortion

    half = half_sphere(radius, centre=centre, anion_radius=anion_radius, side=1)
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
    positions[:, 0] *= target_a / a_p
    positions[:, 2] *= target_c / c_p
    if strain == 'shared':
        chalco[:, 0] *= target_a / a_ch
        chalco[:, 2] *= target_c / c_ch

    # Vertical: the perovskite's top Pb plane one Pb–Pb spacing (b_o / 2) below the chalcohalide's Pb sheet.
    vectors, _ = perovskite_lattice(halide, lattice_constant, distortion)
    spacing = float(vectors[1, 1])
    lattice_constant = float(abs(np.linalg.det(vectors)) ** (1 / 3))
    is_pb = np.asarray(symbols) == 'Pb'
    sheet = _top_plane(chalco[half.numbers == 82], -1)
    top = _top_plane(positions[is_pb], +1)
    positions[:, 1] += sheet[:, 1].mean() - spacing - top[:, 1].mean()

    # Lateral registry of the two Pb sublattices.
    shift = _registry(top[:, [0, 2]], sheet[:, [0, 2]])
    positions[:, [0, 2]] += shift

    atoms = Atoms(
        symbols=list(symbols) + half.get_chemical_symbols(),
        positions=np.concatenate([positions, chalco]),
        pbc=False,
    )
    domain = np.concatenate([np.full(len(positions), PEROVSKITE_DOMAIN), np.full(len(chalco), CHALCOHALIDE_DOMAIN)])
    pairs = bonded_pairs(atoms)
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
        interface_spacing=spacing,
        registry_shift=[float(x) for x in shift],
        registry_rms=float(_registry_rms(positions, is_pb, sheet)),
        n_interface_bonds=len(across),
    )
    label_atoms(atoms, domain, interface)
    validate(atoms).raise_if_invalid()
    return atoms


def _top_plane(pb: np.ndarray, direction: int) -> np.ndarray:
    """The Pb within 0.5 Å of the extreme plane along y (``direction`` +1: highest, -1: lowest)."""
    y = direction * pb[:, 1]
    return pb[y > y.max() - 0.5]


def _registry_rms(positions: np.ndarray, is_pb: np.ndarray, sheet: np.ndarray) -> float:
    """RMS lateral distance from the perovskite's top Pb plane to the nearest Pb of the chalcohalide sheet."""
    top = _top_plane(positions[is_pb], +1)[:, [0, 2]]
    distance, _ = cKDTree(sheet[:, [0, 2]]).query(top)
    return float(np.sqrt(np.mean(distance**2)))
