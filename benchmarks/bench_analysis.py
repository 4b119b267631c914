"""Benchmark of the orbital analysis at the paper's size, on synthetic inputs in CP2K's file formats.

    python benchmarks/bench_analysis.py                       # default sizes, incl. the paper's (~18,000 AOs)
    python benchmarks/bench_analysis.py --sizes 1000 2000 --baseline-max 2000
    python benchmarks/bench_analysis.py --one 4000 --window 400   # one size (what each child process runs)

For every size a fresh child process generates (untimed) a cluster of atoms on a perovskite-like lattice, 13
AOs per atom, and writes in CP2K's formats: the ``.MOLog`` of a 400-orbital window around the gap, the binary
upper-triangular ``&S_CSR_WRITE`` overlap, three per-kind ``.pdos`` files and (route ``cp2k-ldos``) one
single-atom ``&LDOS`` file per atom. It then times the readers and the IPR and prints wall time and the peak
memory of the child (``ru_maxrss``). The overlap is a true Gram matrix (normalised s-type Gaussians, one per
AO, exponents 0.8-4 Å⁻², centres on the atom and 1.2 Å out along 12 directions), so it is symmetric positive
definite, with a
condition number (printed) in the range of real DZVP-MOLOPT-SR overlaps (90 for Cs4PbBr6, 295 for Cs20Pb8Br36
measured with CP2K here) and a density that gives tens of millions of non-zeros at the paper's size.

Routes timed: ``chebyshev`` (ours: S^½ applied to the window by a Chebyshev expansion, sparse threaded
products; paper and lowdin IPR), ``cp2k-ldos`` (CP2K computes the per-atom Löwdin populations in the cluster job;
the workstation reads the files; lowdin IPR only) and, up to ``--baseline-max`` AOs, ``authors`` (dense
``scipy.linalg.sqrtm`` of S in float32, as nano-qmflows does, then S^½ C and the signed sums).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

AOS_PER_ATOM = 13
ELEMENTS = ('Pb', 'Br', 'Cs')
LABELS = ['2s', '3s', '3py', '3pz', '3px', '4py', '4pz', '4px', '4d-2', '4d-1', '4d0', '4d+1', '4d+2']


# ------------------------------------------------------------------------------------------------ generation


def make_cluster(n_atoms: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Positions (Å) of ``n_atoms`` atoms of a simple-cubic lattice (2.95 Å, the Pb-Br distance), the ones
    nearest the centre (a roughly spherical cluster), and their elements."""
    side = int(np.ceil(n_atoms ** (1 / 3))) + 2
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing='ij'), -1).reshape(-1, 3).astype(float)
    grid -= grid.mean(axis=0)
    order = np.argsort(np.linalg.norm(grid, axis=1), kind='stable')[:n_atoms]
    positions = grid[order] * 2.95
    parity = grid[order].astype(int).sum(axis=1) % 2
    elements = np.where(parity == 0, 0, 1)
    elements[(grid[order].astype(int) % 2).sum(axis=1) == 3] = 2  # every body-centre-like site is Cs
    return positions + rng.normal(scale=0.05, size=positions.shape), elements


