"""Band edges, gaps, domain fractions and band alignment from per-orbital energies, occupations and IPRs.

Follows the seed: the band edges are the highest occupied and the lowest unoccupied orbital whose IPR is
below a threshold (0.03), so localised trap states in the gap do not define the gap; the raw HOMO–LUMO gap is
reported too. For a heterostructure the alignment class follows from where the two edge states live.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aiida_nanohetero.analysis.errors import AOCountMismatchError, BandEdgeNotFoundError, OrbitalWindowError

__all__ = (
    'ALIGNMENT_CLASSES',
    'DEFAULT_IPR_THRESHOLD',
    'classify_alignment',
    'summarise_orbitals',
)

#: The seed's threshold: states with IPR at or above it are treated as localised (trap) states.
DEFAULT_IPR_THRESHOLD = 0.03
#: Possible values of ``alignment``.
ALIGNMENT_CLASSES = ('type I', 'quasi-type II', 'type II', 'delocalised')
_OCCUPIED = 1e-6


def classify_alignment(
    vb_fractions: dict[str, float],
    cb_fractions: dict[str, float],
    core_domains: Sequence[str],
    localised_fraction: float = 0.7,
) -> str:
    """Alignment class of a two-domain heterostructure from the domain fractions of its edge states.

    The fractions of the two ``core_domains`` are renormalised over them (an interface layer is left out).
    An edge is *in* a domain when that domain holds at least ``localised_fraction`` of it, else it is spread
    over both. Both edges in one domain: ``type I``; in different domains: ``type II``; one edge in a domain and
    the other spread: ``quasi-type II``; both spread: ``delocalised``.
    """
    if len(core_domains) != 2:
        raise ValueError(f'the alignment needs exactly two core domains, got {list(core_domains)}')

    def home(fractions: dict[str, float]) -> str | None:
        values = np.array([fractions.get(d, 0.0) for d in core_domains])
        total = values.sum()
        if total <= 0:
            return None
        values = values / total
        best = int(np.argmax(values))
        return core_domains[best] if values[best] >= localised_fraction else None

    vb, cb = home(vb_fractions), home(cb_fractions)
    if vb is not None and cb is not None:
        return 'type I' if vb == cb else 'type II'
    if vb is None and cb is None:
        return 'delocalised'
    return 'quasi-type II'


def summarise_orbitals(
    indices: np.ndarray,
    energies_ev: np.ndarray,
    occupations: np.ndarray,
    ipr: np.ndarray,
    *,
    domain_contributions: np.ndarray | None = None,
    domains: Sequence[str] = (),
    threshold: float = DEFAULT_IPR_THRESHOLD,
    core_domains: Sequence[str] = ('perovskite', 'chalcohalide'),
    interface_domain: str = 'interface',
    interface_fraction: float = 0.5,
    localised_fraction: float = 0.7,
    edge_tol_ev: float = 1e-3,
    strict: bool = True,
) -> dict:
    """Summary of one model from the per-orbital results of a window (sorted by energy).

    :param ipr: rotation-invariant IPR of each orbital (``OrbitalAnalysis.ipr``).
    :param domain_contributions: ``(n_domains, n_mo)`` fractions (``OrbitalAnalysis.domain_contributions``).
    :param threshold: IPR below which a state counts as delocalised (band-edge candidate).
    :param edge_tol_ev: orbitals within this of an edge state count as the (degenerate) edge.
    :param strict: raise when a band edge is missing; with ``False`` the IPR-filtered entries are ``None`` and
        ``warnings`` says why (small clusters, whose IPR cannot fall below the threshold: IPR >= 1/N_atoms).
    :returns: a JSON-able dict: ``homo``/``lumo`` (MO index and energy), ``gap_ev`` (raw), ``vb_edge``/
        ``cb_edge`` (IPR-filtered), ``gap_filtered_ev``, ``n_in_gap_states`` and their energies; with domains
        also ``homo_domain_fractions``/``lumo_domain_fractions``, ``vb_edge_domain_fractions``/
        ``cb_edge_domain_fractions``, ``alignment`` with ``alignment_basis`` (when both core domains are present:
        from the IPR-filtered edges, or from the HOMO and LUMO, with a warning, when no state on a side of the gap
        passes the filter, as in clusters of a few dozen atoms) and the in-gap states localised at the interface.
    :raises OrbitalWindowError: the window lacks an occupied or an unoccupied orbital (so it cannot contain
        the HOMO and the LUMO), or arrays disagree in length.
    :raises BandEdgeNotFoundError: no state below the IPR threshold on one side of the gap in the window.
    """
    indices = np.asarray(indices)
    energies_ev = np.asarray(energies_ev, dtype=np.float64)
    occupations = np.asarray(occupations, dtype=np.float64)
    ipr = np.asarray(ipr, dtype=np.float64)
    n = indices.size
    if not (energies_ev.size == occupations.size == ipr.size == n):
        raise AOCountMismatchError(
            f'{n} indices, {energies_ev.size} energies, {occupations.size} occupations, {ipr.size} IPRs'
        )
    if np.any(np.diff(energies_ev) < -1e-9):
        raise OrbitalWindowError('orbital energies are not sorted ascending')
    occupied = occupations > _OCCUPIED
    if not occupied.any():
        raise OrbitalWindowError(
            f'the window (MOs {indices.min()}-{indices.max()}) holds no occupied orbital: it does not contain the HOMO'
        )
    if occupied.all():
        raise OrbitalWindowError(
            f'the window (MOs {indices.min()}-{indices.max()}) holds no unoccupied orbital: it does not contain the '
            'LUMO (raise ADDED_MOS and the upper end of MO_INDEX_RANGE)'
        )
    homo = int(np.flatnonzero(occupied)[-1])
    lumo = homo + 1
    if occupied[lumo:].any():
        raise OrbitalWindowError('occupied orbitals above the first unoccupied one: fractional occupations (smearing)?')
    delocalised = ipr < threshold
    vb_candidates = np.flatnonzero(occupied & delocalised)
    cb_candidates = np.flatnonzero(~occupied & delocalised)

    def state(i: int) -> dict:
        return {'mo': int(indices[i]), 'energy_ev': float(energies_ev[i]), 'ipr': float(ipr[i])}

    summary = {
        'threshold': float(threshold),
        'homo': state(homo),
        'lumo': state(lumo),
        'gap_ev': float(energies_ev[lumo] - energies_ev[homo]),
        'vb_edge': None,
        'cb_edge': None,
        'gap_filtered_ev': None,
        'n_in_gap_states': None,
        'in_gap_states_ev': None,
        'warnings': [],
    }
    window = f'MOs {indices.min()}-{indices.max()}'
    for side, candidates, hint in (
        ('occupied', vb_candidates, 'downwards'),
        ('unoccupied', cb_candidates, 'upwards'),
    ):
        if candidates.size == 0:
            message = (
                f'no {side} orbital with IPR < {threshold} in the window ({window}, smallest IPR there '
                f'{ipr[occupied if side == "occupied" else ~occupied].min():.3g}): extend MO_INDEX_RANGE {hint}, '
                f'or the model is too small for this threshold (IPR >= 1/N_atoms)'
            )
            if strict:
                raise BandEdgeNotFoundError(message)
            summary['warnings'].append(message)
    filtered = vb_candidates.size > 0 and cb_candidates.size > 0
    if filtered:
        vb, cb = int(vb_candidates[-1]), int(cb_candidates[0])
        inside = (energies_ev > energies_ev[vb] + edge_tol_ev) & (energies_ev < energies_ev[cb] - edge_tol_ev)
        in_gap = np.flatnonzero(inside)
        summary.update(
            vb_edge=state(vb),
            cb_edge=state(cb),
            gap_filtered_ev=float(energies_ev[cb] - energies_ev[vb]),
            n_in_gap_states=int(in_gap.size),
            in_gap_states_ev=[float(e) for e in energies_ev[in_gap]],
        )
    if domain_contributions is None or len(domains) == 0:
        return summary

    domains = list(domains)
    contributions = np.asarray(domain_contributions, dtype=np.float64)
    if contributions.shape != (len(domains), n):
        raise AOCountMismatchError(
            f'domain contributions of shape {contributions.shape}, expected ({len(domains)}, {n})'
        )

    def edge_fractions(edge: int, side: np.ndarray) -> dict[str, float]:
        members = side[np.abs(energies_ev[side] - energies_ev[edge]) <= edge_tol_ev]
        return {d: float(v) for d, v in zip(domains, contributions[:, members].mean(axis=1), strict=True)}

    # the frontier orbitals' domains, always: the fallback edges of a model too small for the IPR filter
    summary['homo_domain_fractions'] = edge_fractions(homo, np.flatnonzero(occupied))
    summary['lumo_domain_fractions'] = edge_fractions(lumo, np.flatnonzero(~occupied))
    if filtered:
        summary['vb_edge_domain_fractions'] = edge_fractions(vb, vb_candidates)
        summary['cb_edge_domain_fractions'] = edge_fractions(cb, cb_candidates)
        edges, basis = ('vb_edge_domain_fractions', 'cb_edge_domain_fractions'), 'IPR-filtered band edges'
    else:
        edges, basis = ('homo_domain_fractions', 'lumo_domain_fractions'), 'HOMO/LUMO'
    if all(d in domains for d in core_domains):
        summary['alignment'] = classify_alignment(
            summary[edges[0]], summary[edges[1]], core_domains, localised_fraction
        )
        summary['alignment_basis'] = basis
        if not filtered:
            sides = 'one side' if vb_candidates.size or cb_candidates.size else 'either side'
            summary['warnings'].append(
                f'alignment from the HOMO and LUMO: no state on {sides} of the gap has IPR < {threshold}, '
                'so localised and delocalised edges cannot be told apart'
            )
    if filtered and interface_domain in domains:
        on_interface = in_gap[contributions[domains.index(interface_domain), in_gap] >= interface_fraction]
        summary['n_interface_in_gap_states'] = int(on_interface.size)
        summary['interface_in_gap_states_ev'] = [float(e) for e in energies_ev[on_interface]]
    return summary
