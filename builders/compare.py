"""Comparison of built models with reference (e.g. published, relaxed) models.

* :func:`compare_cube` — best alignment of two CsPbX3 cubes over the 48 operations of the cube group (plus a
  one-to-one assignment per element and a Kabsch rotation), optionally with a uniform scale; RMSD in Å.
* :func:`compare_heterostructure` — site by site against a (relaxed) heterostructure: affine fit, one-to-one
  assignment per element, matched fractions per element and domain, site occupation, Pb registry at the interface.
* :func:`compare_chalcohalide` — maps a relaxed Pb4S3Br2 particle back onto the ideal crystal sites of a built one
  (translation, per-axis scales — the relaxation stretches the particle along b — and the mirror flips of the
  orthorhombic frame), then counts the reference sites that the built model has with the same element.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from aiida_nanohetero.builders._common import PEROVSKITE_DOMAIN
from aiida_nanohetero.builders._data import CHALCOHALIDE
from aiida_nanohetero.builders.perovskite import _OH

__all__ = ('ComparisonInputError', 'compare_chalcohalide', 'compare_cube', 'compare_heterostructure', 'kabsch')

_HALIDES = {'Cl', 'Br', 'I'}


def kabsch(moving: np.ndarray, fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Proper rotation R and translation t minimising |moving @ R.T + t − fixed|."""
    cm, cf = moving.mean(axis=0), fixed.mean(axis=0)
    u, _, vt = np.linalg.svd((moving - cm).T @ (fixed - cf))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rotation, cf - cm @ rotation.T


def _assign(model_symbols, model_pos, ref_symbols, ref_pos) -> np.ndarray:
    """One-to-one assignment per element (Hungarian); returns, for each reference atom, the model index."""
    model_symbols, ref_symbols = np.asarray(model_symbols), np.asarray(ref_symbols)
    match = np.full(len(ref_pos), -1)
    for element in set(ref_symbols):
        r = np.flatnonzero(ref_symbols == element)
        m = np.flatnonzero(model_symbols == element)
        cost = np.linalg.norm(ref_pos[r, None] - model_pos[None, m], axis=2)
        rows, cols = linear_sum_assignment(cost)
        match[r[rows]] = m[cols]
    return match


def compare_cube(model, reference, scale: bool = False) -> dict:
    """Align ``model`` onto ``reference`` (same composition) and return the RMSD (Å) and what was fitted.

    Both are centred on their Pb centroid; each of the 48 cube operations is tried on the model, atoms are assigned
    one-to-one per element, then a Kabsch rotation (and, with ``scale=True``, a uniform scale) is fitted. The
    best operation is kept. The halide of ``model`` may differ from the reference's (it is matched as X).
    """
    ms, rs = _as_x(model.get_chemical_symbols()), _as_x(reference.get_chemical_symbols())
    if sorted(ms) != sorted(rs):
        raise ValueError('compare_cube: the two models have different compositions')
    mp = model.get_positions() - model.get_positions()[ms == 'Pb'].mean(axis=0)
    rp = reference.get_positions() - reference.get_positions()[rs == 'Pb'].mean(axis=0)
    best = None
    for index, op in enumerate(_OH):
        moved = mp @ op.T
        match = _assign(ms, moved, rs, rp)
        rotation, shift = kabsch(moved[match], rp)
        fitted = moved[match] @ rotation.T + shift
        factor = 1.0
        if scale:
            centre = fitted.mean(axis=0)
            factor = float(np.sum((fitted - centre) * (rp - centre)) / np.sum((fitted - centre) ** 2))
            fitted = centre + factor * (fitted - centre)
        deviation = np.linalg.norm(fitted - rp, axis=1)
        rmsd = float(np.sqrt(np.mean(deviation**2)))
        if best is None or rmsd < best['rmsd'] - 1e-12:
            best = {'rmsd': rmsd, 'max_deviation': float(deviation.max()), 'operation': index, 'scale': factor}
    return best


def _as_x(symbols) -> np.ndarray:
    return np.array(['X' if s in _HALIDES else s for s in symbols])


