"""Per-atom weights of molecular orbitals, inverse participation ratios and element/domain contributions.

Plain numpy/scipy functions, arrays in and arrays out, so AiiDA calcfunctions and the ``nanohetero analyse``
command call the same code.

Löwdin-orthogonalised coefficients ``C~ = S^½ C`` (columns of a closed-shell CP2K window, ``C^T S C = 1``)
give, per atom ``a`` and orbital ``i``:

* ``paper``: the signed sum ``P_ai = sum_{mu in a} C~_mu,i`` (what the authors' nano-qmflows ``workflow_ipr``
  computes), ``IPR_i = sum_a P_ai^4 / (sum_a P_ai^2)^2``;
* ``lowdin``: the Löwdin population ``w_ai = sum_{mu in a} C~_mu,i^2`` (``sum_a w_ai = 1``),
  ``IPR_i = sum_a w_ai^2``;
* ``mulliken`` (cheap, no S^½): ``q_ai = sum_{mu in a} C_mu,i (S C)_mu,i``, ``IPR_i = sum_a q_ai^2``.

All three are ``IPR_i = sum_a W_ai^2 / (sum_a W_ai)^2`` with an atomic weight ``W`` = ``P^2``, ``w`` or ``q``;
that is how they share one interface and one treatment of degenerate orbitals (see
:func:`invariant_weights`).

S^½ is applied to the window without forming S^½: route ``shift-invert`` (the default above 3,000 AOs: one
Cholesky factorisation of S + σ I, then a Lanczos process per orbital on (S + σ I)⁻¹, a few tens of triangular
solves with the whole window, float32 by default), or route ``chebyshev`` (a Chebyshev expansion of the square
root on the spectral interval of S, found by Lanczos, applied with sparse or dense products); or exactly by a
dense eigendecomposition (route ``dense``, small systems and reference).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from aiida_nanohetero.analysis.errors import (
    AOCountMismatchError,
    OverlapNotPositiveDefiniteError,
    OverlapNotSymmetricError,
    UnknownIPRMethodError,
)
from aiida_nanohetero.analysis.molog import HARTREE_TO_EV

__all__ = (
    'DEFAULT_DEGENERACY_TOL_EV',
    'DEFAULT_IPR_METHOD',
    'IPR_METHODS',
    'SQRT_ROUTES',
    'OrbitalAnalysis',
    'SqrtInfo',
    'analyse_orbitals',
    'apply_sqrt_overlap',
    'atom_populations',
    'atom_signed_sums',
    'atomic_weights',
    'degenerate_sets',
    'group_contributions',
    'invariant_weights',
    'ipr_from_weights',
    'mulliken_populations',
    'overlap_spectral_bounds',
)

#: The IPR definitions offered; ``paper`` is the authors' own (nano-qmflows ``workflow_ipr``).
IPR_METHODS = ('paper', 'lowdin', 'mulliken')
#: The default reproduces the seed: the authors computed the signed-sum IPR.
DEFAULT_IPR_METHOD = 'paper'
#: Ways to apply S^½ to the orbital window.
SQRT_ROUTES = ('auto', 'dense', 'chebyshev', 'shift-invert')
#: Orbitals closer in energy than this (eV, single linkage) form one degenerate set.
DEFAULT_DEGENERACY_TOL_EV = 1e-3

_DENSE_AUTO_MAX_AO = 3000
#: Default accuracy target of each route (relative error of each orbital of S^½ C, estimated or bounded).
_DEFAULT_TOL = {'chebyshev': 1e-10, 'shift-invert': {'double': 1e-10, 'single': 3e-7}}
#: Default shift of the ``shift-invert`` route, as a fraction of the largest eigenvalue of S (measured best on
#: DZVP-MOLOPT-SR overlaps of 4,214 AOs, κ = 760: 26 steps at λ_max/14, 32 at λ_max/25, 36 at λ_max/6).
_SHIFT_FRACTION = 1 / 14


def _check_method(method: str) -> None:
    if method not in IPR_METHODS:
        raise UnknownIPRMethodError(f'unknown IPR method {method!r}: choose one of {", ".join(IPR_METHODS)}')


# ---------------------------------------------------------------------------------------------------------------
# S^½ applied to a block of vectors
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SqrtInfo:
    """How S^½ was applied: the route, the spectral interval used (``shift-invert``: the extreme Ritz values),
    the degree (number of products of S with the block, or of solves with S + σ I), and the a-posteriori check
    ``max_i |‖S^½ x_i‖² - x_i^T S x_i| / x_i^T S x_i``; for ``shift-invert`` also the shift σ, the arithmetic
    of the factorisation and solves, and the Lanczos error estimate (relative, per orbital) at the stop."""

    route: str
    lambda_min: float
    lambda_max: float
    degree: int
    norm_error: float
    shift: float = 0.0
    precision: str = 'double'
    error_estimate: float = 0.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _as_overlap(overlap) -> sp.csr_array | np.ndarray:
    if sp.issparse(overlap):
        matrix = sp.csr_array(overlap, dtype=np.float64)
    else:
        matrix = np.asarray(overlap, dtype=np.float64)
        if matrix.ndim != 2:
            raise OverlapNotSymmetricError(f'the overlap matrix must be two-dimensional, got shape {matrix.shape}')
    if matrix.shape[0] != matrix.shape[1]:
        raise OverlapNotSymmetricError(f'the overlap matrix is not square: shape {matrix.shape}')
    return matrix


def _check_symmetric(matrix, tol: float = 1e-8) -> None:
    if sp.issparse(matrix):
        diff = abs(matrix - matrix.T)
        worst = float(diff.max()) if diff.nnz else 0.0
    else:
        worst = float(np.max(np.abs(matrix - matrix.T))) if matrix.size else 0.0
    if worst > tol:
        raise OverlapNotSymmetricError(f'the overlap matrix is not symmetric: max |S_ij - S_ji| = {worst:.3g}')


def overlap_spectral_bounds(overlap, rtol: float = 1e-3) -> tuple[float, float]:
    """Safe bounds ``(lo, hi)`` on the spectrum of the overlap matrix, from a few Lanczos steps (single
    vectors: cheap next to the block products), widened by the Ritz residuals and a margin.

    :raises OverlapNotPositiveDefiniteError: the smallest eigenvalue is not safely above zero.
    """
    matrix = _as_overlap(overlap)
    n = matrix.shape[0]
    if n <= 400 or not sp.issparse(matrix):
        dense = matrix.toarray() if sp.issparse(matrix) else matrix
        values = scipy.linalg.eigvalsh(dense) if n <= 4000 else None
        if values is not None:
            lo, hi = float(values[0]), float(values[-1])
            _check_pd(lo, hi)
            return lo * (1 - 1e-6), hi * (1 + 1e-6)
    rng = np.random.default_rng(12345)
    v0 = rng.standard_normal(n)
    op = scipy.sparse.linalg.aslinearoperator(matrix)
    hi_val, hi_vec = scipy.sparse.linalg.eigsh(op, k=1, which='LA', tol=rtol, v0=v0)
    hi_res = np.linalg.norm(matrix @ hi_vec[:, 0] - hi_val[0] * hi_vec[:, 0])
    hi = float(hi_val[0] + hi_res) * 1.01
    # smallest eigenvalue: largest of (hi - S), which Lanczos finds as fast as the largest of S
    shifted = scipy.sparse.linalg.LinearOperator((n, n), matvec=lambda x: hi * x - matrix @ x, dtype=np.float64)
    top, vec = scipy.sparse.linalg.eigsh(shifted, k=1, which='LA', tol=rtol * 1e-2, v0=v0, maxiter=20 * n)
    lo_ritz = hi - float(top[0])
    lo_res = np.linalg.norm(matrix @ vec[:, 0] - lo_ritz * vec[:, 0])
    _check_pd(lo_ritz - lo_res, hi)
    return (lo_ritz - lo_res) * 0.98, hi


def _check_pd(lo: float, hi: float) -> None:
    if not lo > 1e-10 * max(hi, 1.0):
        raise OverlapNotPositiveDefiniteError(
            f'the overlap matrix is not positive definite (smallest eigenvalue about {lo:.3g}, largest {hi:.3g}): '
            'S^½ is undefined; check that the file is the overlap of this run'
        )


def _chebyshev_sqrt_coefficients(lo: float, hi: float, tol: float) -> np.ndarray:
    """Chebyshev coefficients of sqrt on [lo, hi], truncated where the tail falls below ``tol * sqrt(lo)``."""
    kappa = hi / lo
    nodes = 1 << max(10, math.ceil(math.log2(8 * math.sqrt(kappa) * max(1.0, -math.log(tol)))) + 1)
    theta = np.pi * (np.arange(nodes) + 0.5) / nodes
    x = 0.5 * (hi - lo) * np.cos(theta) + 0.5 * (hi + lo)
    import scipy.fft

    coeffs = scipy.fft.dct(np.sqrt(x), type=2) / nodes
    coeffs[0] *= 0.5
    tail = np.cumsum(np.abs(coeffs)[::-1])[::-1]
    below = np.flatnonzero(tail < tol * math.sqrt(lo))
    degree = int(below[0]) if below.size else nodes - 1
    return coeffs[: max(degree, 1) + 1]


class _Product:
    """``S @ X`` for a block X: threaded sparse products over row slices, or dense BLAS."""

    def __init__(self, matrix, mode: str, threads: int):
        self.dense = mode == 'dense'
        if self.dense:
            self.matrix = matrix.toarray() if sp.issparse(matrix) else matrix
            self.parts = None
        else:
            matrix = matrix if sp.issparse(matrix) else sp.csr_array(matrix)
            n = matrix.shape[0]
            # balance row slices by non-zeros
            cuts = np.searchsorted(matrix.indptr, np.linspace(0, matrix.nnz, threads + 1)).clip(0, n)
            cuts[0], cuts[-1] = 0, n
            pairs = [(int(a), int(b)) for a, b in itertools.pairwise(cuts) if b > a]
            self.parts = [(slice(a, b), matrix[a:b]) for a, b in pairs]
            self.pool = ThreadPoolExecutor(len(self.parts)) if len(self.parts) > 1 else None

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self.dense:
            return self.matrix @ block
        if self.pool is None:
            return self.parts[0][1] @ block
        out = np.empty_like(block)

        def work(item):
            rows, part = item
            out[rows] = part @ block

        list(self.pool.map(work, self.parts))
        return out

    def close(self):
        if not self.dense and self.pool is not None:
            self.pool.shutdown()


def apply_sqrt_overlap(
    overlap,
    block: np.ndarray,
    *,
    route: str = 'auto',
    tol: float | None = None,
    bounds: tuple[float, float] | None = None,
    product: str = 'auto',
    threads: int | None = None,
    shift: float | None = None,
    precision: str = 'single',
    max_steps: int = 120,
) -> tuple[np.ndarray, SqrtInfo]:
    """Return ``(S^½ @ block, info)`` without forming S^½ (routes ``shift-invert``, ``chebyshev``) or exactly
    (route ``dense``).

    :param overlap: S, dense array or scipy sparse matrix (symmetric positive definite).
    :param block: ``(nao, k)`` array (the orbital window).
    :param route: ``dense`` (eigendecomposition, O(nao³)), ``shift-invert`` (one Cholesky factorisation,
        O(nao³/3), then a few tens of triangular solves with the block, O(steps · nao² · k)), ``chebyshev``
        (O(degree · nnz · k)), or ``auto`` (dense up to 3000 AOs, shift-invert above).
    :param tol: accuracy target, relative to each column of ``S^½ @ block``. ``chebyshev``: bound on the
        polynomial error on the spectrum (default 1e-10); ``shift-invert``: stopping threshold of the Lanczos
        error estimate (default 3e-7 in single precision, whose rounding floor is 3e-7 to 1e-6; 1e-10 in double).
    :param bounds: known spectral bounds of S (``chebyshev``: else found by Lanczos; ``shift-invert``: the upper
        one sets the default shift).
    :param product: how the Chebyshev route multiplies by S: ``sparse`` (threaded CSR), ``dense`` (BLAS), or
        ``auto`` (dense when more than 5 % of S is non-zero and it fits in 3 GB).
    :param shift: σ of the ``shift-invert`` route (default ``lambda_max / 14``).
    :param precision: arithmetic of the ``shift-invert`` factorisation and solves, ``single`` (float32, the
        default: 2.5x faster, orbitals accurate to about 1e-6) or ``double``.
    :param max_steps: most Lanczos steps of the ``shift-invert`` route.
    :raises OverlapNotPositiveDefiniteError, OverlapNotSymmetricError, UnknownIPRMethodError: bad S or route.
    :raises AOCountMismatchError: the block does not have as many rows as S.
    """
    if route not in SQRT_ROUTES:
        raise UnknownIPRMethodError(f'unknown S^½ route {route!r}: choose one of {", ".join(SQRT_ROUTES)}')
    if product not in ('auto', 'sparse', 'dense'):
        raise UnknownIPRMethodError(f'unknown product mode {product!r}: choose auto, sparse or dense')
    if precision not in ('single', 'double'):
        raise UnknownIPRMethodError(f'unknown precision {precision!r}: choose single or double')
    matrix = _as_overlap(overlap)
    block = np.asarray(block, dtype=np.float64)
    squeeze = block.ndim == 1
    if squeeze:
        block = block[:, None]
    n = matrix.shape[0]
    if block.shape[0] != n:
        raise AOCountMismatchError(f'the orbitals have {block.shape[0]} AO rows but the overlap matrix is {n} x {n}')
    _check_symmetric(matrix)
    if route == 'auto':
        route = 'dense' if n <= _DENSE_AUTO_MAX_AO else 'shift-invert'
    if route == 'dense':
        dense = matrix.toarray() if sp.issparse(matrix) else matrix
        values, vectors = scipy.linalg.eigh(dense)
        _check_pd(float(values[0]), float(values[-1]))
        result = vectors @ (np.sqrt(values)[:, None] * (vectors.T @ block))
        info = SqrtInfo('dense', float(values[0]), float(values[-1]), 0, _norm_error(result, block, matrix @ block))
        return (result[:, 0] if squeeze else result), info
    if route == 'shift-invert':
        if tol is None:
            tol = _DEFAULT_TOL['shift-invert'][precision]
        result, info = _sqrt_shift_invert(matrix, block, tol, bounds, shift, precision, max_steps)
        return (result[:, 0] if squeeze else result), info

    tol = _DEFAULT_TOL['chebyshev'] if tol is None else tol
    lo, hi = bounds if bounds is not None else overlap_spectral_bounds(matrix)
    _check_pd(lo, hi)
    coeffs = _chebyshev_sqrt_coefficients(lo, hi, tol)
    if product == 'auto':
        nnz = matrix.nnz if sp.issparse(matrix) else np.count_nonzero(matrix)
        product = 'dense' if nnz > 0.05 * n * n and 8 * n * n < 3e9 else 'sparse'
    apply_s = _Product(matrix, product, threads or os.cpu_count() or 1)
    try:
        alpha, beta = 2.0 / (hi - lo), (hi + lo) / (hi - lo)
        t_prev = block
        s_block = apply_s(block)
        t_cur = alpha * s_block - beta * block
        result = coeffs[0] * t_prev + coeffs[1] * t_cur
        for c in coeffs[2:]:
            t_next = apply_s(t_cur)
            t_next *= 2 * alpha
            t_next -= (2 * beta) * t_cur
            t_next -= t_prev
            result += c * t_next
            t_prev, t_cur = t_cur, t_next
    finally:
        apply_s.close()
    info = SqrtInfo('chebyshev', float(lo), float(hi), len(coeffs) - 1, _norm_error(result, block, s_block))
    return (result[:, 0] if squeeze else result), info


def _largest_eigenvalue(matrix, steps: int = 12) -> float:
    """The largest eigenvalue of S to a few per cent (it only sets the default shift): the Rayleigh quotient
    after a few power steps from a fixed random vector (cheap next to the factorisation)."""
    n = matrix.shape[0]
    if n <= 400:
        dense = matrix.toarray() if sp.issparse(matrix) else matrix
        return float(scipy.linalg.eigvalsh(dense, subset_by_index=[n - 1, n - 1])[0])
    vector = np.random.default_rng(12345).standard_normal(n)
    for _ in range(steps):
        vector = matrix @ (vector / np.linalg.norm(vector))
    image = matrix @ (vector / np.linalg.norm(vector))
    return float(np.dot(vector / np.linalg.norm(vector), image))


#: OpenBLAS's potrf crashes (segmentation fault, measured with scipy 1.17's bundled OpenBLAS 0.3.31) on a matrix
#: of 2 GiB or more; such a matrix is factorised by blocks of columns, each within the limit.
_POTRF_MAX_BYTES = 2**31 - 1
_CHOLESKY_BLOCK = 4096


def _shifted_cholesky(matrix, shift: float, dtype) -> np.ndarray:
    """Lower Cholesky factor of ``S + shift·I`` in ``dtype`` (a Fortran-ordered dense array; only its lower
    triangle is meaningful), factorised in place to hold one dense copy of S."""
    n = matrix.shape[0]
    dense = matrix.astype(dtype).toarray() if sp.issparse(matrix) else np.array(matrix, dtype=dtype, order='C')
    dense[np.diag_indices(n)] += shift
    single = dtype == np.float32
    potrf = scipy.linalg.lapack.spotrf if single else scipy.linalg.lapack.dpotrf
    trsm = scipy.linalg.blas.strsm if single else scipy.linalg.blas.dtrsm
    # S + shift·I is symmetric, so the C-ordered array read as Fortran-ordered (its transpose) is the same matrix
    factor = dense.T
    if dense.nbytes <= _POTRF_MAX_BYTES:
        factor, info = potrf(factor, lower=1, overwrite_a=1, clean=0)
    else:  # left-looking by blocks of columns: the same flops, in gemm, potrf and trsm calls on small blocks
        info = 0
        for j0 in range(0, n, _CHOLESKY_BLOCK):
            j1 = min(j0 + _CHOLESKY_BLOCK, n)
            if j0:
                factor[j0:, j0:j1] -= factor[j0:, :j0] @ factor[j0:j1, :j0].T
            diagonal, info = potrf(np.asfortranarray(factor[j0:j1, j0:j1]), lower=1, clean=1)
            if info:
                info += j0
                break
            factor[j0:j1, j0:j1] = diagonal
            if j1 < n:
                factor[j1:, j0:j1] = trsm(1.0, diagonal, factor[j1:, j0:j1], side=1, lower=1, trans_a=1)
    if info != 0:
        raise OverlapNotPositiveDefiniteError(
            f'the overlap matrix is not positive definite: S + {shift:.3g}·I has no Cholesky factorisation '
            f'(LAPACK potrf info {info}); S^½ is undefined; check that the file is the overlap of this run'
        )
    return factor


def _lanczos_sqrt_coefficients(alphas: np.ndarray, betas: np.ndarray, shift: float):
    """Coefficients ``y`` (k, m) of ``S^½ x ≈ ‖x‖ Q y`` from the Lanczos tridiagonals of ``(S + shift·I)⁻¹`` of
    k columns (``alphas`` (m, k), ``betas`` (m - 1, k)): ``y = V sqrt(1/Θ - shift) V^T e_1``; also the largest and
    smallest Ritz values ``θ`` over all columns.

    One small tridiagonal eigensolve per column (LAPACK stemr, no level-3 BLAS: batched dense eigensolvers of
    tiny matrices go through threaded BLAS, which under CPU contention costs up to 0.7 s per call here).
    """
    m, k = alphas.shape
    coefficients = np.empty((k, m))
    theta_max, theta_min = -np.inf, np.inf
    for column in range(k):
        theta, vectors = scipy.linalg.eigh_tridiagonal(alphas[:, column], betas[:, column], lapack_driver='stemr')
        values = np.sqrt(np.clip(1.0 / theta - shift, 0.0, None))
        coefficients[column] = vectors @ (values * vectors[0])
        theta_max, theta_min = max(theta_max, theta[-1]), min(theta_min, theta[0])
    return coefficients, float(theta_max), float(theta_min)


def _product_in(matrix, block: np.ndarray, dtype) -> np.ndarray:
    """``S @ block`` in ``dtype`` (the a-posteriori check of the single-precision route does not need float64,
    and the float32 sparse product is twice as fast), returned as float64."""
    if dtype == np.float64:
        return matrix @ block
    if sp.issparse(matrix):
        matrix = sp.csr_array((matrix.data.astype(dtype), matrix.indices, matrix.indptr), shape=matrix.shape)
    else:
        matrix = matrix.astype(dtype)
    return (matrix @ block.astype(dtype)).astype(np.float64)


def _change(coefficients: np.ndarray, earlier: np.ndarray) -> float:
    """Largest relative change of the columns' Lanczos coefficients between two steps (the error estimate)."""
    earlier = np.pad(earlier, ((0, 0), (0, coefficients.shape[1] - earlier.shape[1])))
    change = np.linalg.norm(coefficients - earlier, axis=1)
    return float(np.max(change / np.maximum(np.linalg.norm(coefficients, axis=1), np.finfo(float).tiny)))


