"""Benchmark of the orbital analysis up to the paper's size, on the paper's models with CP2K's own overlap matrix.

    python benchmarks/bench_analysis.py                          # ladder n1..n4 and the paper's model
    python benchmarks/bench_analysis.py --models paper n4s n4 n3 n2 n1 --authors-max 8000   # docs/analysis.md
    python benchmarks/bench_analysis.py --models paper --workdir /tmp/bench-inputs   # keep (and reuse) inputs
    python benchmarks/bench_analysis.py --calibrate               # generator against real CP2K overlap files

**Inputs.** Each model is a CsPbBr3/Pb4S3Br2 heterostructure from ``build_model`` (the ``paper`` preset, 1386
atoms, and smaller ones with the same construction: cube n = 1..4 with a scaled half-sphere, ``MODELS``). A
child process (untimed) computes its AO overlap matrix the way CP2K 2023 does: contracted spherical Gaussians of
DZVP-MOLOPT-SR-GTH (exponents and contraction coefficients read at run time from CP2K's ``BASIS_MOLOPT``; Cs
14 AOs, Pb/Br/S 13; CP2K's AO order and labels), Obara-Saika overlap integrals, CP2K's neighbour list
(atom pairs closer than the sum of the kind radii, from ``EPS_PGF_ORB`` = sqrt(EPS_DEFAULT) = 1e-5) and its
primitive-pair screening, then the ``&S_CSR_WRITE`` threshold (1e-12, our protocol's). ``--calibrate`` shows
that this reproduces CP2K's own files element by element (same non-zero pattern, |ΔS| < 4e-9). The child
writes, in CP2K's formats: the binary upper-triangular ``.csr``, a ``.MOLog`` with a 400-orbital window (random
S-orthonormal orbitals, ``C^T S C = 1``), three per-kind ``.pdos`` files and one single-atom ``&LDOS`` file
per atom.

**Routes timed**, each in its own child process (wall time per stage, peak memory ``ru_maxrss`` of that child,
which includes reading the files):

* ``shift-invert`` (ours, the default above 3,000 AOs): S^½ C by shift-and-invert Lanczos, float32 Cholesky
  of S + σI and triangular solves, paper + lowdin IPR, element and domain contributions;
* ``shift-invert-f64``: the same in float64, the accuracy reference of the float32 IPR (on all orbitals up to
  ``--f64-max`` AOs, above on ``--f64-columns`` of them);
* ``chebyshev`` (the Chebyshev route): Lanczos spectral bounds, then a Chebyshev expansion of the square root
  (tol 1e-8); run to the end when its projection (bounds + degree x measured time of one product) fits in
  ``--chebyshev-budget``, else reported as that projection;
* ``cp2k-ldos``: CP2K's own Löwdin populations from the per-atom ``&LDOS`` files (lowdin IPR only);
* ``authors`` (up to ``--authors-max`` AOs): nano-qmflows' code path, dense ``scipy.linalg.sqrtm`` of S in
  float32, ``S^½ C``, signed sums per atom.

It prints per model: size, nnz(S), κ(S), the time of each stage, peak memory, the speed-up over the authors'
route, the IPR differences between routes, the machine's load average, and at the end the fitted scaling
exponents (time ∝ n_ao^p).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BOHR = 0.52917721067  # Å, CP2K 2023
BASIS_FILE = Path('/usr/share/cp2k/BASIS_MOLOPT')
BASIS_NAME = 'DZVP-MOLOPT-SR-GTH'
EPS_PGF_ORB = 1e-5  # CP2K: sqrt(EPS_DEFAULT), EPS_DEFAULT 1e-10 in our protocol
CSR_THRESHOLD = 1e-12  # our protocol's &S_CSR_WRITE THRESHOLD
WINDOW = 400
#: Models: the paper's heterostructure and smaller ones built the same way (cube n, half-sphere radius in Å).
MODELS = {
    'n1': {'n': 1, 'radius': 8.25},
    'n2': {'n': 2, 'radius': 10.0},
    'n3': {'n': 3, 'radius': 12.0},
    'n4s': {'n': 4, 'radius': 12.0},
    'n4': {'n': 4, 'radius': 16.0},
    'paper': {'preset': 'paper'},
}
VALENCE = {'Cs': 9, 'Pb': 4, 'Br': 7, 'Cl': 7, 'I': 7, 'S': 6}

# ------------------------------------------------------------------------------------- CP2K's overlap matrix

#: Cartesian Gaussians up to l = 2 (exponents of x, y, z) and the real solid harmonics in CP2K's order
#: (m = -l..l; p: y, z, x) as combinations of the Cartesian functions of their l.
CARTESIAN = [
    (0, 0, 0),
    (1, 0, 0),
    (0, 1, 0),
    (0, 0, 1),
    (2, 0, 0),
    (1, 1, 0),
    (1, 0, 1),
    (0, 2, 0),
    (0, 1, 1),
    (0, 0, 2),
]
CARTESIAN_START = {0: 0, 1: 1, 2: 4}
SPHERICAL = {
    0: np.array([[1.0]]),
    1: np.array([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]]),
    2: np.array(
        [[0.0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0], [-1, 0, 0, -1, 0, 2], [0, 0, 1, 0, 0, 0], [1, 0, 0, -1, 0, 0]]
    ),
}
M_LABELS = {0: ['s'], 1: ['py', 'pz', 'px'], 2: ['d-2', 'd-1', 'd0', 'd+1', 'd+2']}


def read_basis(element: str, name: str = BASIS_NAME, path: Path = BASIS_FILE):
    """``(exponents, [(ell, coefficients), ...])`` of a one-set basis of CP2K's basis file (bohr⁻²)."""
    lines = path.read_text().splitlines()
    found = [i for i, line in enumerate(lines) if line.split()[:1] == [element] and name in line.split()[1:]]
    if not found:
        raise KeyError(f'{element} {name} is not in {path}')
    k = found[0]
    if int(lines[k + 1].split()[0]) != 1:
        raise ValueError(f'{element} {name}: only one-set basis sets are supported')
    head = [int(x) for x in lines[k + 2].split()]
    lmin, lmax, nexp, counts = head[1], head[2], head[3], head[4:]
    rows = np.array([[float(x) for x in lines[k + 3 + e].split()] for e in range(nexp)])
    shells, column = [], 1
    for ell, count in zip(range(lmin, lmax + 1), counts, strict=True):
        for _ in range(count):
            shells.append((ell, rows[:, column]))
            column += 1
    return rows[:, 0], shells


