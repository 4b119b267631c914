"""Orbital analysis as provenance-tracked calcfunctions: nodes in, new nodes out.

The numbers come from the plain functions of :mod:`aiida_nanohetero.analysis`; these wrappers only read the
retrieved files, call them and store the results (arrays in ``ArrayData``, the summary in a ``Dict``):

* :func:`parse_orbitals` — retrieved folder -> orbitals of the window (energies, occupations, coefficients);
* :func:`compute_ipr` — orbitals + overlap (+ the builders' labels) -> IPR, element and domain contributions;
* :func:`summarise_model` — IPR node -> HOMO/LUMO, IPR-filtered band edges, gaps, edge domains, alignment.
"""

from __future__ import annotations

import io

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_nanohetero.analysis import (
    IPR_METHODS,
    analyse_orbitals,
    read_mo_coefficients,
    read_overlap_csr,
    summarise_orbitals,
)
from aiida_nanohetero.calcfunctions.cp2k import retrieved_file

__all__ = ('INTERFACE_DOMAIN', 'atom_domain_names', 'compute_ipr', 'parse_orbitals', 'summarise_model')

INTERFACE_DOMAIN = 'interface'


def atom_domain_names(labels: orm.ArrayData | None, n_atoms: int) -> np.ndarray:
    """Per-atom domain names from the builders' labels; atoms of the interface layer form their own domain."""
    if labels is None:
        return np.array(['model'] * n_atoms)
    codes = labels.get_array('domain')
    names = {int(code): name for name, code in labels.base.attributes.get('domain_codes', {}).items()}
    domains = np.array([names.get(int(code), f'domain{int(code)}') for code in codes], dtype=object)
    if 'interface' in labels.get_arraynames():
        domains[labels.get_array('interface').astype(bool)] = INTERFACE_DOMAIN
    if domains.size != n_atoms:
        raise ValueError(f'the labels describe {domains.size} atoms but the orbitals {n_atoms}')
    return domains.astype(str)


@calcfunction
def parse_orbitals(retrieved: orm.FolderData) -> orm.ArrayData:
    """The orbital window printed by ``&MO`` with eigenvectors: energies (eV), occupations, MO coefficients.

    Arrays: ``indices``, ``energies`` (eV), ``occupations``, ``coefficients`` (n_AO x n_MO, CP2K's AO order),
    ``ao_atom`` (0-based atom of each AO), ``atom_elements``. Attributes: ``homo_index``, ``lumo_index``,
    ``homo_ev``, ``lumo_ev``, ``gap_ev``, ``n_ao``, ``n_atoms``, ``source_file``.
    """
    name = retrieved_file(retrieved, '*.MOLog')
    window = read_mo_coefficients(io.StringIO(retrieved.base.repository.get_object_content(name)))
    energies = window.energies_ev
    occupied = np.flatnonzero(window.occupations > 1e-6)
    if occupied.size == 0 or occupied[-1] + 1 >= energies.size:
        raise ValueError(f'the orbital window {window.indices[0]}-{window.indices[-1]} does not contain HOMO and LUMO')
    homo, lumo = int(occupied[-1]), int(occupied[-1]) + 1
    node = orm.ArrayData()
    node.set_array('indices', window.indices.astype(np.int64))
    node.set_array('energies', energies)
    node.set_array('occupations', window.occupations)
    node.set_array('coefficients', window.coefficients)
    node.set_array('ao_atom', window.ao_atom.astype(np.int64))
    node.set_array('atom_elements', np.asarray(window.atom_elements, dtype=str))
    node.base.attributes.set_many(
        {
            'energy_units': 'eV',
            'homo_index': int(window.indices[homo]),
            'lumo_index': int(window.indices[lumo]),
            'homo_ev': float(energies[homo]),
            'lumo_ev': float(energies[lumo]),
            'gap_ev': float(energies[lumo] - energies[homo]),
            'n_ao': window.n_ao,
            'n_atoms': window.n_atoms,
            'n_orbitals': window.n_mo,
            'source_file': name,
        }
    )
    return node


@calcfunction
def compute_ipr(
    orbitals: orm.ArrayData,
    retrieved: orm.FolderData,
    method: orm.Str,
    labels: orm.ArrayData | None = None,
) -> orm.ArrayData:
    """IPR of every orbital of the window and the contribution of each element and domain (Löwdin populations).

    ``method``: ``paper`` (the authors' signed sums, the default), ``lowdin`` or ``mulliken``. Degenerate orbitals
    get a rotation-invariant IPR (``ipr``; ``ipr_raw`` is CP2K's arbitrary member) and are flagged.
    """
    if method.value not in IPR_METHODS:
        raise ValueError(f'unknown IPR method "{method.value}": choose one of {", ".join(IPR_METHODS)}')
    coefficients = orbitals.get_array('coefficients')
    overlap = read_overlap_csr_from(retrieved, coefficients.shape[0])
    elements = orbitals.get_array('atom_elements')
    result = analyse_orbitals(
        overlap,
        coefficients,
        orbitals.get_array('ao_atom'),
        orbitals.get_array('energies'),
        orbitals.get_array('occupations'),
        elements,
        indices=orbitals.get_array('indices'),
        atom_domains=atom_domain_names(labels, elements.size),
        method=method.value,
        energy_unit='ev',
    )
    node = orm.ArrayData()
    for name, array in result.arrays().items():
        node.set_array(name, array)
    node.base.attributes.set_many(
        {
            'method': result.method,
            'elements': list(result.elements),
            'domains': list(result.domains),
            'sqrt': {k: v for k, v in result.sqrt_info.items() if isinstance(v, (int, float, str, bool))},
        }
    )
    return node


def read_overlap_csr_from(retrieved: orm.FolderData, n_ao: int):
    """The overlap matrix of a retrieved folder (``&S_CSR_WRITE``), checked against the AO count."""
    import pathlib
    import tempfile

    name = retrieved_file(retrieved, '*.csr')
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / name
        path.write_bytes(retrieved.base.repository.get_object_content(name, mode='rb'))
        return read_overlap_csr(path, n_ao=n_ao)


@calcfunction
def summarise_model(ipr: orm.ArrayData, threshold: orm.Float) -> orm.Dict:
    """HOMO/LUMO, the band edges among states with IPR < ``threshold`` (0.03 in the seed), raw and filtered gaps,
    the domains of the edge states, the alignment class of a heterostructure and its interface in-gap states."""
    domains = ipr.base.attributes.get('domains')
    summary = summarise_orbitals(
        ipr.get_array('indices'),
        ipr.get_array('energies_ev'),
        ipr.get_array('occupations'),
        ipr.get_array('ipr'),
        domain_contributions=ipr.get_array('domain_contributions'),
        domains=domains,
        threshold=threshold.value,
        interface_domain=INTERFACE_DOMAIN,
        strict=False,
    )
    summary['ipr_method'] = ipr.base.attributes.get('method')
    summary['ipr_threshold'] = threshold.value
    return orm.Dict(summary)