def compare_chalcohalide(model, reference, inner_radius: float = 14.0, iterations: int = 30) -> dict:
    """Compare a built Pb4S3Br2 particle (ideal sites, centre at the origin) with a relaxed reference.

    The reference is mapped onto the ideal crystal around the model's centre: p ≈ t + S·F·q with a translation t,
    per-axis scales S and a mirror flip F (diagonal ±1), fitted by iterative closest point on the atoms within
    ``inner_radius`` of the centre (where the relaxation moved atoms least). Reference atoms are then assigned
    one-to-one to crystal sites (Pb to Pb sites, anions to anion sites, Hungarian). Any halide of the reference
    counts as Br (the Cl analogue was built from the same sites).

    Returns ``element_match`` (fraction of reference sites present in the model with the same element),
    ``site_match`` (fraction present at all), ``within_0.8`` (fraction of reference atoms within 0.8 Å of their
    site), ``scales``, ``flip``, ``translation`` and ``rms_inner`` (Å).
    """
    cell = np.array(CHALCOHALIDE.cell)
    model_pos = model.get_positions()
    ref_pos = reference.get_positions()
    ref_kind = np.where(reference.numbers == 82, 82, np.where(reference.numbers == 16, 16, 35))
    reach = np.linalg.norm(model_pos, axis=1).max() + 6.0
    from aiida_nanohetero.builders.chalcohalide import _crystal_sites

    # Model centre in fractional coordinates: the model was built about it (its sites are crystal sites).
    centre_frac = _model_centre(model)
    site_z, site_pos = _crystal_sites(reach, centre_frac)
    site_class = np.where(site_z == 82, 82, 0)
    ref_class = np.where(ref_kind == 82, 82, 0)
    trees = {c: (cKDTree(site_pos[site_class == c]), np.flatnonzero(site_class == c)) for c in (82, 0)}

    def nearest(q):
        index, distance = np.empty(len(q), int), np.empty(len(q))
        for c, (tree, sites) in trees.items():
            mine = ref_class == c
            d, i = tree.query(q[mine])
            index[mine], distance[mine] = sites[i], d
        return index, distance

    best = None
    model_centroid = model_pos.mean(axis=0)
    for flip in itertools.product((1.0, -1.0), repeat=3):
        flip = np.array(flip)
        scales = np.ones(3)
        shift = ref_pos.mean(axis=0) - flip * model_centroid
        for _ in range(iterations):
            q = flip * (ref_pos - shift) / scales
            index, _ = nearest(q)
            inner = np.linalg.norm(q, axis=1) < inner_radius
            ideal = site_pos[index[inner]] * flip
            for k in range(3):
                design = np.c_[np.ones(inner.sum()), ideal[:, k]]
                (shift[k], scales[k]), *_ = np.linalg.lstsq(design, ref_pos[inner, k], rcond=None)
            if np.any(scales < 0.5):
                break
        q = flip * (ref_pos - shift) / scales
        _, distance = nearest(q)
        inner = np.linalg.norm(q, axis=1) < inner_radius
        rms = float(np.sqrt(np.mean(distance[inner] ** 2))) if inner.any() else np.inf
        if np.any(scales < 0.5):
            rms = np.inf
        if best is None or rms < best['rms_inner']:
            best = {'rms_inner': rms, 'flip': flip, 'scales': scales.copy(), 'translation': shift.copy(), 'q': q}

    q = best.pop('q')
    site_of = np.full(len(q), -1)
    for c in (82, 0):
        mine = np.flatnonzero(ref_class == c)
        sites = np.flatnonzero((site_class == c) & (np.linalg.norm(site_pos, axis=1) < reach))
        cost = np.linalg.norm(q[mine, None] - site_pos[None, sites], axis=2)
        rows, cols = linear_sum_assignment(cost)
        site_of[mine[rows]] = sites[cols]
    deviation = np.linalg.norm(q - site_pos[site_of], axis=1)

    # Model atoms on crystal sites.
    model_kind = np.where(model.numbers == 82, 82, np.where(model.numbers == 16, 16, 35))
    distance, model_site = cKDTree(site_pos).query(model_pos)
    if distance.max() > 1e-3:
        raise ValueError('compare_chalcohalide: the model is not made of ideal Pb4S3Br2 sites about its origin')
    element_of_site = dict(zip(model_site.tolist(), model_kind.tolist(), strict=True))
    present = np.array([s in element_of_site for s in site_of])
    same = np.array([element_of_site.get(s) == k for s, k in zip(site_of, ref_kind, strict=True)])
    return {
        'element_match': float(same.mean()),
        'site_match': float(present.mean()),
        'within_0.8': float((deviation < 0.8).mean()),
        'scales': [float(x) for x in best['scales']],
        'flip': [int(x) for x in best['flip']],
        'translation': [float(x) for x in best['translation']],
        'rms_inner': best['rms_inner'],
        'reference_sites': site_of,
        'reference_site_positions': site_pos[site_of],
        'reference_kinds': ref_kind,
        'cell': cell,
    }


def _model_centre(model) -> np.ndarray:
    centre = model.info.get('centre', '4a')
    from aiida_nanohetero.builders.chalcohalide import _centre_fraction

    return _centre_fraction(tuple(centre) if isinstance(centre, list) else centre)


#: Proper rotations tried as starting orientations of the heterostructure fit: the identity and the three
#: two-fold rotations about the axes of the chalcohalide frame (the only ones that keep the orthorhombic frame).
_START_ROTATIONS = tuple(np.diag(d).astype(float) for d in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)))