def _exp_radius(ell: int, alpha: float, eps: float, prefactor: float) -> float:
    """CP2K's ``exp_radius``: the r where ``prefactor · r^ell · exp(-alpha r²)`` falls to ``eps``."""
    if prefactor <= 0:
        return 0.0
    r = math.sqrt(max(math.log(prefactor / eps), 0.0) / alpha) + 1.0
    for _ in range(200):
        new = math.sqrt(max(math.log(prefactor / eps) + ell * math.log(max(r, 1e-12)), 0.0) / alpha)
        if abs(new - r) < 1e-12:
            break
        r = new
    return r


class Kind:
    """One element's basis: exponents, CP2K's primitive radii, the map primitive Cartesian -> spherical AO."""

    def __init__(self, element: str, eps_pgf_orb: float = EPS_PGF_ORB):
        exps, shells = read_basis(element)
        self.element, self.exps = element, exps
        self.lmax = max(ell for ell, _ in shells)
        self.ncart = sum(1 for c in CARTESIAN if sum(c) <= self.lmax)
        self.nao = sum(2 * ell + 1 for ell, _ in shells)
        count = dict.fromkeys(range(3), 0)
        self.labels = []
        for ell, _ in shells:
            self.labels += [f'{ell + 2 + count[ell]}{m}' for m in M_LABELS[ell]]
            count[ell] += 1
        # CP2K's radii (init_interaction_radii_orb_basis): coefficients scaled by 2^ell (2/pi)^¾ zeta^((2l+3)/4)
        radius = np.zeros(exps.size)
        for ell, c in shells:
            gcc = 2**ell * (2 / math.pi) ** 0.75 * exps ** (0.25 * (2 * ell + 3)) * c
            for e in range(exps.size):
                radius[e] = max(radius[e], _exp_radius(ell, exps[e], eps_pgf_orb, abs(gcc[e])))
        self.pgf_radius, self.radius = radius, float(radius.max())
        transform = np.zeros((exps.size, self.ncart, self.nao))
        column = 0
        for ell, c in shells:
            primitive = c * exps ** (0.25 * (2 * ell + 3))
            block = SPHERICAL[ell]
            start = CARTESIAN_START[ell]
            for m in range(2 * ell + 1):
                transform[:, start : start + block.shape[1], column] = primitive[:, None] * block[m][None, :]
                column += 1
        self.transform = transform.reshape(exps.size * self.ncart, self.nao)
        onsite = primitive_overlap(self, self, np.zeros((1, 3)), screen=False)[0]
        norm = np.einsum('pi,pq,qi->i', self.transform, onsite, self.transform)
        self.transform /= np.sqrt(norm)[None, :]  # CP2K's contracted functions are normalised


def _one_dimensional(pa, pb, half_inv_p, lmax_a, lmax_b):
    """Obara-Saika recursion of the 1-D overlap factors ``E[i][j]`` (the s-s prefactor left out)."""
    e = [[None] * 3 for _ in range(3)]
    e[0][0] = np.ones_like(pa)
    for i in range(lmax_a + 1):
        for j in range(lmax_b + 1):
            if i == 0 and j == 0:
                continue
            if i > 0:
                value = pa * e[i - 1][j]
                if i > 1:
                    value = value + (i - 1) * half_inv_p * e[i - 2][j]
                if j > 0:
                    value = value + j * half_inv_p * e[i - 1][j - 1]
            else:
                value = pb * e[0][j - 1]
                if j > 1:
                    value = value + (j - 1) * half_inv_p * e[0][j - 2]
            e[i][j] = value
    return e


