"""Readers of CP2K's orbital, wavefunction, overlap and PDOS files, on real CP2K 2023.1 output
(``tests/data/cp2k``), and their refusal of truncated, corrupted, mismatched and spin-polarised files."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

from aiida_nanohetero.analysis import (
    AOCountMismatchError,
    MOLogFormatError,
    OverlapFormatError,
    OverlapNotSymmetricError,
    PDOSFormatError,
    SpinPolarisedError,
    WfnFormatError,
    read_ldos_lists,
    read_mo_coefficients,
    read_overlap_csr,
    read_pdos,
    read_restart_wfn,
)

DATA = pathlib.Path(__file__).parent / 'data' / 'cp2k'
CUBE = DATA / 'cs4pbbr6'
H2O = DATA / 'h2o'
CUBE_MOLOG = CUBE / 'cube-orbitals-1_0.MOLog'
CUBE_CSR = CUBE / 'cube-overlap-S_SPIN_1-1_0.csr'
H2O_MOLOG = H2O / 'h2o-orbitals-1_0.MOLog'
H2O_CSR = H2O / 'h2o-overlap_bin-S_SPIN_1-1_0.csr'

# DZVP-MOLOPT-SR-GTH: 2 s + 2 p (x3) + 1 d (x5) = 13 spherical AOs; Cs has one more s shell (14); H 2s+1p = 5.
AOS_PER_ELEMENT = {'Pb': 13, 'Br': 13, 'Cs': 14, 'O': 13, 'H': 5}
VALENCE = {'Pb': 4, 'Br': 7, 'Cs': 9, 'O': 6, 'H': 1}


def input_atoms(path: pathlib.Path) -> list[str]:
    text = path.read_text()
    block = re.search(r'&COORD\n(.*?)&END COORD', text, re.S).group(1)
    return [line.split()[0] for line in block.strip().splitlines()]


def mo_range(path: pathlib.Path) -> tuple[int, int]:
    lo, hi = re.search(r'MO_INDEX_RANGE\s+(\d+)\s+(\d+)', path.read_text()).groups()
    return int(lo), int(hi)


# --------------------------------------------------------------------------------------------------- .MOLog


@pytest.mark.parametrize(('case', 'molog', 'inp'), [(CUBE, CUBE_MOLOG, 'cube.inp'), (H2O, H2O_MOLOG, 'h2o.inp')])
def test_molog_matches_the_input(case, molog, inp):
    mos = read_mo_coefficients(molog)
    atoms = input_atoms(case / inp)
    assert list(mos.atom_elements) == atoms
    assert mos.n_ao == sum(AOS_PER_ELEMENT[a] for a in atoms)
    assert list(np.bincount(mos.ao_atom)) == [AOS_PER_ELEMENT[a] for a in atoms]
    lo, hi = mo_range(case / inp)
    assert list(mos.indices) == list(range(lo, hi + 1))
    n_occupied = sum(VALENCE[a] for a in atoms) // 2
    assert np.array_equal(mos.occupations, np.where(mos.indices <= n_occupied, 2.0, 0.0))
    assert np.all(np.diff(mos.energies) >= 0)
    assert mos.ao_labels[0] == '2s' and mos.ao_labels[8] == '4d-2'


@pytest.mark.parametrize(('molog', 'csr'), [(CUBE_MOLOG, CUBE_CSR), (H2O_MOLOG, H2O_CSR)])
def test_orbitals_are_orthonormal_in_the_overlap_metric(molog, csr):
    """Two independent files of one run: C^T S C = 1 holds only if both are read right (order and values)."""
    mos = read_mo_coefficients(molog)
    overlap = read_overlap_csr(csr, n_ao=mos.n_ao)
    gram = mos.coefficients.T @ (overlap @ mos.coefficients)
    assert np.abs(gram - np.eye(mos.n_mo)).max() < 1e-8


def test_restart_wfn_agrees_with_molog():
    wfn = read_restart_wfn(CUBE / 'cube-RESTART.wfn')
    mos = read_mo_coefficients(CUBE_MOLOG)
    assert (wfn.n_atoms, wfn.n_ao, wfn.homo) == (mos.n_atoms, mos.n_ao, 41)
    assert np.array_equal(wfn.ao_atom, mos.ao_atom)
    window = mos.indices - 1
    # the MOLog has 12 decimals
    assert np.abs(wfn.coefficients[:, window] - mos.coefficients).max() < 1e-11
    assert np.abs(wfn.eigenvalues[window] - mos.energies).max() < 1e-11
    assert np.array_equal(wfn.occupations[window], mos.occupations)


def test_truncated_molog_is_refused(tmp_path):
    text = CUBE_MOLOG.read_text()
    for fraction in (0.1, 0.5, 0.93, 0.999):
        path = tmp_path / 'cut.MOLog'
        path.write_text(text[: int(len(text) * fraction)])
        with pytest.raises(MOLogFormatError, match=r'truncated|incomplete'):
            read_mo_coefficients(path)


def test_corrupted_molog_is_refused(tmp_path):
    lines = CUBE_MOLOG.read_text().splitlines(keepends=True)
    row = next(i for i, line in enumerate(lines) if line.startswith(' MO|   20 '))
    path = tmp_path / 'bad.MOLog'
    path.write_text(''.join(lines[:row] + lines[row + 1 :]))  # one AO row lost
    with pytest.raises(MOLogFormatError):
        read_mo_coefficients(path)
    broken = list(lines)
    broken[row] = broken[row].replace('.', ',', 1).replace('0.0', '0x0', 1)
    path.write_text(''.join(broken))
    with pytest.raises(MOLogFormatError):
        read_mo_coefficients(path)
    path.write_text(''.join(lines).replace('SPHERICAL EIGENVECTORS', 'CARTESIAN EIGENVECTORS'))
    with pytest.raises(MOLogFormatError, match='Cartesian'):
        read_mo_coefficients(path)


def test_spin_polarised_files_are_refused_by_name():
    uks = DATA / 'h2o_uks'
    with pytest.raises(SpinPolarisedError):
        read_mo_coefficients(uks / 'h2ouks-orbitals-1_0.MOLog')
    with pytest.raises(MOLogFormatError):  # still the reader's own error class too
        read_mo_coefficients(uks / 'h2ouks-orbitals-1_0.MOLog')
    with pytest.raises(SpinPolarisedError):
        read_restart_wfn(uks / 'h2ouks-RESTART.wfn')
    with pytest.raises(WfnFormatError):
        read_restart_wfn(uks / 'h2ouks-RESTART.wfn')
    with pytest.raises(SpinPolarisedError):
        read_pdos(uks / 'h2ouks-pdos-ALPHA_k1-1.pdos')


# ------------------------------------------------------------------------------------------------------ .wfn


def test_truncated_or_corrupted_wfn_is_refused(tmp_path):
    raw = (CUBE / 'cube-RESTART.wfn').read_bytes()
    path = tmp_path / 'x.wfn'
    for cut in (10, 100, len(raw) // 2, len(raw) - 4):
        path.write_bytes(raw[:cut])
        with pytest.raises(WfnFormatError):
            read_restart_wfn(path)
    damaged = bytearray(raw)
    damaged[-4] ^= 0xFF  # last record marker
    path.write_bytes(bytes(damaged))
    with pytest.raises(WfnFormatError, match='corrupted'):
        read_restart_wfn(path)


# ------------------------------------------------------------------------------------------------------ .csr


def test_binary_and_text_overlap_agree():
    binary = read_overlap_csr(H2O_CSR)
    text = read_overlap_csr(DATA / 'h2o_text' / 'h2otxt-overlap_txt-S_SPIN_1-1_0.csr')
    assert binary.shape == text.shape == (23, 23)
    # the text form has 14 significant digits and drops |S_ij| < 1e-10
    assert abs(binary - text).max() < 1e-12
    assert np.allclose(binary.diagonal(), 1.0)  # CP2K's AOs are normalised


def test_upper_triangular_overlap_is_symmetrised():
    overlap = read_overlap_csr(CUBE_CSR)
    assert overlap.shape == (147, 147)
    assert abs(overlap - overlap.T).max() == 0
    assert np.linalg.eigvalsh(overlap.toarray()).min() > 0


def test_broken_overlap_files_are_refused(tmp_path):
    raw = CUBE_CSR.read_bytes()
    path = tmp_path / 's.csr'
    path.write_bytes(raw[:-5])
    with pytest.raises(OverlapFormatError, match='truncated'):
        read_overlap_csr(path)
    path.write_bytes(raw[: 24 * 1000])  # whole records, later rows lost: diagonal elements missing
    with pytest.raises((OverlapFormatError, AOCountMismatchError)):
        read_overlap_csr(path, n_ao=147)
    path.write_bytes(raw[: 24 * 1000])
    with pytest.raises(OverlapFormatError, match='diagonal'):
        read_overlap_csr(path)
    text = (DATA / 'h2o_text' / 'h2otxt-overlap_txt-S_SPIN_1-1_0.csr').read_text()
    path.write_text(text[: len(text) // 2].rsplit(' ', 1)[0])
    with pytest.raises(OverlapFormatError):
        read_overlap_csr(path)


def test_asymmetric_full_overlap_is_refused(tmp_path):
    data = np.fromfile(H2O_CSR, dtype=[('h', '<i4'), ('r', '<i4'), ('c', '<i4'), ('v', '<f8'), ('t', '<i4')])
    k = np.flatnonzero((data['r'] == 1) & (data['c'] == 2))[0]
    data['v'][k] += 0.01
    path = tmp_path / 's.csr'
    data.tofile(path)
    with pytest.raises(OverlapNotSymmetricError):
        read_overlap_csr(path)


def test_ao_count_mismatch_between_files_is_refused():
    mos = read_mo_coefficients(H2O_MOLOG)
    with pytest.raises(AOCountMismatchError, match='147'):
        read_overlap_csr(CUBE_CSR, n_ao=mos.n_ao)


# ----------------------------------------------------------------------------------------------------- .pdos


def test_pdos_files_match_the_run():
    mos = read_mo_coefficients(CUBE_MOLOG)
    kinds = [read_pdos(CUBE / f'cube-pdos-k{k}-1.pdos') for k in (1, 2, 3)]
    assert [p.kind for p in kinds] == ['Pb', 'Br', 'Cs']  # &KIND order of the input
    assert kinds[0].components == ['s', 'py', 'pz', 'px', 'd-2', 'd-1', 'd0', 'd+1', 'd+2']
    # NLUMO -1: every orbital the basis spans
    assert kinds[0].indices[-1] == mos.n_ao
    window = mos.indices - 1
    assert np.abs(kinds[0].energies[window] - mos.energies).max() < 1e-6  # 6 decimals in the .pdos
    # the kinds share out each orbital (weight outside the projection is below the 8-decimal rounding)
    total = sum(p.total for p in kinds)
    assert np.abs(total - 1).max() < 1e-5
    lists = [read_pdos(CUBE / f'cube-pdos-list{i}-1.pdos') for i in (1, 2)]
    assert [p.n_list_atoms for p in lists] == [len(a) for a in read_ldos_lists((CUBE / 'cube.inp').read_text())]


def test_ldos_lists_from_input():
    assert read_ldos_lists((CUBE / 'cube.inp').read_text()) == [list(range(7)), [7, 8, 9, 10]]
    assert read_ldos_lists('&LDOS\n LIST 1..3 7\n LIST 9\n&END LDOS\n') == [[0, 1, 2, 6, 8]]


def test_broken_pdos_is_refused(tmp_path):
    text = (CUBE / 'cube-pdos-k1-1.pdos').read_text()
    path = tmp_path / 'x-k1-1.pdos'
    path.write_text(text[: len(text) // 2])
    with pytest.raises(PDOSFormatError, match='truncated'):
        read_pdos(path)
    path.write_text(text[: len(text) // 2].rsplit('\n', 1)[0][:-30] + '\n')
    with pytest.raises(PDOSFormatError):
        read_pdos(path)
    path.write_text('\n'.join(text.splitlines()[2:]) + '\n')
    with pytest.raises(PDOSFormatError, match='header'):
        read_pdos(path)