def _sqrt_shift_invert(matrix, block, tol, bounds, shift, precision, max_steps) -> tuple[np.ndarray, SqrtInfo]:
    """S^½ @ block by shift-and-invert Lanczos, one process per column run in lockstep.

    Each column x gets the Krylov space of ``A = (S + σI)⁻¹`` and ``S^½ x ≈ ‖x‖ Q_m f(T_m) e_1`` with
    ``f(θ) = sqrt(1/θ - σ)`` (S^½ = f(A)). The poles of f sit outside the spectrum of A at a distance set by σ,
    so the error falls geometrically (about 10x per 5 steps for DZVP-MOLOPT overlaps, κ up to 1000), far faster
    than a polynomial in S (whose degree grows as sqrt(κ)). Every step costs one pair of triangular solves with
    the whole block (BLAS-3, dense); the factorisation costs ``nao³/3``. No reorthogonalisation (measured: the
    same convergence with and without). The error estimate is the change of the result over the last two
    steps; the iteration stops below ``tol`` (or, should rounding stop it falling, at its floor). In float32
    the result carries a further rounding error of 3e-7 to 1e-6 per orbital (measured against float64) that this
    estimate does not see; the a-posteriori norm check does.
    """
    n, k = block.shape
    dtype = np.float32 if precision == 'single' else np.float64
    if shift is None:
        shift = _SHIFT_FRACTION * (bounds[1] if bounds is not None else _largest_eigenvalue(matrix))
    factor = _shifted_cholesky(matrix, shift, dtype)
    trsm = scipy.linalg.blas.strsm if dtype == np.float32 else scipy.linalg.blas.dtrsm

    def solve(x: np.ndarray) -> None:
        # in place; (n, k) C-ordered = (k, n) Fortran-ordered: solve from the right, X^T (L L^T)^-1
        trsm(1.0, factor, x.T, side=1, lower=1, trans_a=1, overwrite_b=1)
        trsm(1.0, factor, x.T, side=1, lower=1, trans_a=0, overwrite_b=1)

    norms = np.linalg.norm(block, axis=0)
    frozen = norms == 0  # zero columns (and, later, columns whose Krylov space is exhausted) take no part
    # three rotating float64 vectors of the recurrence, a scratch one and the working-precision buffer of the
    # solves: no allocation inside the loop but the stored basis vector
    q = block / np.where(frozen, 1.0, norms)
    q_prev, w, scratch = np.zeros_like(q), np.empty_like(q), np.empty_like(q)
    work = np.empty(q.shape, dtype=dtype)
    basis, alphas, betas = [], [], []
    # the convergence is followed on a fixed sample of columns (many tiny batched eigensolves are slow under
    # threaded BLAS); once the sample has converged, every column is checked over the next two steps
    sample = np.unique(np.linspace(0, k - 1, min(k, 16)).astype(int))
    sampled, estimates, full, confirm_at = {}, [], None, None
    pad = 1.0 / (1.0 + shift)  # diagonal of a finished column's padding (any point of the spectrum of A)
    for step in range(1, max_steps + 1):
        basis.append(q.astype(dtype))
        np.copyto(work, basis[-1])
        solve(work)
        np.copyto(w, work)
        alpha = np.einsum('ij,ij->j', q, w)
        alpha[frozen] = pad
        w -= np.multiply(q, alpha, out=scratch)
        if betas:
            w -= np.multiply(q_prev, betas[-1], out=scratch)
        beta = np.sqrt(np.einsum('ij,ij->j', w, w))
        # a column whose Krylov space is exhausted (invariant subspace: exact) is frozen; alpha (a Rayleigh
        # quotient of A, positive) sets the scale
        frozen |= beta <= 1e-12 * np.abs(alpha)
        beta[frozen] = 0.0
        alphas.append(alpha)
        if frozen.all():
            break
        a, b = np.array(alphas), np.array(betas).reshape(-1, k)
        if step == confirm_at:
            current = _lanczos_sqrt_coefficients(a, b, shift)
            estimates.append(_change(current[0], full))
            if estimates[-1] <= tol:
                break
            confirm_at = None
        else:
            sampled[step] = _lanczos_sqrt_coefficients(a[:, sample], b[:, sample], shift)[0]
            if step - 2 in sampled:
                estimates.append(_change(sampled[step], sampled.pop(step - 2)))
                if estimates[-1] <= tol and confirm_at is None:
                    full, confirm_at = _lanczos_sqrt_coefficients(a, b, shift)[0], step + 2
        floor = 1e3 * np.finfo(dtype).eps
        if len(estimates) > 8 and floor > estimates[-1] > 0.5 * estimates[-5]:
            break  # rounding stops the estimate falling
        w /= np.where(beta > 0, beta, 1.0)
        if frozen.any():
            w[:, frozen] = 0.0
        q_prev, q, w = q, w, q_prev
        betas.append(beta)
    if step != confirm_at:
        current = _lanczos_sqrt_coefficients(np.array(alphas), np.array(betas).reshape(-1, k), shift)
    coefficients, theta_max, theta_min = current
    estimate = estimates[-1] if estimates else 0.0
    del q, q_prev, w, work
    lambda_min, lambda_max = 1.0 / theta_max - shift, 1.0 / theta_min - shift
    _check_pd(lambda_min, lambda_max)
    coefficients *= norms[:, None]
    result = np.zeros((n, k))
    for j, vector in enumerate(basis[: coefficients.shape[1]]):
        result += np.multiply(vector, coefficients[:, j], out=scratch)
    del basis, scratch
    info = SqrtInfo(
        'shift-invert',
        lambda_min,
        lambda_max,
        coefficients.shape[1],
        _norm_error(result, block, _product_in(matrix, block, dtype)),
        shift=float(shift),
        precision=precision,
        error_estimate=float(estimate),
    )
    return result, info