def primitive_overlap(ka: Kind, kb: Kind, d: np.ndarray, screen: bool = True) -> np.ndarray:
    """Overlaps of the primitive Cartesian functions of ``ka`` at A and ``kb`` at B = A - d (bohr), shape
    ``(pairs, n_exp_a * ncart_a, n_exp_b * ncart_b)``; with ``screen``, primitive pairs further apart than the sum
    of their radii are zero (CP2K's screening)."""
    a = ka.exps[None, :, None]
    b = kb.exps[None, None, :]
    p = a + b
    dist2 = np.square(d).sum(axis=1)[:, None, None]
    prefactor = (math.pi / p) ** 1.5 * np.exp(-(a * b / p) * dist2)
    if screen:
        far = ka.pgf_radius[None, :, None] + kb.pgf_radius[None, None, :] < np.sqrt(dist2)
        prefactor = np.where(far, 0.0, prefactor)
    cart_a, cart_b = np.array(CARTESIAN[: ka.ncart]), np.array(CARTESIAN[: kb.ncart])
    out = np.broadcast_to(prefactor[:, :, None, :, None], (d.shape[0], a.size, ka.ncart, b.size, kb.ncart)).copy()
    for dim in range(3):
        e = _one_dimensional(
            -(b / p) * d[:, dim, None, None], (a / p) * d[:, dim, None, None], 0.5 / p, ka.lmax, kb.lmax
        )
        for ia in range(ka.ncart):
            for ib in range(kb.ncart):
                out[:, :, ia, :, ib] *= e[cart_a[ia, dim]][cart_b[ib, dim]]
    return out.reshape(d.shape[0], a.size * ka.ncart, b.size * kb.ncart)


