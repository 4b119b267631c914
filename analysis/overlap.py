"""Reader for the sparse overlap matrix CP2K writes with ``&DFT/&PRINT/&S_CSR_WRITE``.

Two forms, both in CP2K's AO order and normalisation (the order of the MO coefficients):

* ``BINARY``: Fortran unformatted sequential, one record per non-zero, each ``int32 row, int32 col,
  float64 value`` (1-based), framed by 4-byte record markers (16);
* text: one line per non-zero, ``row col value``.

With ``UPPER_TRIANGULAR`` only ``row <= col`` is written; otherwise the full matrix. ``THRESHOLD`` drops
small elements (the binary form without it keeps explicit zeros).
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from aiida_nanohetero.analysis.errors import AOCountMismatchError, OverlapFormatError, OverlapNotSymmetricError

__all__ = ('read_overlap_csr',)

_BINARY = np.dtype([('head', '<i4'), ('row', '<i4'), ('col', '<i4'), ('value', '<f8'), ('tail', '<i4')])


def read_overlap_csr(path: str | os.PathLike, n_ao: int | None = None, symmetry_tol: float = 1e-8) -> sp.csr_array:
    """Read an ``&S_CSR_WRITE`` file (binary or text form, detected from the content) and return the full,
    symmetric overlap matrix as a ``scipy.sparse.csr_array`` (float64, 0-based).

    :param n_ao: the number of AOs expected (for example from the ``.MOLog``); a different size raises.
    :param symmetry_tol: largest |S_ij - S_ji| accepted when both triangles are in the file.
    :raises OverlapFormatError: truncated or corrupted file, indices out of range, a missing or non-positive
        diagonal element.
    :raises OverlapNotSymmetricError: both triangles present and not equal within ``symmetry_tol``.
    :raises AOCountMismatchError: the matrix size differs from ``n_ao``.
    """
    name = os.fspath(path)
    size = os.path.getsize(name)
    if size == 0:
        raise OverlapFormatError(f'{name}: empty overlap file')
    with open(name, 'rb') as handle:
        first = handle.read(4)
    if len(first) == 4 and int(np.frombuffer(first, '<i4')[0]) == 16:
        rows, cols, values = _read_binary(name, size)
    else:
        rows, cols, values = _read_text(name)
    return _assemble(name, rows, cols, values, n_ao, symmetry_tol)


def _read_binary(name: str, size: int):
    if size % _BINARY.itemsize:
        raise OverlapFormatError(
            f'{name}: {size} bytes is not a whole number of {_BINARY.itemsize}-byte records: the file is truncated'
        )
    data = np.memmap(name, dtype=_BINARY, mode='r')
    if np.any(data['head'] != 16) or np.any(data['tail'] != 16):
        raise OverlapFormatError(f'{name}: bad Fortran record markers: corrupted file (or not an S_CSR_WRITE file)')
    rows = np.array(data['row'], dtype=np.int32)
    cols = np.array(data['col'], dtype=np.int32)
    values = np.array(data['value'], dtype=np.float64)
    del data
    return rows, cols, values


def _read_text(name: str):
    import pandas as pd

    try:
        frame = pd.read_csv(
            name,
            sep=r'\s+',
            header=None,
            names=['row', 'col', 'value'],
            dtype={'row': np.float64, 'col': np.float64, 'value': np.float64},
            engine='c',
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise OverlapFormatError(f'{name}: not a readable S_CSR_WRITE text file ({exc}): corrupted') from None
    data = frame.to_numpy()
    if data.size == 0 or np.isnan(data).any():
        raise OverlapFormatError(f'{name}: incomplete lines (fewer than 3 numbers): the file is truncated or corrupted')
    rows, cols = data[:, 0], data[:, 1]
    if np.any(rows != np.round(rows)) or np.any(cols != np.round(cols)):
        raise OverlapFormatError(f'{name}: non-integer row or column index: corrupted file')
    return rows.astype(np.int32), cols.astype(np.int32), np.ascontiguousarray(data[:, 2])


def _assemble(name, rows, cols, values, n_ao, symmetry_tol) -> sp.csr_array:
    if rows.size == 0:
        raise OverlapFormatError(f'{name}: no matrix elements')
    if rows.min() < 1 or cols.min() < 1:
        raise OverlapFormatError(f'{name}: row or column index below 1: corrupted file')
    if not np.all(np.isfinite(values)):
        raise OverlapFormatError(f'{name}: non-finite matrix element: corrupted file')
    n = int(max(rows.max(), cols.max()))
    if n_ao is not None and n != n_ao:
        raise AOCountMismatchError(f'{name}: the overlap matrix is {n} x {n}, but the orbitals have {n_ao} AOs')
    rows -= 1
    cols -= 1
    lower = rows > cols
    upper_only = not lower.any()
    if upper_only:
        off = rows != cols
        rows, cols, values = (
            np.concatenate((rows, cols[off])),
            np.concatenate((cols, rows[off])),
            np.concatenate((values, values[off])),
        )
    matrix = sp.csr_array((values, (rows, cols)), shape=(n, n))
    matrix.sum_duplicates()
    if matrix.nnz != rows.size:
        raise OverlapFormatError(f'{name}: duplicate matrix elements: corrupted file')
    diagonal = matrix.diagonal()
    if np.any(diagonal <= 0):
        missing = int(np.count_nonzero(diagonal <= 0))
        raise OverlapFormatError(
            f'{name}: {missing} diagonal elements missing or not positive: the file is truncated or corrupted'
        )
    if not upper_only:
        asym = abs(matrix - matrix.T)
        worst = float(asym.max()) if asym.nnz else 0.0
        if worst > symmetry_tol:
            raise OverlapNotSymmetricError(
                f'{name}: the overlap matrix is not symmetric (max |S_ij - S_ji| = {worst:.3g})'
            )
    return matrix