def _norm_error(result: np.ndarray, block: np.ndarray, s_block: np.ndarray) -> float:
    expected = np.einsum('ij,ij->j', block, s_block)
    got = np.einsum('ij,ij->j', result, result)
    return float(np.max(np.abs(got - expected) / np.maximum(expected, np.finfo(float).tiny))) if got.size else 0.0


# ---------------------------------------------------------------------------------------------------------------
# Atomic weights and IPR
# ---------------------------------------------------------------------------------------------------------------


def _atom_starts(ao_atom: np.ndarray, n_atoms: int | None) -> tuple[np.ndarray, int]:
    ao_atom = np.asarray(ao_atom)
    if ao_atom.size == 0 or ao_atom[0] != 0 or np.any(np.diff(ao_atom) < 0) or np.any(np.diff(ao_atom) > 1):
        raise AOCountMismatchError('the AO -> atom map must be sorted and contiguous from atom 0 (CP2K order)')
    atoms = int(ao_atom[-1]) + 1
    if n_atoms is not None and n_atoms != atoms:
        raise AOCountMismatchError(f'the AO -> atom map covers {atoms} atoms, expected {n_atoms}')
    return np.flatnonzero(np.r_[True, np.diff(ao_atom) > 0]), atoms


def atom_populations(lowdin_coefficients: np.ndarray, ao_atom: np.ndarray) -> np.ndarray:
    """Löwdin populations ``w[a, i] = sum_{mu in a} C~[mu, i]^2``, shape ``(n_atoms, n_mo)``."""
    starts, _ = _atom_starts(ao_atom, None)
    _check_rows(lowdin_coefficients, ao_atom)
    return np.add.reduceat(np.square(lowdin_coefficients), starts, axis=0)


