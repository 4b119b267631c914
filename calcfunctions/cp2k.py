"""Calcfunctions around CP2K calculations: preparing the model's cell and reading the orbitals it printed."""

from __future__ import annotations

import fnmatch

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_nanohetero.analysis.molog import HARTREE_TO_EV, OrbitalEnergies, read_mo_coefficients, read_mo_eigenvalues

__all__ = (
    'MOLOG_PATTERN',
    'in_cubic_box',
    'parse_orbital_energies',
    'place_in_cubic_box',
    'read_orbital_energies',
    'retrieved_file',
)

#: The ``&MO`` output file of a CP2K calculation (``<project>-<FILENAME>-1_0.MOLog``).
MOLOG_PATTERN = '*.MOLog'


def retrieved_file(retrieved: orm.FolderData, pattern: str) -> str:
    """The name of the one file of a retrieved folder that matches ``pattern``; raises if none or several do."""
    names = fnmatch.filter(retrieved.base.repository.list_object_names(), pattern)
    if len(names) != 1:
        raise ValueError(f'expected one {pattern} file in the retrieved folder, found {names or "none"}')
    return names[0]


def in_cubic_box(atoms, vacuum: float):
    """A copy of ``atoms`` centred in a cubic, non-periodic cell with ``vacuum`` Å between atoms and faces."""
    if vacuum <= 0:
        raise ValueError(f'vacuum must be a positive length in Å, got {vacuum}')
    atoms = atoms.copy()
    positions = atoms.get_positions()
    extent = positions.max(axis=0) - positions.min(axis=0)
    side = float(extent.max() + 2 * vacuum)
    atoms.set_cell([side, side, side])
    atoms.set_pbc(False)
    atoms.translate(0.5 * side - 0.5 * (positions.max(axis=0) + positions.min(axis=0)))
    return atoms


@calcfunction
def place_in_cubic_box(structure: orm.StructureData, vacuum: orm.Float) -> orm.StructureData:
    """The model centred in a cubic, non-periodic cell with at least ``vacuum`` Å between atoms and faces.

    A cubic cell is what CP2K's WAVELET Poisson solver for isolated systems requires.
    """
    boxed = orm.StructureData(ase=in_cubic_box(structure.get_ase(), vacuum.value))
    boxed.pbc = (False, False, False)
    return boxed


def read_orbital_energies(text: str) -> OrbitalEnergies:
    """Orbital energies from either form of ``.MOLog``: the eigenvalue table, or the blocks with eigenvectors."""
    import io

    if 'EIGENVECTORS' in text:
        window = read_mo_coefficients(io.StringIO(text))
        return OrbitalEnergies(indices=window.indices, energies=window.energies, occupations=window.occupations)
    return read_mo_eigenvalues(io.StringIO(text))


@calcfunction
def parse_orbital_energies(retrieved: orm.FolderData) -> orm.ArrayData:
    """Orbital energies (eV) and occupations from the ``.MOLog`` file of a CP2K calculation's retrieved folder.

    Arrays: ``indices`` (CP2K's 1-based MO indices), ``energies`` (eV), ``occupations`` (electrons).
    Attributes: ``n_electrons``, ``homo_index`` and ``lumo_index`` (MO indices), ``homo_ev``, ``lumo_ev``,
    ``gap_ev``, ``source_file``: all queryable with the QueryBuilder.
    """
    name = retrieved_file(retrieved, MOLOG_PATTERN)
    text = retrieved.base.repository.get_object_content(name)
    orbitals = read_orbital_energies(text)
    energies = orbitals.energies * HARTREE_TO_EV
    node = orm.ArrayData()
    node.set_array('indices', orbitals.indices.astype(np.int64))
    node.set_array('energies', energies)
    node.set_array('occupations', orbitals.occupations)
    homo, lumo = orbitals.homo, orbitals.lumo
    node.base.attributes.set_many(
        {
            'energy_units': 'eV',
            'n_electrons': orbitals.n_electrons,  # in the printed orbitals (all of them unless a window)
            'window': bool('EIGENVECTORS' in text),
            'n_orbitals': int(orbitals.indices.size),
            'homo_index': int(orbitals.indices[homo]),
            'lumo_index': int(orbitals.indices[lumo]),
            'homo_ev': float(energies[homo]),
            'lumo_ev': float(energies[lumo]),
            'gap_ev': float(energies[lumo] - energies[homo]),
            'source_file': name,
        }
    )
    return node
