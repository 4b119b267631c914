"""Reader for CP2K's projected DOS files (``&DFT/&PRINT/&PDOS``, ``&DFT/&PRINT/&DOS`` from CP2K 2026.2) and the
cross-check against our Löwdin populations.

``<PROJECT>-k<kind>-1.pdos`` (one per atomic kind) and ``<PROJECT>-list<i>-1.pdos`` (one per ``&LDOS``): two
comment lines (the kind or list, ``E(Fermi)`` in Hartree, the column names; CP2K 2026.2: four, the title,
``E(Fermi)``, ``E(HOCO)`` and the column names), then one row per MO: index, eigenvalue (Hartree), occupation
(2026.2: then the ``Total``), one weight per angular momentum (or per component with ``COMPONENTS``).
CP2K computes these weights by Löwdin projection (``S^½ C``), so summing our Löwdin populations over the
atoms of a kind must reproduce the row sums. Spin-polarised runs write ``-ALPHA_k1``/``-BETA_k1`` files.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aiida_nanohetero.analysis.errors import AOCountMismatchError, PDOSFormatError, spin_error

__all__ = (
    'ProjectedDOS',
    'compare_with_pdos',
    'find_pdos_files',
    'populations_from_ldos',
    'read_ldos_lists',
    'read_pdos',
)

_HEADER = re.compile(
    r'^#\s*Projected DOS for (?:atomic kind (?P<kind>\S+)|list (?P<list>\d+) of\s+(?P<natoms>\d+) atoms),?'
)
_FERMI = re.compile(r'E\(Fermi\)\s*=\s*(?P<fermi>\S+)')
_NAME = re.compile(r'-(?P<spin>ALPHA_|BETA_)?(?:k(?P<kind>\d+)|list(?P<list>\d+))-\d+\.pdos$')


@dataclasses.dataclass(frozen=True)
class ProjectedDOS:
    """One ``.pdos`` file. ``weights`` is ``(n_mo, n_components)``; ``kind`` is set for a kind file,
    ``list_index`` and ``n_list_atoms`` for an ``&LDOS`` list file; energies in Hartree."""

    path: str
    kind: str | None
    list_index: int | None
    n_list_atoms: int | None
    fermi_energy: float
    indices: np.ndarray
    energies: np.ndarray
    occupations: np.ndarray
    components: list[str]
    weights: np.ndarray

    @property
    def total(self) -> np.ndarray:
        """Weight of each MO on the kind (or list): the sum over components."""
        return self.weights.sum(axis=1)


def read_pdos(path: str | os.PathLike) -> ProjectedDOS:
    """Read one ``.pdos`` file.

    :raises PDOSFormatError: missing headers, rows of the wrong length (truncated), non-consecutive MO indices,
        unreadable numbers, or a spin-polarised file (then also a ``SpinPolarisedError``).
    """
    name = os.fspath(path)
    match = _NAME.search(os.path.basename(name))
    if match and match.group('spin'):
        raise spin_error(PDOSFormatError, f'{name}: spin-polarised (UKS) PDOS file: only closed-shell is supported')
    with open(name, encoding='utf-8') as handle:
        text = handle.read()
    # Header: CP2K 2023.1-2025.2 write two '#' lines (title with E(Fermi), column names); 2026.2 writes four (title,
    # E(Fermi), E(HOCO), column names) and a 'Total' column after the occupation.
    head = []
    for line in text.split('\n'):
        if not line.startswith('#'):
            break
        head.append(line)
    if len(head) < 2 or len(head) > 4:
        raise PDOSFormatError(
            f'{name}: {len(head)} "#" header line(s), not the 2 (CP2K 2023.1-2025.2) or 4 (CP2K 2026.2) of a CP2K '
            '.pdos file'
        )
    header = _HEADER.match(head[0])
    if header is None:
        raise PDOSFormatError(
            f'{name}: unrecognised first line {head[0]!r}: not a .pdos header of CP2K 2023.1 to 2026.2'
        )
    fermi = next((m for m in map(_FERMI.search, head[:-1]) if m), None)
    if fermi is None:
        raise PDOSFormatError(f'{name}: no E(Fermi) in the header lines: not a .pdos file of CP2K 2023.1 to 2026.2')
    columns = head[-1].lstrip('#').split()
    # '#  MO Eigenvalue [a.u.] Occupation s p d ...' or '#  MO Energy[a.u.] Occupation Total s p d ...'
    try:
        first_component = columns.index('Occupation') + 1
    except ValueError:
        raise PDOSFormatError(f'{name}: no "Occupation" column in the header line') from None
    components = columns[first_component:]
    has_total = bool(components) and components[0] == 'Total'
    if has_total:
        components = components[1:]
    lines = text.split('\n', len(head))
    ncol = 3 + has_total + len(components)
    if not text.endswith('\n'):
        raise PDOSFormatError(f'{name}: the last line is incomplete: the file is truncated')
    body = lines[len(head)]
    try:
        values = np.array(body.split(), dtype=np.float64)
    except ValueError as exc:
        raise PDOSFormatError(f'{name}: unreadable number ({exc}): corrupted file') from None
    if values.size == 0 or values.size % ncol:
        raise PDOSFormatError(f'{name}: rows do not all have {ncol} columns: the file is truncated or corrupted')
    table = values.reshape(-1, ncol)
    rows_per_line = body.count('\n') + (0 if body.endswith('\n') else 1)
    if rows_per_line != table.shape[0]:
        raise PDOSFormatError(f'{name}: {rows_per_line} lines but {table.shape[0]} rows of {ncol} numbers: corrupted')
    indices = table[:, 0].astype(np.int64)
    if np.any(np.diff(indices) != 1):
        raise PDOSFormatError(f'{name}: MO indices are not consecutive: corrupted file')
    weights = table[:, 3 + has_total :]
    if has_total:  # CP2K prints 8 decimals: the row sums agree to a few 1e-8
        deviation = np.abs(table[:, 3] - weights.sum(axis=1)).max()
        if deviation > 1e-6 * max(1, len(components)):
            raise PDOSFormatError(
                f'{name}: the Total column differs from the sum of the components by {deviation:.1e}: corrupted file'
            )
    return ProjectedDOS(
        path=name,
        kind=header.group('kind'),
        list_index=int(header.group('list')) if header.group('list') else None,
        n_list_atoms=int(header.group('natoms')) if header.group('natoms') else None,
        fermi_energy=float(fermi.group('fermi')),
        indices=indices,
        energies=table[:, 1],
        occupations=table[:, 2],
        components=components,
        weights=weights,
    )


def find_pdos_files(directory: str | os.PathLike) -> tuple[dict[str, ProjectedDOS], dict[int, ProjectedDOS]]:
    """Read every ``*.pdos`` of a run directory: ``(by kind name, by LDOS list index)``.

    :raises PDOSFormatError: from any file (spin-polarised ones included).
    """
    kinds, lists = {}, {}
    for path in sorted(Path(directory).glob('*.pdos')):
        pdos = read_pdos(path)
        if pdos.kind is not None:
            kinds[pdos.kind] = pdos
        else:
            lists[pdos.list_index] = pdos
    return kinds, lists


def _window_rows(pdos: ProjectedDOS, mo_indices: np.ndarray) -> np.ndarray:
    mo_indices = np.asarray(mo_indices)
    rows = mo_indices - pdos.indices[0]
    if rows.size and (rows.min() < 0 or rows.max() >= pdos.indices.size):
        raise AOCountMismatchError(
            f'{pdos.path}: holds MOs {pdos.indices[0]}-{pdos.indices[-1]}, not all of {mo_indices.min()}-'
            f'{mo_indices.max()} (set &PDOS NLUMO -1 or large enough)'
        )
    return rows


def compare_with_pdos(
    populations: np.ndarray,
    mo_indices: np.ndarray,
    atom_kinds: Sequence[str],
    pdos_by_kind: dict[str, ProjectedDOS],
    energies: np.ndarray | None = None,
) -> dict[str, float]:
    """Largest |our Löwdin weight - CP2K's PDOS weight| per kind over the window's orbitals.

    :param populations: ``(n_atoms, n_mo)`` Löwdin populations (``atom_populations``).
    :param mo_indices: CP2K's 1-based indices of the window's orbitals.
    :param atom_kinds: kind name of each atom (the element symbol when the input names kinds by element).
    :param energies: optionally the window's energies (Hartree), checked against the PDOS file's.
    :raises AOCountMismatchError: a kind with no atom, or a PDOS file lacking some orbitals of the window or
        listing other energies (a file of another run).
    """
    atom_kinds = np.asarray(atom_kinds).astype(str)
    deviations = {}
    for kind, pdos in pdos_by_kind.items():
        mask = atom_kinds == kind
        if not mask.any():
            raise AOCountMismatchError(f'{pdos.path}: kind {kind!r} matches no atom of the orbitals file')
        rows = _window_rows(pdos, mo_indices)
        if energies is not None and np.max(np.abs(pdos.energies[rows] - energies), initial=0) > 1e-5:
            raise AOCountMismatchError(f'{pdos.path}: its eigenvalues differ from the orbitals file: another run?')
        ours = populations[mask].sum(axis=0)
        deviations[kind] = float(np.max(np.abs(ours - pdos.total[rows]), initial=0.0))
    return deviations


_LDOS_SECTION = re.compile(r'&LDOS\b(.*?)&END\s+LDOS', re.S | re.I)
_LIST = re.compile(r'^\s*LIST\s+(.*)$', re.M | re.I)


def read_ldos_lists(input_text: str) -> list[list[int]]:
    """The 0-based atom indices of each ``&LDOS`` section of a CP2K input, in order (``LIST`` may repeat and
    use ``a..b`` ranges)."""
    result = []
    for section in _LDOS_SECTION.finditer(input_text):
        atoms: list[int] = []
        for line in _LIST.finditer(section.group(1)):
            for token in line.group(1).split('!')[0].split('#')[0].split():
                if '..' in token:
                    lo, hi = token.split('..')
                    atoms.extend(range(int(lo) - 1, int(hi)))
                else:
                    atoms.append(int(token) - 1)
        result.append(atoms)
    return result


def populations_from_ldos(
    list_pdos: Sequence[ProjectedDOS], atom_lists: Sequence[Sequence[int]], n_atoms: int, mo_indices=None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-atom Löwdin populations from one single-atom ``&LDOS`` list per atom, computed by CP2K itself.

    This is the route at scale for the ``lowdin`` IPR: CP2K already forms S^½ C (in parallel, on the cluster)
    for its PDOS, so the workstation only reads the files. It cannot give the ``paper`` IPR (signed sums).

    :returns: ``(populations (n_atoms, n_mo), mo_indices)``.
    :raises AOCountMismatchError: the lists are not one per atom covering every atom, or files disagree.
    """
    if len(list_pdos) != len(atom_lists):
        raise AOCountMismatchError(f'{len(list_pdos)} LDOS files for {len(atom_lists)} &LDOS sections in the input')
    atoms = [a[0] if len(a) == 1 else -1 for a in atom_lists]
    if -1 in atoms or sorted(atoms) != list(range(n_atoms)):
        raise AOCountMismatchError('the per-atom route needs exactly one single-atom &LDOS list per atom')
    reference = list_pdos[0].indices
    if mo_indices is None:
        mo_indices = reference
    populations = np.empty((n_atoms, len(mo_indices)))
    for pdos, atom in zip(list_pdos, atoms, strict=True):
        populations[atom] = pdos.total[_window_rows(pdos, mo_indices)]
    return populations, np.asarray(mo_indices)