def atom_signed_sums(lowdin_coefficients: np.ndarray, ao_atom: np.ndarray) -> np.ndarray:
    """The authors' signed sums ``P[a, i] = sum_{mu in a} C~[mu, i]``, shape ``(n_atoms, n_mo)``."""
    starts, _ = _atom_starts(ao_atom, None)
    _check_rows(lowdin_coefficients, ao_atom)
    return np.add.reduceat(lowdin_coefficients, starts, axis=0)


def mulliken_populations(overlap, coefficients: np.ndarray, ao_atom: np.ndarray) -> np.ndarray:
    """Mulliken populations ``q[a, i] = sum_{mu in a} C[mu, i] (S C)[mu, i]`` (may be negative)."""
    starts, _ = _atom_starts(ao_atom, None)
    _check_rows(coefficients, ao_atom)
    matrix = _as_overlap(overlap)
    return np.add.reduceat(coefficients * (matrix @ coefficients), starts, axis=0)


def _check_rows(array: np.ndarray, ao_atom: np.ndarray) -> None:
    if array.shape[0] != len(ao_atom):
        raise AOCountMismatchError(f'{array.shape[0]} AO rows, but the AO -> atom map has {len(ao_atom)} entries')


def atomic_weights(
    overlap,
    coefficients: np.ndarray,
    ao_atom: np.ndarray,
    method: str = DEFAULT_IPR_METHOD,
    **sqrt_options,
) -> tuple[np.ndarray, np.ndarray, SqrtInfo | None]:
    """The atomic weights ``W`` of the IPR method and the Löwdin populations, from S and a coefficient window.

    :returns: ``(W, populations, info)``: ``W`` (n_atoms, n_mo) is ``P^2`` (paper), ``w`` (lowdin) or ``q``
        (mulliken); ``populations`` the Löwdin populations ``w`` (used for contributions; ``None`` for
        mulliken, which avoids S^½); ``info`` how S^½ was applied (``None`` for mulliken).
    """
    _check_method(method)
    coefficients = np.asarray(coefficients, dtype=np.float64)
    _check_rows(coefficients, ao_atom)
    if method == 'mulliken':
        return mulliken_populations(overlap, coefficients, ao_atom), None, None
    tilde, info = apply_sqrt_overlap(overlap, coefficients, **sqrt_options)
    populations = atom_populations(tilde, ao_atom)
    weights = np.square(atom_signed_sums(tilde, ao_atom)) if method == 'paper' else populations
    return weights, populations, info


