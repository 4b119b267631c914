"""Pb4S3Br2 spheres and half-spheres cut from the Pnma crystal, charge balanced with formal charges.

Orientation a ∥ x, b ∥ y, c ∥ z; the particle is centred on ``centre`` (default the 4a inversion centre (0, 0, 0)
of the standard Pnma setting), which is put at the origin.

Charge-balance rule (formal charges Pb²⁺, S²⁻, Br⁻)
--------------------------------------------------
1. Take every Pb site closer than ``radius`` to the centre and every S and Br site closer than ``anion_radius``
   (default ``radius``). The Pb count is fixed from here on.
2. Drop dangling anions: those with fewer than two Pb neighbours within 4.0 Å (the first gap of the Pb–anion
   distances of the crystal lies between 3.74 and 5.1 Å).
3. Balance the formal charge q = 2 Pb − 2 S − Br:

   * q > 0 (too few anions): relabel Br as S, outermost first (ties: fewer Pb neighbours first, then the
     coordinates), one per missing charge; if the Br run out, add the nearest anion sites outside
     ``anion_radius`` that have ≥ 2 Pb neighbours, as S (as Br when one charge is missing);
   * q < 0 (too many anions): remove anions, outermost first (ties as above); an S is relabelled Br
     instead of removed when only one charge is in excess.

This is the rule read off the published 4.2 nm model (anion sites inside the sphere, outermost Br turned into
S until neutral). With the ``paper`` parameters (radius 20.035 Å, anion radius 19.95 Å) it gives Pb548S422Br252;
the published model is Pb548S423Br250 (see ``docs/builders.md`` for the comparison).

Half-spheres are the atoms of the neutral sphere on one side of the plane through the centre perpendicular to b
(``side=+1``: y ≥ 0, the side of the published half-sphere; ``side=-1``: y < 0). If that half is not neutral,
the same rule (step 3, distances from the sphere centre) re-balances it; Pb is never changed.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

from aiida_nanohetero.builders._common import CHALCOHALIDE_DOMAIN, BuilderInputError, check_positive, label_atoms
from aiida_nanohetero.builders._data import CHALCOHALIDE
from aiida_nanohetero.builders.validation import validate

__all__ = (
    'CENTRES',
    'MAX_RADIUS',
    'MIN_RADIUS',
    'PB_ANION_BOND',
    'chalcohalide_sphere',
    'half_sphere',
    'minimum_radius',
)

#: Named centres, fractional coordinates of the Pnma setting (both are inversion centres).
CENTRES = {'4a': (0.0, 0.0, 0.0), '4b': (0.0, 0.0, 0.5)}

#: Smallest valid radius per named centre, Å (see :func:`minimum_radius`): every radius above the site distance
#: 7.2632 Å (4a) or 6.4583 Å (4b) gives a neutral sphere and neutral halves with Pb, S and Br.
MIN_RADIUS = {'4a': 7.264, '4b': 6.459}

#: Largest sphere radius accepted, Å (12 nm across, about 40 000 atoms).
MAX_RADIUS = 60.0

#: Pb–anion neighbour cutoff in Å (first gap of the Pb–S / Pb–Br distances of Pb4S3Br2: 3.74 → 5.1 Å).
PB_ANION_BOND = 4.0

_Z = {'Pb': 82, 'S': 16, 'Br': 35}
_CHARGE = {82: 2, 16: -2, 35: -1}


def _centre_fraction(centre) -> np.ndarray:
    if isinstance(centre, str):
        if centre not in CENTRES:
            names = ', '.join(CENTRES)
            raise BuilderInputError(
                'centre', f'centre={centre!r} is not supported: use one of {names} or 3 fractional numbers.'
            )
        return np.array(CENTRES[centre], float)
    try:
        value = np.asarray(centre, float).reshape(3)
    except (TypeError, ValueError):
        value = None
    if value is None or not np.all(np.isfinite(value)):
        raise BuilderInputError(
            'centre', f'centre={centre!r} is not valid: use one of {", ".join(CENTRES)} or 3 fractional numbers.'
        )
    return value


def _crystal_sites(reach: float, centre_frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers and positions (Å, relative to the centre) of all crystal sites within ``reach``."""
    unit = CHALCOHALIDE.unit_cell()
    cell = np.array(CHALCOHALIDE.cell)
    frac = unit.get_scaled_positions(wrap=True)
    lo = np.floor(centre_frac - reach / cell).astype(int) - 1
    hi = np.ceil(centre_frac + reach / cell).astype(int) + 1
    ranges = [np.arange(a, b + 1) for a, b in zip(lo, hi, strict=True)]
    shifts = np.stack(np.meshgrid(*ranges, indexing='ij'), -1).reshape(-1, 3)
    positions = ((frac[None, :, :] + shifts[:, None, :]).reshape(-1, 3) - centre_frac) * cell
    numbers = np.tile(unit.numbers, len(shifts))
    keep = np.einsum('ij,ij->i', positions, positions) < reach * reach
    # A deterministic order that does not depend on how the supercell was enumerated.
    positions, numbers = positions[keep], numbers[keep]
    order = np.lexsort((positions[:, 2].round(6), positions[:, 1].round(6), positions[:, 0].round(6), -numbers))
    return numbers[order], positions[order]


