"""Reader for CP2K's binary wavefunction restart file (``<PROJECT>-RESTART.wfn``).

The file is Fortran unformatted sequential (4-byte record markers, int32 and float64, little-endian):
record 1 ``natom, nspin, nao, nset_max, nshell_max``; ``nset_info(natom)``; ``nshell_info(nset_max, natom)``;
``nso_info(nshell_max, nset_max, natom)``; then per spin ``nmo, homo, lfomo, nelectron``, one record
``eigenvalues(nmo), occupations(nmo)`` and ``nmo`` records of ``nao`` doubles (one MO each). Under OT it holds
only the occupied, non-canonical orbitals; after diagonalisation the canonical ones with the added MOs.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from aiida_nanohetero.analysis.errors import WfnFormatError, spin_error

__all__ = ('RestartWavefunction', 'read_restart_wfn')


@dataclasses.dataclass(frozen=True)
class RestartWavefunction:
    """Closed-shell content of a ``-RESTART.wfn`` file.

    ``coefficients`` is ``(nao, nmo)``, in CP2K's AO order; ``ao_atom`` (0-based) is derived from the basis
    information in the header (``nso_info``); ``homo`` and ``lfomo`` are CP2K's 1-based values.
    """

    n_atoms: int
    n_ao: int
    homo: int
    lfomo: int
    n_electrons: int
    eigenvalues: np.ndarray
    occupations: np.ndarray
    coefficients: np.ndarray
    ao_atom: np.ndarray

    @property
    def n_mo(self) -> int:
        return int(self.coefficients.shape[1])

    @property
    def indices(self) -> np.ndarray:
        return np.arange(1, self.n_mo + 1)


def read_restart_wfn(path: str | os.PathLike) -> RestartWavefunction:
    """Read a closed-shell ``-RESTART.wfn`` file.

    :raises WfnFormatError: bad record markers (not a CP2K restart file, wrong endianness), a truncated file,
        inconsistent header sizes, or a spin-polarised file (then also a ``SpinPolarisedError``).
    """
    name = os.fspath(path)
    raw = np.fromfile(name, dtype=np.uint8)
    pos = 0

    def record(dtype, count=None):
        nonlocal pos
        if pos + 4 > raw.size:
            raise WfnFormatError(f'{name}: ends after {pos} bytes, in the header: the file is truncated')
        length = int(raw[pos : pos + 4].view('<i4')[0])
        end = pos + 4 + length
        if length < 0 or end + 4 > raw.size:
            raise WfnFormatError(f'{name}: a header record runs past the end of the file: truncated or corrupted')
        if int(raw[end : end + 4].view('<i4')[0]) != length:
            raise WfnFormatError(f'{name}: mismatched Fortran record markers at byte {pos}: corrupted file')
        values = raw[pos + 4 : end].view(dtype)
        if count is not None and values.size != count:
            raise WfnFormatError(f'{name}: a header record holds {values.size} values, expected {count}: corrupted')
        pos = end + 4
        return values

    natom, nspin, nao, nset_max, nshell_max = (int(v) for v in record('<i4', 5))
    if not (0 < natom and nspin in (1, 2) and 0 < nao and 0 < nset_max and 0 < nshell_max):
        raise WfnFormatError(f'{name}: implausible header (natom={natom}, nspin={nspin}, nao={nao}): corrupted')
    if nspin == 2:
        raise spin_error(WfnFormatError, f'{name}: spin-polarised (UKS) wavefunction: only closed-shell is supported')
    record('<i4', natom)  # nset_info
    record('<i4', nset_max * natom)  # nshell_info
    nso = record('<i4', nshell_max * nset_max * natom).reshape(natom, nset_max * nshell_max)
    ao_per_atom = nso.sum(axis=1)
    if ao_per_atom.sum() != nao or np.any(ao_per_atom <= 0):
        raise WfnFormatError(f'{name}: basis info gives {ao_per_atom.sum()} AOs but the header says {nao}: corrupted')
    nmo, homo, lfomo, nelectron = (int(v) for v in record('<i4', 4))
    if not 0 < nmo <= nao:
        raise WfnFormatError(f'{name}: implausible number of MOs {nmo} for {nao} AOs: corrupted')
    eig_occ = record('<f8', 2 * nmo)
    mo_dtype = np.dtype([('head', '<i4'), ('c', '<f8', (nao,)), ('tail', '<i4')])
    available = (raw.size - pos) // mo_dtype.itemsize
    if available < nmo:
        raise WfnFormatError(f'{name}: holds {available} of {nmo} MO records: the file is truncated')
    if raw.size != pos + nmo * mo_dtype.itemsize:
        raise WfnFormatError(f'{name}: {raw.size - pos - nmo * mo_dtype.itemsize} bytes after the last MO: corrupted')
    mos = raw[pos:].view(mo_dtype)
    if np.any(mos['head'] != 8 * nao) or np.any(mos['tail'] != 8 * nao):
        raise WfnFormatError(f'{name}: MO records are not {nao} doubles each: corrupted file or AO count')
    return RestartWavefunction(
        n_atoms=natom,
        n_ao=nao,
        homo=homo,
        lfomo=lfomo,
        n_electrons=nelectron,
        eigenvalues=np.array(eig_occ[:nmo]),
        occupations=np.array(eig_occ[nmo:]),
        coefficients=np.ascontiguousarray(mos['c'].T),
        ao_atom=np.repeat(np.arange(natom), ao_per_atom),
    )