def make_overlap(positions: np.ndarray, rng, threshold: float = 1e-10):
    """Upper triangle (rows, cols, values; 0-based) of a Gram matrix of normalised s-Gaussians, 13 per atom."""
    from scipy.spatial import cKDTree

    n_atoms = positions.shape[0]
    # one s-Gaussian per AO: the first on the atom, the others 1.2 Å out along 12 directions (lobes standing in
    # for p and d functions); exponents 0.8-4 Å^-2. Tuned so that a 150-atom cluster has the spectrum of the real
    # CP2K overlap of Cs20Pb8Br36 (0.015-4.2 against 0.016-4.7).
    exponents = np.linspace(0.8, 4.0, AOS_PER_ATOM)
    directions = np.array(
        [
            *([0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]),
            *([1, 1, 0], [-1, -1, 0], [0, 1, 1], [0, -1, -1], [1, 0, 1], [-1, 0, -1]),
        ],
        dtype=float,
    )
    directions[1:] /= np.linalg.norm(directions[1:], axis=1)[:, None]
    shift = 1.2
    centres = positions[:, None, :] + shift * directions[None] + rng.normal(scale=0.05, size=(n_atoms, AOS_PER_ATOM, 3))
    alpha_min = exponents.min()
    cutoff = float(np.sqrt(-np.log(threshold) * 2 / (alpha_min / 2)) / 2) + 2 * shift
    pairs = cKDTree(positions).query_pairs(cutoff, output_type='ndarray')
    pairs = np.concatenate([np.stack([np.arange(n_atoms)] * 2, 1), pairs])
    rows, cols, values = [], [], []
    a = exponents[:, None]
    b = exponents[None, :]
    prefactor = (2 * np.sqrt(a * b) / (a + b)) ** 1.5
    reduced = a * b / (a + b)
    for chunk in np.array_split(pairs, max(1, len(pairs) // 20000)):
        i, j = chunk[:, 0], chunk[:, 1]
        d2 = np.square(centres[i][:, :, None, :] - centres[j][:, None, :, :]).sum(-1)  # (p, 13, 13)
        s = prefactor * np.exp(-reduced * d2)
        mu = (i[:, None, None] * AOS_PER_ATOM + np.arange(AOS_PER_ATOM)[None, :, None]).repeat(AOS_PER_ATOM, 2)
        nu = (j[:, None, None] * AOS_PER_ATOM + np.arange(AOS_PER_ATOM)[None, None, :]).repeat(AOS_PER_ATOM, 1)
        keep = (np.abs(s) >= threshold) & (mu <= nu)
        rows.append(mu[keep])
        cols.append(nu[keep])
        values.append(s[keep])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(values)


def write_csr_binary(path: Path, rows, cols, values) -> None:
    record = np.dtype([('head', '<i4'), ('row', '<i4'), ('col', '<i4'), ('value', '<f8'), ('tail', '<i4')])
    order = np.lexsort((cols, rows))
    data = np.empty(rows.size, dtype=record)
    data['head'] = data['tail'] = 16
    data['row'], data['col'], data['value'] = rows[order] + 1, cols[order] + 1, values[order]
    data.tofile(path)


def write_molog(path: Path, coefficients, energies, occupations, first_index, elements) -> None:
    nao, nmo = coefficients.shape
    atom = np.arange(nao) // AOS_PER_ATOM
    labels = [
        f' MO|{mu + 1:>5} {atom[mu] + 1:>5} {ELEMENTS[elements[atom[mu]]]:>2}  {LABELS[mu % AOS_PER_ATOM]:<8}'
        for mu in range(nao)
    ]
    with open(path, 'w') as handle:
        handle.write('\n MO| EIGENVALUES, OCCUPATION NUMBERS, AND SPHERICAL EIGENVECTORS\n MO|\n')
        for start in range(0, nmo, 2):
            cols = range(start, min(start + 2, nmo))
            handle.write(' MO|              ' + ''.join(f'{first_index + c:>19}' for c in cols) + '\n')
            handle.write(' MO|              ' + ''.join(f'{energies[c]:>19.12f}' for c in cols) + '\n MO|\n')
            handle.write(' MO|              ' + ''.join(f'{occupations[c]:>19.12f}' for c in cols) + '\n MO|\n')
            block = coefficients[:, start : start + len(cols)]
            numbers = [''.join(f'{v:>19.12f}' for v in row) for row in block.tolist()]
            lines = []
            for mu in range(nao):
                lines.append(labels[mu] + numbers[mu])
                if mu % AOS_PER_ATOM == AOS_PER_ATOM - 1:
                    lines.append(' MO|')
            handle.write('\n'.join(lines) + '\n')
        handle.write(' MO| E(Fermi):    -0.100000000000 a.u.   -2.721138624599 eV\n')


def write_pdos(path: Path, header: str, energies, occupations, weights, components) -> None:
    names = ''.join(f'{c:>18}' for c in components)
    rows = np.column_stack([np.arange(1, energies.size + 1), energies, occupations, weights])
    fmt = '%8d %17.6f %15.6f' + ' %17.8f' * weights.shape[1]
    with open(path, 'w') as handle:
        handle.write(f'# Projected DOS for {header}, at iteration step i = 0, E(Fermi) =    -0.100000 a.u.\n')
        handle.write(f'#     MO Eigenvalue [a.u.]      Occupation{names}\n')
        np.savetxt(handle, rows, fmt=fmt)


def generate(directory: Path, n_ao: int, window: int, seed: int = 1) -> dict:
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n_atoms = n_ao // AOS_PER_ATOM
    positions, elements = make_cluster(n_atoms, rng)
    rows, cols, values = make_overlap(positions, rng)
    write_csr_binary(directory / 'bench-S_SPIN_1-1_0.csr', rows, cols, values)
    off = rows != cols
    overlap = sp.csr_array(
        (np.concatenate([values, values[off]]), (np.concatenate([rows, cols[off]]), np.concatenate([cols, rows[off]]))),
        shape=(n_atoms * AOS_PER_ATOM,) * 2,
    )
    # a random window of S-orthonormal orbitals: C = X (X^T S X)^-1/2
    x = rng.standard_normal((overlap.shape[0], window))
    gram = x.T @ (overlap @ x)
    w, v = np.linalg.eigh(gram)
    coefficients = x @ (v / np.sqrt(w)) @ v.T
    energies = np.sort(rng.uniform(-0.3, 0.1, window))
    occupations = np.where(np.arange(window) < window // 2, 2.0, 0.0)
    n_occupied = int(0.24 * overlap.shape[0])  # 4,350 occupied of 18,000 AOs at the paper's size
    first = n_occupied - window // 2 + 1
    ldos_rows = n_occupied + window // 2  # &PDOS NLUMO = window / 2
    write_molog(directory / 'bench-orbitals-1_0.MOLog', coefficients, energies, occupations, first, elements)
    all_energies = np.sort(rng.uniform(-1.0, 0.2, ldos_rows))
    all_occ = np.where(np.arange(ldos_rows) < first + window // 2, 2.0, 0.0)
    for k, element in enumerate(ELEMENTS, start=1):
        weights = rng.uniform(0, 1, (ldos_rows, 9)) / 27
        comps = ['s', 'py', 'pz', 'px', 'd-2', 'd-1', 'd0', 'd+1', 'd+2']
        write_pdos(directory / f'bench-k{k}-1.pdos', f'atomic kind {element}', all_energies, all_occ, weights, comps)
    ldos = directory / 'ldos'
    ldos.mkdir()
    for atom in range(n_atoms):
        weights = rng.uniform(0, 1, (ldos_rows, 3)) / (3 * n_atoms)
        write_pdos(
            ldos / f'bench-list{atom + 1}-1.pdos',
            f'list {atom + 1} of    1 atoms',
            all_energies,
            all_occ,
            weights,
            'spd',
        )
    return {'n_ao': int(overlap.shape[0]), 'n_atoms': n_atoms, 'nnz': int(overlap.nnz)}


# ---------------------------------------------------------------------------------------------------- timing


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(n_ao: int, window: int, ldos_rows: int, baseline: bool, routes: list[str]) -> dict:
    from aiida_nanohetero import analysis as an

    result = {}
    with tempfile.TemporaryDirectory(prefix='bench-analysis-') as tmp:
        directory = Path(tmp)
        t0 = time.perf_counter()
        result.update(generate(directory, n_ao, window))
        result['generate_s'] = time.perf_counter() - t0
        result['files_mb'] = sum(p.stat().st_size for p in directory.rglob('*') if p.is_file()) / 2**20
        result['peak_after_generate_mb'] = peak_mb()

        def timed(key, func, *args, **kwargs):
            start = time.perf_counter()
            value = func(*args, **kwargs)
            result[f'{key}_s'] = time.perf_counter() - start
            return value

        mos = timed('read_molog', an.read_mo_coefficients, directory / 'bench-orbitals-1_0.MOLog')
        overlap = timed('read_csr', an.read_overlap_csr, directory / 'bench-S_SPIN_1-1_0.csr', n_ao=mos.n_ao)
        timed('read_pdos_kinds', an.find_pdos_files, directory)
        bounds = timed('spectral_bounds', an.overlap_spectral_bounds, overlap)
        result['kappa'] = bounds[1] / bounds[0]
        if 'chebyshev' in routes:
            analysis = timed(
                'ipr_chebyshev',
                an.analyse_orbitals,
                overlap,
                mos.coefficients,
                mos.ao_atom,
                mos.energies,
                mos.occupations,
                mos.atom_elements,
                method='paper',
                route='chebyshev',
                bounds=bounds,
                tol=1e-8,
            )
            result['chebyshev_degree'] = analysis.sqrt_info['degree']
            result['chebyshev_norm_error'] = analysis.sqrt_info['norm_error']
            result['total_chebyshev_s'] = sum(
                result[k]
                for k in ('read_molog_s', 'read_csr_s', 'read_pdos_kinds_s', 'spectral_bounds_s', 'ipr_chebyshev_s')
            )
        if 'cp2k-ldos' in routes:

            def ldos_route():
                _, lists = an.find_pdos_files(directory / 'ldos')
                ordered = [lists[i] for i in sorted(lists)]
                pops, _ = an.populations_from_ldos(
                    ordered, [[i] for i in range(len(ordered))], mos.n_atoms, mos.indices
                )
                return an.ipr_from_weights(pops)

            timed('ipr_cp2k_ldos', ldos_route)
            result['total_cp2k_ldos_s'] = result['read_molog_s'] + result['ipr_cp2k_ldos_s']
        if baseline:
            import scipy.linalg

            def authors():
                dense = overlap.toarray().astype(np.float32)
                root = scipy.linalg.sqrtm(dense)
                tilde = np.dot(root, mos.coefficients.astype(np.float32))
                starts = np.flatnonzero(np.r_[True, np.diff(mos.ao_atom) > 0])
                summed = np.add.reduceat(tilde, starts, 0).astype(np.float64)
                return (summed**4).sum(0) / (summed**2).sum(0) ** 2

            ipr_authors = timed('ipr_authors', authors)
            if 'chebyshev' in routes:
                result['authors_vs_ours_max_ipr_diff'] = float(np.abs(ipr_authors - analysis.ipr_raw).max())
        result['peak_mb'] = peak_mb()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', type=int, nargs='+', default=[1000, 2000, 4000, 8000, 18000])
    parser.add_argument('--window', type=int, default=400)
    parser.add_argument('--baseline-max', type=int, default=4000, help="largest size for the authors' route")
    parser.add_argument('--routes', nargs='+', default=['chebyshev', 'cp2k-ldos'])
    parser.add_argument('--one', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--json', type=Path, help='also write the results here')
    args = parser.parse_args(argv)

    if args.one:
        print(json.dumps(run_one(args.one, args.window, 0, args.one <= args.baseline_max, args.routes)))
        return

    results = []
    for size in args.sizes:
        cmd = [sys.executable, __file__, '--one', str(size), '--window', str(args.window)]
        cmd += ['--baseline-max', str(args.baseline_max), '--routes', *args.routes]
        out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            raise SystemExit(f'size {size} failed')
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        report(result)
    if len(results) > 2:
        n = np.array([r['n_ao'] for r in results], dtype=float)
        for key in ('ipr_chebyshev_s', 'total_chebyshev_s', 'read_molog_s', 'read_csr_s', 'ipr_authors_s'):
            have = [i for i, r in enumerate(results) if key in r]
            if len(have) >= 2:
                t = np.array([results[i][key] for i in have])
                slope = np.polyfit(np.log(n[have]), np.log(t), 1)[0]
                print(f'scaling {key}: time ~ n_ao^{slope:.2f} over {int(n[have][0])}-{int(n[have][-1])} AOs')
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def report(r: dict) -> None:
    print(
        f'n_ao {r["n_ao"]:>6}  atoms {r["n_atoms"]:>5}  nnz(S) {r["nnz"] / 1e6:7.2f} M  kappa {r["kappa"]:7.1f}  '
        f'files {r["files_mb"]:8.1f} MB'
    )
    parts = [f'read MOLog {r["read_molog_s"]:.2f} s', f'read csr {r["read_csr_s"]:.2f} s']
    parts.append(f'read pdos {r["read_pdos_kinds_s"]:.2f} s')
    parts.append(f'Lanczos bounds {r["spectral_bounds_s"]:.2f} s')
    print('   ' + ', '.join(parts))
    if 'ipr_chebyshev_s' in r:
        print(
            f'   chebyshev (paper+lowdin): IPR {r["ipr_chebyshev_s"]:.2f} s (degree {r["chebyshev_degree"]}, '
            f'norm check {r["chebyshev_norm_error"]:.1e}); whole analysis {r["total_chebyshev_s"]:.2f} s'
        )
    if 'ipr_cp2k_ldos_s' in r:
        print(f'   cp2k-ldos (lowdin only): read {r["n_atoms"]} LDOS files + IPR {r["ipr_cp2k_ldos_s"]:.2f} s')
    if 'ipr_authors_s' in r:
        speedup = r['ipr_authors_s'] / r['ipr_chebyshev_s'] if 'ipr_chebyshev_s' in r else float('nan')
        print(
            f'   authors (dense sqrtm, float32): {r["ipr_authors_s"]:.2f} s  -> ours is {speedup:.1f}x faster '
            f'(max IPR difference {r.get("authors_vs_ours_max_ipr_diff", float("nan")):.1e})'
        )
    print(f'   peak memory {r["peak_mb"]:.0f} MB (generation alone {r["peak_after_generate_mb"]:.0f} MB)')
    sys.stdout.flush()


if __name__ == '__main__':
    main()