class ComparisonInputError(ValueError):
    """The reference cannot be compared with the model; the message says what differs."""


def _composition_difference(model_symbols, ref_symbols) -> tuple[set, dict]:
    from collections import Counter

    mc, rc = Counter(np.asarray(model_symbols).tolist()), Counter(np.asarray(ref_symbols).tolist())
    elements = set(mc) ^ set(rc)
    counts = {str(e): (mc.get(e, 0), rc.get(e, 0)) for e in sorted(set(mc) | set(rc)) if mc.get(e, 0) != rc.get(e, 0)}
    return elements, counts


def _affine_icp(model_pos, model_symbols, ref_pos, ref_symbols, start, cutoff: float, iterations: int):
    """Affine map ref ≈ model @ A.T + t (rotation plus small strain), fitted by ICP per element."""
    trees = {e: (cKDTree(model_pos[model_symbols == e]), np.flatnonzero(model_symbols == e)) for e in set(ref_symbols)}
    matrix = start.copy()
    shift = ref_pos.mean(axis=0) - model_pos.mean(axis=0) @ matrix.T
    for _ in range(iterations):
        inverse = np.linalg.inv(matrix)
        back = (ref_pos - shift) @ inverse.T  # reference in the model's frame
        partner, distance = np.full(len(ref_pos), -1), np.full(len(ref_pos), np.inf)
        for element, (tree, index) in trees.items():
            mine = ref_symbols == element
            d, i = tree.query(back[mine])
            partner[mine], distance[mine] = index[i], d
        close = distance < cutoff
        if close.sum() < 12:
            break
        design = np.c_[model_pos[partner[close]], np.ones(close.sum())]
        solution, *_ = np.linalg.lstsq(design, ref_pos[close], rcond=None)
        new_matrix, new_shift = solution[:3].T, solution[3]
        converged = np.allclose(new_matrix, matrix, atol=1e-7) and np.allclose(new_shift, shift, atol=1e-6)
        matrix, shift = new_matrix, new_shift
        if converged:
            break
    return matrix, shift


def _interface_registry(positions, symbols, domain) -> float:
    """RMS lateral (x, z) distance from each Pb of the perovskite's top plane to the nearest chalcohalide Pb above it.

    The stacking direction is y (perovskite below, chalcohalide above, as the builder places them); "above" means
    within two perovskite Pb–Pb spacings (12 Å). This is the Pb registry across the interface along [010].
    """
    pb = symbols == 'Pb'
    perovskite = positions[pb & (domain == PEROVSKITE_DOMAIN)]
    chalco = positions[pb & (domain != PEROVSKITE_DOMAIN)]
    if not len(perovskite) or not len(chalco):
        return float('nan')
    top = perovskite[perovskite[:, 1] > perovskite[:, 1].max() - 1.5]
    distances = []
    for atom in top:
        above = chalco[(chalco[:, 1] > atom[1]) & (chalco[:, 1] < atom[1] + 12.0)]
        if len(above):
            distances.append(np.min(np.linalg.norm(above[:, [0, 2]] - atom[[0, 2]], axis=1)))
    return float(np.sqrt(np.mean(np.square(distances)))) if distances else float('nan')