def _priority(positions: np.ndarray, coordination: np.ndarray, outermost_first: bool = True) -> np.ndarray:
    """Order for relabelling / removal: outermost first, then fewer Pb neighbours, then coordinates."""
    r = np.round(np.linalg.norm(positions, axis=1), 6)
    keys = (
        positions[:, 2].round(6),
        positions[:, 1].round(6),
        positions[:, 0].round(6),
        coordination,
        -r if outermost_first else r,
    )
    return np.lexsort(keys)


def _pb_neighbours(anions: np.ndarray, pb: np.ndarray) -> np.ndarray:
    if len(anions) == 0 or len(pb) == 0:
        return np.zeros(len(anions), int)
    return np.array([len(x) for x in cKDTree(pb).query_ball_point(anions, PB_ANION_BOND)], int)


def _balance(numbers: np.ndarray, positions: np.ndarray, spare_numbers, spare_positions):
    """Step 3 of the rule on a Pb + anion set; ``spare`` are anion sites that may be added. Returns new arrays."""
    numbers = numbers.copy()
    is_pb = numbers == 82
    charge = int(sum(_CHARGE[z] for z in numbers))
    coordination = np.zeros(len(numbers), int)
    coordination[~is_pb] = _pb_neighbours(positions[~is_pb], positions[is_pb])
    keep = np.ones(len(numbers), bool)
    if charge > 0:
        bromide = np.flatnonzero(numbers == 35)
        for i in bromide[_priority(positions[bromide], coordination[bromide])][:charge]:
            numbers[i] = 16
            charge -= 1
        if charge > 0 and len(spare_numbers):
            spare_cn = _pb_neighbours(spare_positions, positions[is_pb])
            usable = np.flatnonzero(spare_cn >= 2)
            added_z, added_pos = [], []
            for i in usable[_priority(spare_positions[usable], -spare_cn[usable], outermost_first=False)]:
                if charge <= 0:
                    break
                z = 16 if charge >= 2 else 35
                added_z.append(z)
                added_pos.append(spare_positions[i])
                charge += _CHARGE[z]
            if added_z:
                numbers = np.concatenate([numbers, added_z])
                positions = np.concatenate([positions, np.array(added_pos)])
                keep = np.concatenate([keep, np.ones(len(added_z), bool)])
    elif charge < 0:
        anions = np.flatnonzero(~is_pb)
        for i in anions[_priority(positions[anions], coordination[anions])]:
            if charge == 0:
                break
            if numbers[i] == 16 and charge == -1:
                numbers[i] = 35
                charge += 1
            else:
                keep[i] = False
                charge -= _CHARGE[numbers[i]]
    return numbers[keep], positions[keep], charge


def _sphere_arrays(radius: float, anion_radius: float, centre_frac: np.ndarray):
    reach = max(radius, anion_radius) + 8.0
    numbers, positions = _crystal_sites(reach, centre_frac)
    r = np.linalg.norm(positions, axis=1)
    is_pb = numbers == 82
    chosen = np.where(is_pb, r < radius, r < anion_radius)
    pb_pos = positions[chosen & is_pb]
    anion = np.flatnonzero(chosen & ~is_pb)
    dangling = anion[_pb_neighbours(positions[anion], pb_pos) < 2]
    chosen[dangling] = False
    spare = np.flatnonzero(~is_pb & ~chosen & (r >= anion_radius))
    numbers, positions, charge = _balance(numbers[chosen], positions[chosen], numbers[spare], positions[spare])
    return numbers, positions, charge


def _finish(numbers, positions, info) -> Atoms:
    order = np.lexsort((positions[:, 2], positions[:, 1], positions[:, 0], -numbers))
    atoms = Atoms(numbers=numbers[order], positions=positions[order], pbc=False)
    atoms.info.update(info)
    label_atoms(atoms, CHALCOHALIDE_DOMAIN)
    validate(atoms).raise_if_invalid()
    return atoms


def _formula_ok(numbers: np.ndarray) -> bool:
    """At least one Pb4S3Br2 formula unit of each element (Pb ≥ 4, S ≥ 3, Br ≥ 2)."""
    counts = {z: int((numbers == z).sum()) for z in (82, 16, 35)}
    return counts[82] >= 4 and counts[16] >= 3 and counts[35] >= 2