def ipr_from_weights(weights: np.ndarray) -> np.ndarray:
    """``IPR_i = sum_a W_ai^2 / (sum_a W_ai)^2`` for each column of ``W`` (n_atoms, n_mo)."""
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum(axis=0)
    return np.square(weights).sum(axis=0) / np.square(total)


def degenerate_sets(energies_ev: np.ndarray, tol_ev: float = DEFAULT_DEGENERACY_TOL_EV) -> np.ndarray:
    """Label each orbital with the id of its degenerate set (single linkage: consecutive energies closer than
    ``tol_ev``); orbitals alone get their own id. Energies must be sorted ascending."""
    energies_ev = np.asarray(energies_ev, dtype=np.float64)
    if energies_ev.size == 0:
        return np.zeros(0, dtype=np.int64)
    new_set = np.r_[True, np.diff(energies_ev) > tol_ev]
    return np.cumsum(new_set) - 1


def invariant_weights(weights: np.ndarray, set_ids: np.ndarray) -> np.ndarray:
    """Replace the weights of every member of a degenerate set by the set's mean.

    For each method the summed weight of a set over its orbitals is invariant under rotations inside the
    set (it is a diagonal element of the set's projector: ``sum_i w_ai`` = Löwdin population of the projector on
    atom ``a``; ``sum_i P_ai^2 = u_a^T S^½ Pi S^½ u_a``; ``sum_i q_ai`` the projector's Mulliken population), so the
    IPR computed from the mean is independent of CP2K's arbitrary choice of basis inside the set.
    """
    set_ids = np.asarray(set_ids)
    counts = np.bincount(set_ids)
    sums = np.zeros((weights.shape[0], counts.size))
    np.add.at(sums.T, set_ids, weights.T)
    return (sums / counts)[:, set_ids]