def compare_heterostructure(
    model, reference, tolerance: float = 1.0, strict: bool = True, cutoff: float = 2.0, iterations: int = 60
) -> dict:
    """Site-by-site comparison of a built heterostructure with a reference one (e.g. the published relaxed model).

    The model (ideal sites, with ``arrays['domain']``) is mapped onto the reference by an affine transformation
    (translation, rotation and the relaxation's small strain), fitted by iterative closest point between atoms of
    the same element, starting from the identity and the three two-fold rotations of the chalcohalide frame; the
    start that leaves most reference atoms within ``tolerance`` is kept. Reference atoms are then assigned
    one-to-one to model atoms of the same element (Hungarian) and count as matched within ``tolerance`` (Å). Each
    reference atom takes the domain of the model atom it is assigned to.

    ``strict`` (default) requires the same composition; with ``strict=False`` only the element sets must agree
    (e.g. to compare another termination). A reference of another element set, or of another composition when
    ``strict``, raises :class:`ComparisonInputError` saying what differs.

    Returns the composition of both, the fitted matrix and translation (and its strain: the singular values of the
    matrix minus one), the matched fraction overall, per element and per domain and element, the unmatched
    reference sites per domain and element, the rms deviation of the matched atoms, the Pb registry rms across
    the interface (:func:`_interface_registry`) of the model and of the reference, and the site occupation:
    ``site_element_match``, the fraction of reference atoms whose site (one-to-one assignment to model atoms of any
    element) carries the same element, overall and per domain and element (independent of how far the
    relaxation moved the atoms, which the tolerance is not).
    """
    from aiida_nanohetero.builders.validation import formula

    model_symbols = np.array(model.get_chemical_symbols())
    ref_symbols = np.array(reference.get_chemical_symbols())
    if 'domain' not in model.arrays:
        raise ComparisonInputError('the model has no domain labels (arrays["domain"]): build it with the builders')
    elements, counts = _composition_difference(model_symbols, ref_symbols)
    if elements:
        raise ComparisonInputError(
            f'the reference {formula(ref_symbols)} has another element set than the model {formula(model_symbols)}: '
            f'{", ".join(sorted(elements))} in only one of them'
        )
    if strict and counts:
        differ = ', '.join(f'{e} {m} in the model against {r}' for e, (m, r) in counts.items())
        raise ComparisonInputError(
            f'the reference {formula(ref_symbols)} has another composition than the model {formula(model_symbols)} '
            f'({differ})'
        )
    model_pos, ref_pos = model.get_positions(), reference.get_positions()
    domain = np.asarray(model.arrays['domain'])

    best = None
    for start in _START_ROTATIONS:
        matrix, shift = _affine_icp(model_pos, model_symbols, ref_pos, ref_symbols, start, cutoff, iterations)
        moved = model_pos @ matrix.T + shift
        match = _assign(model_symbols, moved, ref_symbols, ref_pos)
        deviation = np.full(len(ref_pos), np.inf)
        assigned = match >= 0
        deviation[assigned] = np.linalg.norm(moved[match[assigned]] - ref_pos[assigned], axis=1)
        score = int((deviation < tolerance).sum())
        if best is None or score > best[0]:
            best = (score, matrix, shift, moved, match, deviation)
    _, matrix, shift, moved, match, deviation = best

    ref_domain = np.where(match >= 0, domain[np.maximum(match, 0)], -1)
    unassigned = match < 0  # more reference atoms of an element than the model has: take the nearest model atom
    if unassigned.any():
        _, nearest = cKDTree(moved).query(ref_pos[unassigned])
        ref_domain[unassigned] = domain[nearest]
    matched = deviation < tolerance
    names = {code: name for name, code in model.info.get('domain_codes', {'perovskite': 0, 'chalcohalide': 1}).items()}

    def fractions(mask):
        return {
            str(e): {
                'matched': int((matched & mask & (ref_symbols == e)).sum()),
                'total': int((mask & (ref_symbols == e)).sum()),
            }
            for e in sorted(set(ref_symbols[mask].tolist()))
        }

    per_domain = {names.get(int(c), str(c)): fractions(ref_domain == c) for c in sorted(set(ref_domain.tolist()))}
    unmatched = {
        name: {e: v['total'] - v['matched'] for e, v in table.items() if v['total'] > v['matched']}
        for name, table in per_domain.items()
    }
    # Sites regardless of element: every reference atom assigned one-to-one to a model atom of any element; the
    # fraction whose site carries the same element (the occupation of the sites, independent of how far the
    # relaxation moved the atoms).
    cost = np.linalg.norm(ref_pos[:, None] - moved[None], axis=2)
    rows, cols = linear_sum_assignment(cost)
    same_site = np.zeros(len(ref_pos), bool)
    same_site[rows] = model_symbols[cols] == ref_symbols[rows]
    strain = np.linalg.svd(matrix, compute_uv=False) - 1.0
    return {
        'site_element_match': float(same_site.mean()),
        'site_element_per_domain': {
            names.get(int(c), str(c)): {
                str(e): {
                    'same': int((same_site & (ref_domain == c) & (ref_symbols == e)).sum()),
                    'total': int(((ref_domain == c) & (ref_symbols == e)).sum()),
                }
                for e in sorted(set(ref_symbols[ref_domain == c].tolist()))
            }
            for c in sorted(set(ref_domain.tolist()))
        },
        'model_formula': formula(model_symbols),
        'reference_formula': formula(ref_symbols),
        'composition_difference': counts,
        'tolerance': tolerance,
        'matched': float(matched.mean()),
        'per_element': fractions(np.ones(len(ref_symbols), bool)),
        'per_domain': per_domain,
        'unmatched': unmatched,
        'rms_matched': float(np.sqrt(np.mean(deviation[matched] ** 2))) if matched.any() else float('nan'),
        'matrix': matrix,
        'translation': shift,
        'strain': [float(x) for x in strain],
        'registry_rms_model': _interface_registry(model_pos, model_symbols, domain),
        'registry_rms_reference': _interface_registry(ref_pos, ref_symbols, ref_domain),
        'reference_domain': ref_domain,
        'reference_matched': matched,
        'assignment': match,
    }