def _check_radii(radius, anion_radius):
    radius = check_positive(radius, 'radius', maximum=MAX_RADIUS)
    anion_radius = radius if anion_radius is None else check_positive(anion_radius, 'anion_radius', maximum=MAX_RADIUS)
    return radius, anion_radius


def minimum_radius(centre='4a') -> float | None:
    """Smallest radius (Å) from which on every sphere and half-sphere about a named centre is valid.

    Valid means neutral with at least one Pb4S3Br2 unit of each element (with ``anion_radius = radius``). Below it
    some radii give Br-free or non-neutral particles; ``None`` for a custom centre. The values were found by
    scanning every site distance up to 22 Å (``tests/test_builders.py`` re-checks them).
    """
    return MIN_RADIUS.get(centre) if isinstance(centre, str) else None


def chalcohalide_sphere(radius: float = 20.0, centre='4a', anion_radius: float | None = None) -> Atoms:
    """A charge-balanced Pb4S3Br2 sphere cut from the Pnma crystal (a ∥ x, b ∥ y, c ∥ z), centred at the origin.

    :param radius: Pb sites closer than this to the centre are kept, in Å.
    :param centre: ``'4a'`` (inversion centre (0, 0, 0), the published model's), ``'4b'`` ((0, 0, ½)), or three
        fractional coordinates of the Pnma cell.
    :param anion_radius: S and Br sites closer than this are kept before the charge balance (default ``radius``).
    :raise BuilderInputError: (a ``ValueError``) for a non-positive radius or one too small for a neutral particle
        with at least one Pb4S3Br2 unit.
    """
    radius, anion_radius = _check_radii(radius, anion_radius)
    centre_frac = _centre_fraction(centre)
    if isinstance(centre, str) and radius < MIN_RADIUS[centre]:
        _too_small(radius, anion_radius, centre)
    numbers, positions, charge = _sphere_arrays(radius, anion_radius, centre_frac)
    if charge != 0 or not _formula_ok(numbers):
        _too_small(radius, anion_radius, centre)
    info = {
        'builder': 'chalcohalide_sphere',
        'radius': radius,
        'anion_radius': anion_radius,
        'centre': centre if isinstance(centre, str) else [float(x) for x in centre_frac],
    }
    return _finish(numbers, positions, info)


def _too_small(radius, anion_radius, centre, side=None):
    what = 'sphere' if side is None else 'half-sphere'
    minimum = minimum_radius(centre)
    hint = f'use radius ≥ {minimum:g} Å' if minimum is not None else 'use a larger radius (≥ 7.264 Å about 4a)'
    if anion_radius != radius:
        hint += ' and anion_radius close to radius'
    raise BuilderInputError(
        'radius',
        f'radius={radius:g} Å (diameter {2 * radius:g} Å) is too small to hold a neutral Pb4S3Br2 {what} with at '
        f'least one Pb4S3Br2 unit: {hint}.',
    )


def _half_arrays(numbers, positions, side):
    on_side = positions[:, 1] < 0 if side < 0 else positions[:, 1] >= 0
    numbers, positions = numbers[on_side], positions[on_side]
    empty = np.zeros(0, int), np.zeros((0, 3))
    return _balance(numbers, positions, *empty)


def half_sphere(radius: float = 20.0, centre='4a', anion_radius: float | None = None, side: int = 1) -> Atoms:
    """One half of :func:`chalcohalide_sphere`, cut by the plane through the centre perpendicular to b.

    :param side: ``+1`` keeps y ≥ 0 (the published half-sphere's side), ``-1`` keeps y < 0. The flat (010) face is
        the plane y = 0 (its outermost Pb layer lies 0.87 Å inside for the 4a centre).
    The half is re-balanced with the sphere's rule only if it is not already neutral.
    """
    radius, anion_radius = _check_radii(radius, anion_radius)
    if side not in (-1, 1) or isinstance(side, bool):
        raise BuilderInputError('side', f'side={side!r} is not valid: use +1 (y ≥ 0) or -1 (y < 0).')
    centre_frac = _centre_fraction(centre)
    if isinstance(centre, str) and radius < MIN_RADIUS[centre]:
        _too_small(radius, anion_radius, centre, side)
    numbers, positions, charge = _sphere_arrays(radius, anion_radius, centre_frac)
    if charge == 0:
        numbers, positions, charge = _half_arrays(numbers, positions, side)
    if charge != 0 or not _formula_ok(numbers):
        _too_small(radius, anion_radius, centre, side)
    info = {
        'builder': 'half_sphere',
        'radius': radius,
        'anion_radius': anion_radius,
        'centre': centre if isinstance(centre, str) else [float(x) for x in centre_frac],
        'side': side,
    }
    return _finish(numbers, positions, info)