def group_contributions(populations: np.ndarray, atom_groups: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Sum populations (n_atoms, n_mo) over atoms with the same label (element, domain); normalised so the
    groups of each orbital add up to 1. Returns ``(names, contributions (n_groups, n_mo))``, names sorted."""
    atom_groups = np.asarray(atom_groups).astype(str)
    if atom_groups.shape[0] != populations.shape[0]:
        raise AOCountMismatchError(f'{atom_groups.shape[0]} group labels for {populations.shape[0]} atoms')
    names, inverse = np.unique(atom_groups, return_inverse=True)
    sums = np.zeros((names.size, populations.shape[1]))
    np.add.at(sums, inverse, populations)
    return [str(n) for n in names], sums / sums.sum(axis=0)


@dataclasses.dataclass(frozen=True)
class OrbitalAnalysis:
    """Everything per orbital of the window (arrays of length n_mo unless stated).

    ``ipr`` is rotation-invariant: for members of a degenerate set (``degenerate`` True, same
    ``degenerate_set``) it is computed from the set's mean weights; ``ipr_raw`` is the per-orbital value as
    CP2K's arbitrary rotation gives it. Contributions (from Löwdin populations, set-averaged likewise) are
    ``(n_groups, n_mo)`` with the group names in ``elements`` / ``domains``.
    """

    method: str
    indices: np.ndarray
    energies_ev: np.ndarray
    occupations: np.ndarray
    ipr: np.ndarray
    ipr_raw: np.ndarray
    degenerate_set: np.ndarray
    degenerate: np.ndarray
    populations: np.ndarray
    elements: list[str]
    element_contributions: np.ndarray
    domains: list[str]
    domain_contributions: np.ndarray
    sqrt_info: dict

    def arrays(self) -> dict[str, np.ndarray]:
        """The array-valued fields (for an ``ArrayData`` node)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        }

    def table(self) -> list[dict]:
        """One dict per orbital: index, energy (eV), occupation, IPR, flags and contributions."""
        rows = []
        for i in range(self.indices.size):
            row = {
                'mo': int(self.indices[i]),
                'energy_ev': float(self.energies_ev[i]),
                'occupation': float(self.occupations[i]),
                'ipr': float(self.ipr[i]),
                'ipr_raw': float(self.ipr_raw[i]),
                'degenerate_set': int(self.degenerate_set[i]),
                'degenerate': bool(self.degenerate[i]),
            }
            row.update({el: float(v) for el, v in zip(self.elements, self.element_contributions[:, i], strict=True)})
            row.update(
                {f'domain:{d}': float(v) for d, v in zip(self.domains, self.domain_contributions[:, i], strict=True)}
            )
            rows.append(row)
        return rows


