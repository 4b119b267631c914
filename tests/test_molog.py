"""The eigenvalue-table reader: correct on real CP2K text, loud on broken files."""

from __future__ import annotations

import io

import numpy as np
import pytest

from aiida_nanohetero.analysis.molog import HARTREE_TO_EV, MOLogFormatError, read_mo_eigenvalues

# Written by CP2K 2023.1 (&MO EIGENVALUES OCCUPATION_NUMBERS, NDIGITS 12) for H2O, PBE, DZVP-MOLOPT-SR-GTH.
H2O = """
 MO| EIGENVALUES AND OCCUPATION NUMBERS
 MO|
 MO|  Index      Eigenvalue [a.u.]        Eigenvalue [eV]             Occupation
 MO|      1        -0.933871059599       -25.411923875285         2.000000000000
 MO|      2        -0.485692803799       -13.216373320536         2.000000000000
 MO|      3        -0.340727402560        -9.271664141505         2.000000000000
 MO|      4        -0.264854098255        -7.207046533600         2.000000000000
 MO|      5         0.131074252257         3.566711791886         0.000000000000
 MO|      6         0.155402070013         4.228705379214         0.000000000000
 MO| Sum:                                                         8.000000000000
 MO| E(Fermi):     -0.264854098255 a.u.   -7.207046533600 eV
 MO| Band gap:      0.395928350512 a.u.   10.773758325486 eV
"""


def test_reads_water():
    orbitals = read_mo_eigenvalues(io.StringIO(H2O))
    assert list(orbitals.indices) == [1, 2, 3, 4, 5, 6]
    assert orbitals.n_electrons == 8.0
    assert (orbitals.homo, orbitals.lumo) == (3, 4)
    # CP2K's own eV column and band-gap line agree with our conversion
    assert orbitals.energies[0] * HARTREE_TO_EV == pytest.approx(-25.411923875285, abs=1e-8)
    assert orbitals.gap == pytest.approx(0.395928350512, abs=1e-11)


def test_reads_the_last_of_several_tables():
    later = H2O.replace('-0.933871059599', '-0.900000000000')
    orbitals = read_mo_eigenvalues(io.StringIO(H2O + later))
    assert orbitals.energies[0] == pytest.approx(-0.9)


def test_truncated_file_is_detected():
    truncated = H2O[: H2O.index(' MO|      5')]
    with pytest.raises(MOLogFormatError, match='truncated'):
        read_mo_eigenvalues(io.StringIO(truncated))


def test_truncated_last_table_falls_back_to_the_complete_one():
    truncated = H2O + H2O[: H2O.index(' MO|      3')]
    orbitals = read_mo_eigenvalues(io.StringIO(truncated))
    assert orbitals.indices.size == 6


def test_corrupted_occupations_are_detected():
    corrupted = H2O.replace(' 2.000000000000\n MO|      2', ' 1.000000000000\n MO|      2')
    with pytest.raises(MOLogFormatError, match=r'occupations add up to 7\.000000'):
        read_mo_eigenvalues(io.StringIO(corrupted))


def test_missing_row_is_detected():
    corrupted = '\n'.join(line for line in H2O.splitlines() if not line.startswith(' MO|      3'))
    with pytest.raises(MOLogFormatError, match='not consecutive'):
        read_mo_eigenvalues(io.StringIO(corrupted))


def test_spin_polarised_output_is_refused():
    uks = H2O.replace('MO| EIGENVALUES AND OCCUPATION NUMBERS', 'MO| ALPHA EIGENVALUES AND OCCUPATION NUMBERS')
    with pytest.raises(MOLogFormatError, match='spin-polarised'):
        read_mo_eigenvalues(io.StringIO(uks))


def test_no_virtual_orbitals_is_explained():
    occupied_only = '\n'.join(line for line in H2O.splitlines() if not line.startswith((' MO|      5', ' MO|      6')))
    orbitals = read_mo_eigenvalues(io.StringIO(occupied_only))
    with pytest.raises(MOLogFormatError, match='ADDED_MOS'):
        _ = orbitals.gap
    assert np.all(orbitals.occupations == 2.0)


def test_smeared_occupations_give_the_aufbau_homo():
    """Fermi-Dirac smearing (the SCF handler's last resort) writes fractional occupations around the gap: the
    HOMO/LUMO are those of the T = 0 filling of the same orbitals."""
    import numpy as np

    from aiida_nanohetero.analysis.molog import MOLogFormatError, ground_state_occupations

    indices = np.arange(11, 17)  # orbitals 1-10 below the window are full: 20 electrons there
    smeared = np.array([2.0, 1.999, 1.95, 0.04, 0.011, 0.0])  # 6.0 electrons in the window: 26 in all
    np.testing.assert_array_equal(ground_state_occupations(indices, smeared), [2, 2, 2, 0, 0, 0])
    integer = np.array([2.0, 2.0, 0.0, 0.0])
    assert ground_state_occupations(np.arange(1, 5), integer) is not None
    np.testing.assert_array_equal(ground_state_occupations(np.arange(1, 5), integer), integer)
    with pytest.raises(MOLogFormatError, match='closed-shell'):
        ground_state_occupations(indices, np.array([2.0, 1.5, 0.5, 0.5, 0.0, 0.0]))