def cp2k_overlap(positions_ang, elements, threshold: float = CSR_THRESHOLD, chunk: int = 2000):
    """Upper triangle ``(rows, cols, values, n_ao, n_atom_pairs)`` (0-based, CP2K's AO order) of the overlap
    matrix that CP2K writes with ``&S_CSR_WRITE THRESHOLD threshold``."""
    from scipy.spatial import cKDTree

    pos = np.asarray(positions_ang, dtype=float) / BOHR
    names = sorted(set(elements))
    kinds = {el: Kind(el) for el in names}
    kind_of = np.array([names.index(el) for el in elements])
    nao_atom = np.array([kinds[el].nao for el in elements])
    offset = np.r_[0, np.cumsum(nao_atom)[:-1]]
    radii = np.array([kinds[el].radius for el in names])
    pairs = np.sort(cKDTree(pos).query_pairs(2 * radii.max(), output_type='ndarray'), axis=1)
    pairs = np.concatenate([np.repeat(np.arange(len(pos))[:, None], 2, axis=1), pairs])
    dist = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1)
    pairs = pairs[dist < radii[kind_of[pairs[:, 0]]] + radii[kind_of[pairs[:, 1]]]]  # CP2K's neighbour list
    rows, cols, values = [], [], []
    for ia, ea in enumerate(names):
        for ib, eb in enumerate(names):
            selected = pairs[(kind_of[pairs[:, 0]] == ia) & (kind_of[pairs[:, 1]] == ib)]
            ka, kb = kinds[ea], kinds[eb]
            for part in np.array_split(selected, max(1, -(-len(selected) // chunk))):
                if not len(part):
                    continue
                prim = primitive_overlap(ka, kb, pos[part[:, 0]] - pos[part[:, 1]])
                block = np.matmul(ka.transform.T[None], np.matmul(prim, kb.transform))
                mu = offset[part[:, 0], None, None] + np.arange(ka.nao)[None, :, None]
                nu = offset[part[:, 1], None, None] + np.arange(kb.nao)[None, None, :]
                keep = (np.abs(block) > threshold) & (mu <= nu)
                rows.append(np.broadcast_to(mu, block.shape)[keep].astype(np.int32))
                cols.append(np.broadcast_to(nu, block.shape)[keep].astype(np.int32))
                values.append(block[keep])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(values), int(nao_atom.sum()), len(pairs)


# ---------------------------------------------------------------------------------------- CP2K-format files


def build_atoms(model: str):
    from aiida_nanohetero.builders import build_model

    return build_model('heterostructure', halide='Br', **MODELS[model])


def atom_domains(atoms) -> np.ndarray:
    codes = {v: k for k, v in atoms.info['domain_codes'].items()}
    labels = np.array([codes[c] for c in atoms.arrays['domain']], dtype=object)
    labels[np.asarray(atoms.arrays['interface'], dtype=bool)] = 'interface'
    return labels.astype(str)


def write_csr_binary(path: Path, rows, cols, values) -> None:
    record = np.dtype([('head', '<i4'), ('row', '<i4'), ('col', '<i4'), ('value', '<f8'), ('tail', '<i4')])
    order = np.lexsort((cols, rows))
    data = np.empty(rows.size, dtype=record)
    data['head'] = data['tail'] = 16
    data['row'], data['col'], data['value'] = rows[order] + 1, cols[order] + 1, values[order]
    data.tofile(path)


def write_molog(path: Path, coefficients, energies, occupations, first_index, ao_labels, atom_ends) -> None:
    """CP2K's ``&MO`` printout (two MOs per block, NDIGITS 12), written with numpy string operations."""
    nao, nmo = coefficients.shape
    end_of_atom = np.zeros(nao, dtype=bool)
    end_of_atom[atom_ends] = True
    with open(path, 'w') as handle:
        handle.write('\n MO| EIGENVALUES, OCCUPATION NUMBERS, AND SPHERICAL EIGENVECTORS\n MO|\n')
        for start in range(0, nmo, 2):
            cols = range(start, min(start + 2, nmo))
            handle.write(' MO|              ' + ''.join(f'{first_index + c:>19}' for c in cols) + '\n')
            handle.write(' MO|              ' + ''.join(f'{energies[c]:>19.12f}' for c in cols) + '\n MO|\n')
            handle.write(' MO|              ' + ''.join(f'{occupations[c]:>19.12f}' for c in cols) + '\n MO|\n')
            numbers = np.char.mod('%19.12f', coefficients[:, start : start + len(cols)])
            lines = np.char.add(ao_labels, numbers[:, 0])
            for extra in range(1, numbers.shape[1]):
                lines = np.char.add(lines, numbers[:, extra])
            lines = np.where(end_of_atom, np.char.add(lines, '\n MO|'), lines)
            handle.write('\n'.join(lines.tolist()) + '\n')
        handle.write(' MO| E(Fermi):    -0.100000000000 a.u.   -2.721138624599 eV\n')


def write_pdos(path: Path, header: str, energies, occupations, weights, components) -> None:
    names = ''.join(f'{c:>18}' for c in components)
    rows = np.column_stack([np.arange(1, energies.size + 1), energies, occupations, weights])
    fmt = '%8d %17.6f %15.6f' + ' %17.8f' * weights.shape[1]
    with open(path, 'w') as handle:
        handle.write(f'# Projected DOS for {header}, at iteration step i = 0, E(Fermi) =    -0.100000 a.u.\n')
        handle.write(f'#     MO Eigenvalue [a.u.]      Occupation{names}\n')
        np.savetxt(handle, rows, fmt=fmt)


def generate(directory: Path, model: str, window: int = WINDOW, seed: int = 1) -> dict:
    """Write the CP2K-format inputs of ``model`` into ``directory``; return what describes them."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    atoms = build_atoms(model)
    elements = atoms.get_chemical_symbols()
    start = time.perf_counter()
    rows, cols, values, n_ao, n_pairs = cp2k_overlap(atoms.positions, elements)
    overlap_s = time.perf_counter() - start
    write_csr_binary(directory / 'bench-S_SPIN_1-1_0.csr', rows, cols, values)
    off = rows != cols
    overlap = sp.csr_array(
        (np.concatenate([values, values[off]]), (np.concatenate([rows, cols[off]]), np.concatenate([cols, rows[off]]))),
        shape=(n_ao, n_ao),
    )
    del rows, cols, values, off
    # a window of S-orthonormal orbitals: C = X (X^T S X)^-1/2
    x = rng.standard_normal((n_ao, window))
    w, v = np.linalg.eigh(x.T @ (overlap @ x))
    coefficients = x @ (v / np.sqrt(w)) @ v.T
    n_occupied = sum(VALENCE[e] for e in elements) // 2
    first = max(1, n_occupied - window // 2 + 1)  # the window straddles the gap
    occupations = np.where(first + np.arange(window) <= n_occupied, 2.0, 0.0)
    energies = np.sort(rng.uniform(-0.3, 0.1, window))
    kinds = {el: Kind(el) for el in sorted(set(elements))}
    ao_atom = np.repeat(np.arange(len(elements)), [kinds[e].nao for e in elements])
    ao_labels = np.array(
        [
            f' MO|{mu + 1:>5} {a + 1:>5} {elements[a]:>2}  {label:<8}'
            for mu, (a, label) in enumerate(
                zip(ao_atom, [lab for e in elements for lab in kinds[e].labels], strict=True)
            )
        ]
    )
    atom_ends = np.flatnonzero(np.r_[np.diff(ao_atom) > 0, True])
    write_molog(
        directory / 'bench-orbitals-1_0.MOLog', coefficients, energies, occupations, first, ao_labels, atom_ends
    )
    np.save(directory / 'domains.npy', atom_domains(atoms))
    ldos_rows = max(n_occupied + window // 2, first + window - 1)  # &PDOS NLUMO covers the window
    all_energies = np.sort(rng.uniform(-1.0, 0.2, ldos_rows))
    all_occ = np.where(np.arange(ldos_rows) < n_occupied, 2.0, 0.0)
    comps = ['s', 'py', 'pz', 'px', 'd-2', 'd-1', 'd0', 'd+1', 'd+2']
    for k, element in enumerate(sorted(set(elements)), start=1):
        weights = rng.uniform(0, 1, (ldos_rows, 9)) / 27
        write_pdos(directory / f'bench-k{k}-1.pdos', f'atomic kind {element}', all_energies, all_occ, weights, comps)
    ldos = directory / 'ldos'
    ldos.mkdir(exist_ok=True)
    for atom in range(len(elements)):
        weights = rng.uniform(0, 1, (ldos_rows, 3)) / (3 * len(elements))
        header = f'list {atom + 1} of    1 atoms'
        write_pdos(ldos / f'bench-list{atom + 1}-1.pdos', header, all_energies, all_occ, weights, 'spd')
    return {
        'model': model,
        'n_ao': n_ao,
        'n_atoms': len(elements),
        'nnz': int(overlap.nnz),
        'atom_pairs': n_pairs,
        'overlap_integrals_s': overlap_s,
        'files_mb': sum(p.stat().st_size for p in directory.rglob('*') if p.is_file()) / 2**20,
    }


# ---------------------------------------------------------------------------------------------------- timing


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU time of this process, all threads (user + system): the work done, whatever else loads the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_route(directory: Path, route: str, chebyshev_budget: float, columns: int = 0) -> dict:
    """Time one route on the files in ``directory`` (run in a child process); ``columns`` > 0 restricts it to
    that many orbitals of the window, evenly spread."""
    from aiida_nanohetero import analysis as an

    result = {'route': route, 'load_start': os.getloadavg()[0]}

    def timed(key, func, *args, **kwargs):
        start, cpu = time.perf_counter(), cpu_s()
        value = func(*args, **kwargs)
        result[f'{key}_s'] = time.perf_counter() - start
        result[f'{key}_cpu_s'] = cpu_s() - cpu
        return value

    mos = timed('read_molog', an.read_mo_coefficients, directory / 'bench-orbitals-1_0.MOLog')
    read = result['read_molog_s']
    if route != 'cp2k-ldos':
        overlap = timed('read_csr', an.read_overlap_csr, directory / 'bench-S_SPIN_1-1_0.csr', n_ao=mos.n_ao)
        read += result['read_csr_s']
    domains = np.load(directory / 'domains.npy')
    subset = np.unique(np.linspace(0, mos.n_mo - 1, columns).astype(int)) if columns else np.arange(mos.n_mo)
    result['columns'] = int(subset.size)
    np.save(directory / f'columns-{route}.npy', subset)
    c, e, o = mos.coefficients[:, subset], mos.energies[subset], mos.occupations[subset]
    args = (np.ascontiguousarray(c), mos.ao_atom, e, o, mos.atom_elements)
    ipr = None
    if route in ('shift-invert', 'shift-invert-f64'):
        precision = 'single' if route == 'shift-invert' else 'double'
        analysis = timed(
            'ipr',
            an.analyse_orbitals,
            overlap,
            *args,
            atom_domains=domains,
            route='shift-invert',
            precision=precision,
            **({'tol': 1e-10} if precision == 'double' else {}),
        )
        result.update({f'sqrt_{k}': v for k, v in analysis.sqrt_info.items()})
        ipr = analysis.ipr_raw
        np.save(directory / f'lowdin-{route}.npy', analysis.populations)
    elif route == 'chebyshev':
        from aiida_nanohetero.analysis.ipr import _chebyshev_sqrt_coefficients, _Product

        tol = 1e-8
        lo, hi = timed('spectral_bounds', an.overlap_spectral_bounds, overlap)
        result['sqrt_lambda_min'], result['sqrt_lambda_max'] = lo, hi
        degree = len(_chebyshev_sqrt_coefficients(lo, hi, tol)) - 1
        n, nnz = overlap.shape[0], overlap.nnz
        mode = 'dense' if nnz > 0.05 * n * n and 8 * n * n < 3e9 else 'sparse'  # as apply_sqrt_overlap's 'auto'
        product = _Product(overlap, mode, os.cpu_count() or 1)
        start = time.perf_counter()
        for _ in range(2):
            product(args[0])
        per_product = (time.perf_counter() - start) / 2
        product.close()
        del product
        result.update({'sqrt_degree': degree, 'product_mode': mode, 'product_s': per_product})
        result['projected_ipr_s'] = result['spectral_bounds_s'] + (degree + 1) * per_product
        if result['projected_ipr_s'] <= chebyshev_budget:
            analysis = timed(
                'ipr',
                an.analyse_orbitals,
                overlap,
                *args,
                atom_domains=domains,
                route='chebyshev',
                bounds=(lo, hi),
                tol=tol,
            )
            result['ipr_s'] += result['spectral_bounds_s']
            result['ipr_cpu_s'] += result['spectral_bounds_cpu_s']
            result['sqrt_norm_error'] = analysis.sqrt_info['norm_error']
            ipr = analysis.ipr_raw
    elif route == 'cp2k-ldos':

        def ldos_route():
            _, lists = an.find_pdos_files(directory / 'ldos')
            ordered = [lists[i] for i in sorted(lists)]
            pops, _ = an.populations_from_ldos(ordered, [[i] for i in range(len(ordered))], mos.n_atoms, mos.indices)
            return an.ipr_from_weights(pops)

        timed('ipr', ldos_route)
    elif route == 'authors':
        import scipy.linalg

        def authors():  # nano-qmflows workflow_ipr: sqrtm(S) in float32, S^½ C, signed sums per atom
            dense = overlap.toarray().astype(np.float32)
            root = scipy.linalg.sqrtm(dense)
            tilde = np.dot(root, args[0].astype(np.float32))
            starts = np.flatnonzero(np.r_[True, np.diff(mos.ao_atom) > 0])
            summed = np.add.reduceat(tilde, starts, 0).astype(np.float64)
            return (summed**4).sum(0) / (summed**2).sum(0) ** 2

        ipr = np.real(timed('ipr', authors))
    else:
        raise SystemExit(f'unknown route {route}')
    if 'ipr_s' in result:
        result['total_s'] = read + result['ipr_s']
        result['total_cpu_s'] = sum(result.get(f'{k}_cpu_s', 0.0) for k in ('read_molog', 'read_csr', 'ipr'))
    if ipr is not None:
        np.save(directory / f'ipr-{route}.npy', ipr)
    result['peak_mb'] = peak_mb()
    result['load_end'] = os.getloadavg()[0]
    return result


def child(args: list[str], timeout: float) -> dict | None:
    """Run this script with ``args`` in a fresh process; its last stdout line is JSON."""
    try:
        out = subprocess.run(
            [sys.executable, __file__, *args], capture_output=True, text=True, env=os.environ, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {'timed_out': timeout}
    if out.returncode:
        print(out.stderr[-3000:], file=sys.stderr)
        return {'failed': out.returncode}
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_model(model: str, args) -> dict:
    keep = args.workdir is not None
    base = Path(args.workdir) if keep else Path(tempfile.mkdtemp(prefix='bench-analysis-'))
    directory = base / model
    directory.mkdir(parents=True, exist_ok=True)
    meta_file = directory / 'meta.json'
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
    else:
        start = time.perf_counter()
        meta = child(['--generate', model, '--dir', str(directory)], timeout=3600)
        meta['generate_s'] = time.perf_counter() - start
        meta_file.write_text(json.dumps(meta))
    record = {**meta, 'routes': {}}
    routes = list(args.routes)
    if meta['n_ao'] > args.authors_max:
        routes = [r for r in routes if r != 'authors']
    for route in routes:
        extra = ['--chebyshev-budget', str(args.chebyshev_budget)]
        if route == 'shift-invert-f64' and meta['n_ao'] > args.f64_max:
            extra += ['--columns', str(args.f64_columns)]
        record['routes'][route] = child(['--run', route, '--dir', str(directory), *extra], timeout=args.timeout)
    iprs, subsets = {}, {}
    for r in routes:
        if (directory / f'ipr-{r}.npy').exists():
            iprs[r], subsets[r] = np.load(directory / f'ipr-{r}.npy'), np.load(directory / f'columns-{r}.npy')

    def compare(route: str, other: str):
        common, i, j = np.intersect1d(subsets[route], subsets[other], return_indices=True)
        return iprs[route][i], iprs[other][j], common

    for route in iprs:
        if 'shift-invert-f64' in iprs and route != 'shift-invert-f64':
            values, reference, common = compare(route, 'shift-invert-f64')
            record['routes'][route]['ipr_rel_err_vs_f64'] = float(np.max(np.abs(values / reference - 1)))
            record['routes'][route]['f64_columns'] = int(common.size)
        if route != 'shift-invert' and 'shift-invert' in iprs:
            values, ours, _ = compare(route, 'shift-invert')
            record['routes'][route]['ipr_max_diff_vs_ours'] = float(np.abs(values - ours).max())
    if 'shift-invert' in iprs and 'shift-invert-f64' in iprs:
        w32, w64 = (np.load(directory / f'lowdin-{r}.npy') for r in ('shift-invert', 'shift-invert-f64'))
        _, i, j = np.intersect1d(subsets['shift-invert'], subsets['shift-invert-f64'], return_indices=True)
        ratio = np.square(w32[:, i]).sum(0) / np.square(w64[:, j]).sum(0)
        record['routes']['shift-invert']['lowdin_ipr_rel_err_vs_f64'] = float(np.max(np.abs(ratio - 1)))
    for pattern in ('ipr-*.npy', 'columns-*.npy', 'lowdin-*.npy'):
        for path in directory.glob(pattern):
            path.unlink()
    if not keep:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return record


def report(r: dict) -> None:
    ours = r['routes'].get('shift-invert') or {}
    kappa = ours.get('sqrt_lambda_max', float('nan')) / ours.get('sqrt_lambda_min', float('nan'))
    print(
        f'{r["model"]:>5}: {r["n_atoms"]:>5} atoms  n_ao {r["n_ao"]:>6}  nnz(S) {r["nnz"] / 1e6:6.2f} M '
        f'({r["nnz"] / r["n_ao"] ** 2:.1%})  kappa(S) ~{kappa:6.0f}  files {r["files_mb"]:7.1f} MB  '
        f'(inputs generated in {r.get("generate_s", float("nan")):.0f} s)'
    )
    for route, v in r['routes'].items():
        if v is None or 'timed_out' in v or 'failed' in v:
            print(f'   {route:<17} {v}')
            continue
        parts = [f'read MOLog {v["read_molog_s"]:.1f} s']
        if v.get('columns', WINDOW) < WINDOW:
            parts.insert(0, f'{v["columns"]} of the {WINDOW} orbitals')
        if 'read_csr_s' in v:
            parts.append(f'read csr {v["read_csr_s"]:.1f} s')
        if route.startswith('shift-invert'):
            parts.append(
                f'S^1/2 C + IPR {v["ipr_s"]:.1f} s ({v["sqrt_degree"]} solves, shift {v["sqrt_shift"]:.2f}, '
                f'estimate {v["sqrt_error_estimate"]:.0e}, norm check {v["sqrt_norm_error"]:.0e})'
            )
        elif route == 'chebyshev':
            parts.append(f'bounds {v["spectral_bounds_s"]:.1f} s, degree {v["sqrt_degree"]} x {v["product_s"]:.2f} s')
            if 'ipr_s' in v:
                parts.append(f'S^1/2 C + IPR {v["ipr_s"]:.1f} s (projected {v["projected_ipr_s"]:.0f} s)')
            else:
                parts.append(f'S^1/2 C + IPR projected {v["projected_ipr_s"]:.0f} s (not run)')
        else:
            parts.append(f'IPR {v["ipr_s"]:.1f} s')
        if 'total_s' in v:
            parts.append(f'whole {v["total_s"]:.1f} s (CPU {v["total_cpu_s"]:.0f} s)')
        parts.append(f'peak {v["peak_mb"]:.0f} MB')
        for key, label in (
            ('ipr_rel_err_vs_f64', 'paper IPR rel. err vs f64'),
            ('lowdin_ipr_rel_err_vs_f64', 'lowdin IPR rel. err vs f64'),
            ('ipr_max_diff_vs_ours', 'max |IPR - ours|'),
        ):
            if key in v:
                over = f' ({v["f64_columns"]} orbitals)' if v.get('f64_columns', WINDOW) < WINDOW else ''
                parts.append(f'{label} {v[key]:.1e}{over if "f64" in key else ""}')
        parts.append(f'load {v["load_start"]:.1f}-{v["load_end"]:.1f}')
        print(f'   {route:<17} ' + ', '.join(parts))
    authors = r['routes'].get('authors') or {}
    if 'ipr_s' in authors and 'ipr_s' in ours:
        print(
            f'   speed-up over the authors: {authors["ipr_s"] / ours["ipr_s"]:.1f}x (S^1/2 C + IPR), '
            f'{authors["total_s"] / ours["total_s"]:.1f}x (whole analysis incl. reading)'
        )
    sys.stdout.flush()


def fit_scaling(records: list[dict]) -> None:
    records = sorted(records, key=lambda r: r['n_ao'])
    for route, key in (
        ('shift-invert', 'total_s'),
        ('shift-invert', 'ipr_s'),
        ('shift-invert', 'read_molog_s'),
        ('shift-invert', 'read_csr_s'),
        ('chebyshev', 'projected_ipr_s'),
        ('authors', 'ipr_s'),
    ):
        points = [(r['n_ao'], (r['routes'].get(route) or {}).get(key)) for r in records]
        points = [(n, t) for n, t in points if t]
        if len(points) >= 3:
            n, t = np.log(np.array(points, dtype=float)).T
            slope = np.polyfit(n, t, 1)[0]
            span = f'{int(points[0][0])}-{int(points[-1][0])} AOs'
            print(f'scaling {route} {key}: time ~ n_ao^{slope:.2f} over {span} ({len(points)} sizes)')
    nnz = [(r['n_ao'], r['nnz']) for r in records]
    if len(nnz) >= 3:
        n, z = np.log(np.array(nnz, dtype=float)).T
        print(f'scaling nnz(S) ~ n_ao^{np.polyfit(n, z, 1)[0]:.2f}')


# ------------------------------------------------------------------------------------------------- calibration


def _coords(inp: Path):
    block = inp.read_text().split('&COORD')[1].split('&END COORD')[0]
    rows = [line.split() for line in block.strip().splitlines()]
    return [r[0] for r in rows], np.array([[float(x) for x in r[1:4]] for r in rows])


def calibrate(cases: list[tuple[Path, Path, float]]) -> None:
    """Compare the generator with overlap files CP2K wrote: pattern, values, nnz per atom-pair distance."""
    import scipy.linalg
    import scipy.sparse as sp

    from aiida_nanohetero.analysis import read_overlap_csr

    for inp, csr, threshold in cases:
        elements, positions = _coords(inp)
        rows, cols, values, n_ao, _ = cp2k_overlap(positions, elements, threshold=threshold)
        ours = sp.csr_array((values, (rows, cols)), shape=(n_ao, n_ao)).toarray()
        real = sp.triu(read_overlap_csr(csr, n_ao=n_ao)).toarray()
        same = np.array_equal(ours != 0, real != 0)
        print(f'{inp.parent.name}: {len(elements)} atoms, {n_ao} AOs, threshold {threshold:g}')
        print(
            f'   nnz (upper triangle) ours {np.count_nonzero(ours)}, CP2K {np.count_nonzero(real)}; '
            f'same pattern: {same}; max |S_ours - S_cp2k| = {np.abs(ours - real).max():.1e}'
        )
        kinds = {el: Kind(el) for el in set(elements)}
        ao_atom = np.repeat(np.arange(len(elements)), [kinds[e].nao for e in elements])
        dist = np.linalg.norm(positions[:, None] - positions[None], axis=-1)[ao_atom][:, ao_atom]
        edges = np.arange(0, dist.max() + 2.5, 2.5)
        h_ours = np.histogram(dist[ours != 0], edges)[0]
        h_real = np.histogram(dist[real != 0], edges)[0]
        bins = [
            f'{a:.1f}-{b:.1f}: {o}/{c}' for a, b, o, c in zip(edges, edges[1:], h_ours, h_real, strict=False) if c or o
        ]
        print('   nnz per atom-pair distance (Å), ours/CP2K:', ', '.join(bins))
        spectra = [scipy.linalg.eigvalsh(m + m.T - np.diag(np.diag(m))) for m in (ours, real)]
        for label, e in zip(('ours', 'CP2K'), spectra, strict=True):
            print(f'   spectrum {label}: {e[0]:.6f} - {e[-1]:.4f} (kappa {e[-1] / e[0]:.1f})')


# ---------------------------------------------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=['n1', 'n2', 'n3', 'n4', 'paper'], choices=list(MODELS))
    routes = ['shift-invert', 'shift-invert-f64', 'chebyshev', 'cp2k-ldos', 'authors']
    parser.add_argument('--routes', nargs='+', default=routes, choices=routes)
    parser.add_argument('--authors-max', type=int, default=5000, help="largest n_ao for the authors' route")
    parser.add_argument('--f64-max', type=int, default=10000, help='largest n_ao for a full float64 reference')
    parser.add_argument('--f64-columns', type=int, default=40, help='orbitals of the float64 reference above it')
    parser.add_argument(
        '--chebyshev-budget', type=float, default=300, help='run chebyshev fully if projected below (s)'
    )
    parser.add_argument('--timeout', type=float, default=1800, help='limit per child process (s)')
    parser.add_argument('--workdir', help='keep the generated inputs here (and reuse them on the next run)')
    parser.add_argument('--json', type=Path, help='also write the results here')
    parser.add_argument('--calibrate', action='store_true', help='compare the generator with real CP2K files')
    parser.add_argument('--calibrate-extra', nargs=3, action='append', default=[], metavar=('INP', 'CSR', 'THRESHOLD'))
    parser.add_argument('--generate', help=argparse.SUPPRESS)
    parser.add_argument('--run', help=argparse.SUPPRESS)
    parser.add_argument('--dir', type=Path, help=argparse.SUPPRESS)
    parser.add_argument('--columns', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.generate:
        print(json.dumps(generate(args.dir, args.generate)))
        return
    if args.run:
        print(json.dumps(run_route(args.dir, args.run, args.chebyshev_budget, args.columns)))
        return
    if args.calibrate:
        data = Path(__file__).resolve().parent.parent / 'tests' / 'data' / 'cp2k' / 'cs4pbbr6'
        cases = [(data / 'cube.inp', data / 'cube-overlap-S_SPIN_1-1_0.csr', 1e-10)]
        cases += [(Path(i), Path(c), float(t)) for i, c, t in args.calibrate_extra]
        calibrate(cases)
        return

    print(f'{time.strftime("%Y-%m-%d %H:%M")}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}')
    records = []
    for model in args.models:
        record = bench_model(model, args)
        records.append(record)
        report(record)
    fit_scaling(records)
    print(f'load average at the end {os.getloadavg()[0]:.1f}')
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == '__main__':
    main()