def analyse_orbitals(
    overlap,
    coefficients: np.ndarray,
    ao_atom: np.ndarray,
    energies: np.ndarray,
    occupations: np.ndarray,
    atom_elements,
    *,
    indices: np.ndarray | None = None,
    atom_domains=None,
    method: str = DEFAULT_IPR_METHOD,
    energy_unit: str = 'hartree',
    degeneracy_tol_ev: float = DEFAULT_DEGENERACY_TOL_EV,
    **sqrt_options,
) -> OrbitalAnalysis:
    """IPR, element and domain contributions of each orbital of a window.

    :param overlap: S (sparse or dense), CP2K's AO order.
    :param coefficients: ``(nao, n_mo)`` window of MO coefficients (``MOCoefficients.coefficients``).
    :param ao_atom: 0-based atom of each AO.
    :param energies: orbital energies, in ``energy_unit`` (``hartree`` as CP2K writes them, or ``ev``).
    :param atom_elements: element symbol of each atom.
    :param atom_domains: optional domain label of each atom (``perovskite``, ``chalcohalide``, ``interface``).
    :param method: ``paper`` (default, reproduces the seed), ``lowdin`` or ``mulliken``.
    :param sqrt_options: passed to :func:`apply_sqrt_overlap` (``route``, ``tol``, ``product``, ...).
    """
    _check_method(method)
    coefficients = np.asarray(coefficients, dtype=np.float64)
    energies = np.asarray(energies, dtype=np.float64)
    if energy_unit not in ('hartree', 'ev'):
        raise ValueError(f'energy_unit must be "hartree" or "ev", not {energy_unit!r}')
    energies_ev = energies * HARTREE_TO_EV if energy_unit == 'hartree' else energies
    n_mo = coefficients.shape[1]
    if energies_ev.shape != (n_mo,) or np.shape(occupations) != (n_mo,):
        raise AOCountMismatchError(
            f'{n_mo} orbitals but {energies_ev.size} energies and {np.size(occupations)} occupations'
        )
    _, n_atoms = _atom_starts(ao_atom, None)
    atom_elements = np.asarray(atom_elements).astype(str)
    if atom_elements.size != n_atoms:
        raise AOCountMismatchError(f'{atom_elements.size} element labels for {n_atoms} atoms in the AO map')
    if method == 'mulliken':
        weights, _, _ = atomic_weights(overlap, coefficients, ao_atom, 'mulliken')
        populations, _, info = atomic_weights(overlap, coefficients, ao_atom, 'lowdin', **sqrt_options)
    else:
        weights, populations, info = atomic_weights(overlap, coefficients, ao_atom, method, **sqrt_options)
    set_ids = degenerate_sets(energies_ev, degeneracy_tol_ev)
    degenerate = np.bincount(set_ids)[set_ids] > 1
    ipr = ipr_from_weights(invariant_weights(weights, set_ids))
    pops = invariant_weights(populations, set_ids)
    elements, element_contrib = group_contributions(pops, atom_elements)
    if atom_domains is not None:
        domains, domain_contrib = group_contributions(pops, atom_domains)
    else:
        domains, domain_contrib = [], np.zeros((0, n_mo))
    return OrbitalAnalysis(
        method=method,
        indices=np.arange(1, n_mo + 1) if indices is None else np.asarray(indices),
        energies_ev=energies_ev,
        occupations=np.asarray(occupations, dtype=np.float64),
        ipr=ipr,
        ipr_raw=ipr_from_weights(weights),
        degenerate_set=set_ids,
        degenerate=degenerate,
        populations=populations,
        elements=elements,
        element_contributions=element_contrib,
        domains=domains,
        domain_contributions=domain_contrib,
        sqrt_info=info.as_dict() if info is not None else {},
    )
