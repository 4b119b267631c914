"""Readers for CP2K's ``&DFT/&PRINT/&MO`` text output (``*.MOLog``).

These are plain functions on text or paths, with no AiiDA dependency, so they also serve users who ran
CP2K by hand. Energies are returned in Hartree as CP2K writes them (``HARTREE_TO_EV`` converts).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re

import numpy as np

from aiida_nanohetero.analysis.errors import AnalysisInputError, spin_error

__all__ = (
    'HARTREE_TO_EV',
    'MOCoefficients',
    'MOLogFormatError',
    'OrbitalEnergies',
    'ground_state_occupations',
    'read_mo_coefficients',
    'read_mo_eigenvalues',
)

#: Hartree in eV as CP2K 2023 converts it (CODATA 2006), so our eV values match the eV columns CP2K prints.
HARTREE_TO_EV = 27.21138386

_TABLE_HEADER = 'MO| EIGENVALUES AND OCCUPATION NUMBERS'
_ROW = re.compile(
    r'^\s*MO\|\s+(\d+)\s+(-?\d+\.\d+(?:[EeDd][-+]?\d+)?)\s+(-?\d+\.\d+(?:[EeDd][-+]?\d+)?)\s+(\d+\.\d+)\s*$'
)
_SUM = re.compile(r'^\s*MO\|\s+Sum:\s+(-?\d+\.\d+)')


class MOLogFormatError(AnalysisInputError):
    """A ``.MOLog`` file is truncated, corrupted or of an unsupported kind (for example spin-polarised)."""


def ground_state_occupations(indices: np.ndarray, occupations: np.ndarray, full: float = 2.0) -> np.ndarray:
    """Aufbau (T = 0) occupations of a closed-shell list of orbitals that may carry Fermi-smeared occupations.

    With ``&SMEAR`` CP2K writes fractional occupations around the Fermi level; the HOMO and LUMO (and every
    quantity defined from them) are those of the aufbau filling of the same orbitals: the lowest N/2 orbitals
    doubly occupied. N is counted from the list: the orbitals below its first index are taken as full (they lie
    far below the Fermi level when the list is a window around the gap). Integer occupations are returned as is.

    :raises MOLogFormatError: the electron count is not even (an open-shell system, or orbitals below the list
        that are not full).
    """
    occupations = np.asarray(occupations, dtype=np.float64)
    tol = 1e-6
    if np.all((occupations < tol) | (np.abs(occupations - full) < tol)):
        return occupations
    electrons = full * (int(indices[0]) - 1) + float(occupations.sum())
    n_occupied = electrons / full
    if abs(n_occupied - round(n_occupied)) > 0.02:
        raise MOLogFormatError(
            f'smeared occupations add up to {electrons:.4f} electrons (with orbitals 1-{int(indices[0]) - 1} full): '
            'not a closed-shell count, so the HOMO is not defined'
        )
    return np.where(np.asarray(indices) <= round(n_occupied), full, 0.0)


@dataclasses.dataclass(frozen=True)
class OrbitalEnergies:
    """Orbital energies and occupations of one closed-shell CP2K calculation.

    ``indices`` are CP2K's 1-based MO indices; ``energies`` in Hartree; ``occupations`` in electrons.
    """

    indices: np.ndarray
    energies: np.ndarray
    occupations: np.ndarray

    @property
    def n_electrons(self) -> float:
        return float(self.occupations.sum())

    @property
    def homo(self) -> int:
        """Position (0-based, in these arrays) of the highest occupied orbital."""
        occupied = np.flatnonzero(self.occupations > 1e-6)
        if occupied.size == 0:
            raise MOLogFormatError('no occupied orbital in the MO list: cannot locate the HOMO')
        return int(occupied[-1])

    @property
    def lumo(self) -> int:
        """Position (0-based) of the lowest unoccupied orbital; raises if the list holds no virtual orbital."""
        lumo = self.homo + 1
        if lumo >= self.energies.size:
            raise MOLogFormatError(
                'the MO list holds no unoccupied orbital: set SCF/ADDED_MOS (diagonalisation) so CP2K computes some'
            )
        return lumo

    @property
    def gap(self) -> float:
        """HOMO–LUMO gap in Hartree."""
        return float(self.energies[self.lumo] - self.energies[self.homo])


def read_mo_eigenvalues(source: str | os.PathLike | io.TextIOBase) -> OrbitalEnergies:
    """Read the eigenvalue table that ``&MO`` with ``EIGENVALUES`` and ``OCCUPATION_NUMBERS`` (and no
    ``EIGENVECTORS``) writes.

    If the file holds several tables (one per SCF step printed), the last complete one is returned.

    :raises MOLogFormatError: no complete table (truncated file), a spin-polarised file, or rows that do
        not add up to the ``Sum:`` line CP2K writes after each table.
    """
    text = _read_text(source)
    if 'ALPHA' in text or 'BETA' in text:
        raise spin_error(
            MOLogFormatError, 'spin-polarised (UKS) MO output is not supported: run closed-shell (no UKS/LSD)'
        )
    tables = text.split(_TABLE_HEADER)
    if len(tables) < 2:
        raise MOLogFormatError(f'no "{_TABLE_HEADER}" table found: was &MO printed with EIGENVALUES only?')
    for table in reversed(tables[1:]):
        rows = [m.groups() for m in map(_ROW.match, table.splitlines()) if m]
        total = next((float(m.group(1)) for m in map(_SUM.match, table.splitlines()) if m), None)
        if not rows or total is None:
            continue  # truncated table; try an earlier one
        data = np.array(rows, dtype=float)
        indices = data[:, 0].astype(int)
        if np.any(np.diff(indices) != 1):
            raise MOLogFormatError('MO indices are not consecutive: the file is corrupted')
        occupations = data[:, 3]
        if abs(occupations.sum() - total) > 1e-6 * max(1.0, total):
            raise MOLogFormatError(
                f'occupations add up to {occupations.sum():.6f}, but CP2K wrote Sum: {total:.6f}: corrupted file'
            )
        return OrbitalEnergies(
            indices=indices, energies=data[:, 1], occupations=ground_state_occupations(indices, occupations)
        )
    raise MOLogFormatError('the MO eigenvalue table is incomplete (no "Sum:" line): the file is truncated')


@dataclasses.dataclass(frozen=True)
class MOCoefficients:
    """MO coefficients of an orbital window of one closed-shell CP2K calculation, from ``&MO`` with
    ``EIGENVECTORS``.

    ``coefficients[mu, i]`` is the coefficient of atomic orbital ``mu`` (CP2K's order and normalisation, the
    same as ``&S_CSR_WRITE``) in MO ``indices[i]`` (1-based, CP2K's numbering). ``ao_atom[mu]`` is the 0-based
    index of the atom that AO belongs to, ``ao_labels[mu]`` CP2K's label (``2s``, ``4d-2``, ...), and
    ``atom_elements[a]`` the element symbol of atom ``a``, all taken from the row labels of the file.
    """

    indices: np.ndarray
    energies: np.ndarray
    occupations: np.ndarray
    coefficients: np.ndarray
    ao_atom: np.ndarray
    ao_labels: np.ndarray
    atom_elements: np.ndarray

    @property
    def n_ao(self) -> int:
        return int(self.coefficients.shape[0])

    @property
    def n_mo(self) -> int:
        return int(self.coefficients.shape[1])

    @property
    def n_atoms(self) -> int:
        return int(self.atom_elements.size)

    @property
    def energies_ev(self) -> np.ndarray:
        return self.energies * HARTREE_TO_EV


_EIGENVECTOR_TITLE = re.compile(r'^ ?MO\|\s+(?P<title>[A-Z ,]*EIGENVECTORS)\s*$', re.M)
_INDEX_LINE = re.compile(r'^ ?MO\|((?:[ \t]+\d+)+)[ \t]*$', re.M)
_FOOTER = re.compile(r'^ ?MO\|\s+(?:E\(Fermi\)|Band gap|Sum)', re.M)


def read_mo_coefficients(source: str | os.PathLike | io.TextIOBase) -> MOCoefficients:
    """Read the MO coefficients that ``&MO`` with ``EIGENVECTORS``, ``EIGENVALUES`` and ``OCCUPATION_NUMBERS``
    writes (optionally restricted by ``MO_INDEX_RANGE``).

    The file is parsed block by block with numpy (no Python loop per number). When it holds several
    printouts (one per SCF step), the last one is read; if that one is incomplete the file is reported as
    truncated rather than an earlier, unconverged printout being returned.

    :raises MOLogFormatError: no eigenvector printout, a truncated or corrupted one, a missing occupation or
        eigenvalue line, Cartesian instead of spherical AOs, or a spin-polarised (UKS) file (then the error is
        also a :class:`~aiida_nanohetero.analysis.errors.SpinPolarisedError`).
    """
    name = _source_name(source)
    text = _read_text(source)
    titles = list(_EIGENVECTOR_TITLE.finditer(text))
    if not titles:
        raise MOLogFormatError(f'{name}: no MO eigenvector printout: set &MO EIGENVECTORS (and EIGENVALUES)')
    title = titles[-1].group('title')
    if 'ALPHA' in title or 'BETA' in title or any('BETA' in t.group('title') for t in titles):
        raise spin_error(MOLogFormatError, f'{name}: spin-polarised (UKS) MO output is not supported: run closed-shell')
    if 'CARTESIAN' in title:
        raise MOLogFormatError(f'{name}: Cartesian eigenvectors; print spherical ones (drop &MO CARTESIAN)')
    if 'EIGENVALUES' not in title or 'OCCUPATION' not in title:
        raise MOLogFormatError(f'{name}: the printout lacks eigenvalues or occupations: set both in &MO')
    start = titles[-1].end()
    footer = _FOOTER.search(text, start)
    if footer is None:
        raise MOLogFormatError(f'{name}: the last MO printout has no closing E(Fermi) line: the file is truncated')
    section = text[start : footer.start()]
    headers = list(_INDEX_LINE.finditer(section))
    if not headers:
        raise MOLogFormatError(f'{name}: no MO index line in the last printout: the file is corrupted')

    indices, energies, occupations, blocks = [], [], [], []
    labels = None
    for k, header in enumerate(headers):
        cols = np.array(header.group(1).split(), dtype=np.int64)
        ncol = cols.size
        end = headers[k + 1].start() if k + 1 < len(headers) else len(section)
        tokens = section[header.end() : end].replace('MO|', ' ').split()
        head, body = tokens[: 2 * ncol], tokens[2 * ncol :]
        if len(head) < 2 * ncol or len(body) % (4 + ncol):
            raise MOLogFormatError(
                f'{name}: the block of MOs {cols[0]}-{cols[-1]} is incomplete or malformed: truncated or corrupted'
            )
        try:
            values = np.array(head, dtype=float).reshape(2, ncol)
            table = np.array(body, dtype=object).reshape(-1, 4 + ncol)
            block = table[:, 4:].astype(float)
        except ValueError as exc:
            raise MOLogFormatError(
                f'{name}: unreadable number in the block of MOs {cols[0]}-{cols[-1]} ({exc}): corrupted file or '
                'a field overflow (raise NDIGITS)'
            ) from None
        if labels is None:
            labels = table[:, :4]
        elif table.shape[0] != labels.shape[0] or np.any(table[:, :2] != labels[:, :2]):
            raise MOLogFormatError(
                f'{name}: the block of MOs {cols[0]}-{cols[-1]} has {table.shape[0]} AO rows, not the '
                f'{labels.shape[0]} of the first block: the file is truncated or corrupted'
            )
        indices.append(cols)
        energies.append(values[0])
        occupations.append(values[1])
        blocks.append(block)

    indices = np.concatenate(indices)
    if np.any(np.diff(indices) != 1):
        raise MOLogFormatError(f'{name}: MO indices are not consecutive: the file is corrupted')
    try:
        ao_index = labels[:, 0].astype(np.int64)
        ao_atom = labels[:, 1].astype(np.int64) - 1
    except ValueError:
        raise MOLogFormatError(f'{name}: AO rows do not start with AO and atom indices: corrupted file') from None
    if np.any(ao_index != np.arange(1, ao_index.size + 1)):
        raise MOLogFormatError(f'{name}: AO indices are not 1..{ao_index.size}: the file is corrupted')
    if ao_atom[0] != 0 or np.any(np.diff(ao_atom) < 0) or np.any(np.diff(ao_atom) > 1):
        raise MOLogFormatError(f'{name}: the atom indices of the AO rows are not contiguous from 1: corrupted')
    first = np.flatnonzero(np.r_[True, np.diff(ao_atom) > 0])
    elements = labels[first, 2].astype(str)
    if np.any(labels[:, 2] != elements[ao_atom]):
        raise MOLogFormatError(f'{name}: AO rows of one atom name different elements: the file is corrupted')
    return MOCoefficients(
        indices=indices,
        energies=np.concatenate(energies),
        occupations=ground_state_occupations(indices, np.concatenate(occupations)),
        coefficients=np.ascontiguousarray(np.hstack(blocks)),
        ao_atom=ao_atom,
        ao_labels=labels[:, 3].astype(str),
        atom_elements=elements,
    )


def _source_name(source) -> str:
    if isinstance(source, io.TextIOBase):
        return str(getattr(source, 'name', '<stream>'))
    return os.fspath(source)


def _read_text(source: str | os.PathLike | io.TextIOBase) -> str:
    if isinstance(source, io.TextIOBase):
        return source.read()
    with open(source, encoding='utf-8') as handle:
        return handle.read()
