"""Benchmark the CP2K settings of the protocols on the n = 1 cube (Cs4PbBr6) or the tiny half-sphere, outside AiiDA.

Renders the CP2K input of a protocol exactly as the work chains do (same parameters, same cubic box), then
runs variants that each change one choice against the obvious alternative, and prints wall time, SCF steps,
peak memory and total energy for each:

    python benchmarks/bench_cp2k_settings.py [--protocol tiny] [--model cube|half-sphere] [--only diag,ot] [--keep DIR]
    python benchmarks/bench_cp2k_settings.py --convergence [--keep DIR]
    python benchmarks/bench_cp2k_settings.py --optimisers [--protocol mini] [--keep DIR]

Needs ``cp2k.psmp`` on PATH; each run takes about a minute on 2 cores.

``--convergence`` is the check behind the ``paper`` protocol's grid and vacuum: on the same cube it varies the
cutoff (200-500 Ry at the paper's 6 Å vacuum, REL_CUTOFF 60) and the vacuum (4-8 Å at 400 Ry), and prints the
total energy and the HOMO-LUMO gap against the most converged run of each series, and how often CP2K warned
that the density reaches the cell faces (the WAVELET solver's condition).

``--optimisers`` relaxes the same cube with the protocol's geometry optimisation (``mini``: CP2K's default force
thresholds; ``tiny``'s loose ones end in a step or two) using BFGS, LBFGS and CG, and prints the wall time, the
geometry steps, the SCF steps in all and the final energy of each.
"""

from __future__ import annotations

import argparse
import copy
import os
import pathlib
import re
import resource
import shutil
import subprocess
import tempfile
import time

os.environ.setdefault('AIIDA_PATH', tempfile.mkdtemp(prefix='bench-aiida-'))

from aiida_cp2k.utils import Cp2kInput

from aiida_nanohetero.builders import perovskite_cube
from aiida_nanohetero.builders.ladder import build_model
from aiida_nanohetero.calcfunctions.cp2k import in_cubic_box
from aiida_nanohetero.profiles import find_cp2k_data_file
from aiida_nanohetero.workflows.cp2k_base import merge_parameters
from aiida_nanohetero.workflows.relax_single_point import RelaxAndSinglePointWorkChain
from aiida_nanohetero.workflows.single_point import SinglePointWorkChain

VARIANTS = {
    'diag': ('protocol as is: diagonalisation + Broyden mixing', {}, None),
    'ot': (
        'OT (FULL_SINGLE_INVERSE, DIIS) instead of diagonalisation',
        {
            'FORCE_EVAL': {
                'DFT': {
                    'SCF': {
                        'ADDED_MOS': 0,
                        'DIAGONALIZATION': {'_': 'OFF'},
                        'MIXING': {'_': 'OFF'},
                        'OT': {'MINIMIZER': 'DIIS', 'PRECONDITIONER': 'FULL_SINGLE_INVERSE'},
                    }
                }
            }
        },
        None,
    ),
    'mt': (
        'MT Poisson solver (box twice the extent) instead of WAVELET',
        {'FORCE_EVAL': {'DFT': {'POISSON': {'POISSON_SOLVER': 'MT'}}}},
        'mt',
    ),
    'cutoff200': (
        'CUTOFF 200 / REL_CUTOFF 40',
        {'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 200, 'REL_CUTOFF': 40}}}},
        None,
    ),
    'cutoff300': (
        'CUTOFF 300 / REL_CUTOFF 50',
        {'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 300, 'REL_CUTOFF': 50}}}},
        None,
    ),
    'vacuum6': ("6 Å vacuum instead of the protocol's", {}, 6.0),
}


MODELS = {
    'cube': ('Cs4PbBr6 (n = 1 cube)', lambda: perovskite_cube(1, 'Br')),
    'half-sphere': ('Pb20S15Br10 (tiny half-sphere)', lambda: build_model('half-sphere', 'tiny')),
}


def cp2k_input(
    protocol: str, changes: dict, box: str | float | None, relax: bool = False, model: str = 'cube'
) -> tuple[str, str, str]:
    inputs = SinglePointWorkChain.get_protocol_inputs(protocol)
    if relax:
        inputs = {**inputs, 'cp2k': RelaxAndSinglePointWorkChain.get_protocol_inputs(protocol)['relax']}
    atoms = MODELS[model][1]()
    positions = atoms.get_positions()
    extent = float((positions.max(axis=0) - positions.min(axis=0)).max())
    vacuum = inputs['vacuum'] if box in (None, 'mt') else float(box)
    # the work chains' box; MT needs a side of twice the extent plus the vacuum
    atoms = in_cubic_box(atoms, vacuum + extent / 2 if box == 'mt' else vacuum)
    positions, side = atoms.get_positions(), float(atoms.cell[0][0])
    parameters = copy.deepcopy(inputs['cp2k']['cp2k']['parameters'])
    parameters = merge_parameters(parameters, changes)
    parameters['GLOBAL']['PROJECT'] = 'bench'
    dft = parameters['FORCE_EVAL']['DFT']
    dft['BASIS_SET_FILE_NAME'] = str(find_cp2k_data_file('BASIS_MOLOPT'))
    dft['POTENTIAL_FILE_NAME'] = str(find_cp2k_data_file('GTH_POTENTIALS'))
    subsys = parameters['FORCE_EVAL']['SUBSYS']
    subsys['CELL']['ABC'] = f'{side:.4f} {side:.4f} {side:.4f}'
    subsys['KIND'] = [{'_': el, **inputs['kinds'][el]} for el in sorted(set(atoms.get_chemical_symbols()))]
    # coordinates in an XYZ file, as aiida-cp2k writes them
    subsys['TOPOLOGY'] = {'COORD_FILE_NAME': 'bench.xyz', 'COORD_FILE_FORMAT': 'XYZ'}
    lines = [str(len(atoms)), MODELS[model][0]]
    lines += [
        f'{s} {x:.6f} {y:.6f} {z:.6f}' for s, (x, y, z) in zip(atoms.get_chemical_symbols(), positions, strict=True)
    ]
    return Cp2kInput(parameters).render(), '\n'.join(lines) + '\n', f'{side:.2f} Å box'


CONVERGENCE = {
    'cutoff': [(f'{cutoff} Ry', {'CUTOFF': cutoff, 'REL_CUTOFF': 60}, 6.0) for cutoff in (200, 300, 400, 500)],
    'vacuum': [(f'{vacuum:g} Å', {'CUTOFF': 400, 'REL_CUTOFF': 60}, vacuum) for vacuum in (4.0, 5.0, 6.0, 8.0)],
}


def convergence(executable: str, root: pathlib.Path) -> None:
    """Cutoff and vacuum series on the cube: energy and gap differences against the last (most converged) run."""
    print('# convergence of the grid and the vacuum (paper protocol: 400 / 60 Ry, 6 Å)')
    for series, runs in CONVERGENCE.items():
        results = []
        for name, mgrid, vacuum in runs:
            changes = {'FORCE_EVAL': {'DFT': {'MGRID': mgrid}}}
            text, xyz, box_text = cp2k_input('paper', changes, vacuum)
            text = text.replace('ADDED_MOS 200', 'ADDED_MOS 10')
            result = run(executable, text, xyz, root / f'{series}-{name.split()[0]}')
            results.append((name, box_text, result))
        reference = results[-1][2]
        print(f'{series:<7} {"value":>7} {"box":>10} {"wall/s":>7} {"SCF":>4} {"ΔE/mHa":>9} {"Δgap/meV":>9} warnings')
        for name, box_text, result in results:
            print(
                f'{"":<7} {name:>7} {box_text.split()[0]:>8} Å {result["wall"]:7.1f} {result["scf"]!s:>4} '
                f'{1e3 * (result["energy"] - reference["energy"]):9.4f} '
                f'{1e3 * (result["gap_ev"] - reference["gap_ev"]):9.2f} {result["edge_warnings"]:>8}',
                flush=True,
            )


OPTIMISERS = ('BFGS', 'LBFGS', 'CG')


def optimisers(executable: str, protocol: str, root: pathlib.Path) -> None:
    """The protocol's relaxation of the cube with each optimiser CP2K offers for a minimisation."""
    print(f'# Cs4PbBr6 (n = 1 cube) relaxed with the {protocol} protocol, 1 MPI rank, runs in {root}')
    print(f'{"optimiser":<10} {"wall/s":>8} {"geo steps":>9} {"SCF":>5} {"energy/Ha":>16}  converged')
    baseline = None
    for optimiser in OPTIMISERS:
        changes = {'MOTION': {'GEO_OPT': {'OPTIMIZER': optimiser}}}
        text, xyz, _ = cp2k_input(protocol, changes, None, relax=True)
        result = run(executable, text, xyz, root / optimiser.lower())
        baseline = baseline or result
        saving = ''
        if result is not baseline:
            saving = f' (BFGS saves {100 * (1 - baseline["wall"] / result["wall"]):.0f} %)'
        print(
            f'{optimiser:<10} {result["wall"]:8.1f} {result["geo_steps"]:9d} {result["scf_total"]:5d} '
            f'{result["energy"]:16.8f}  {result["geo_converged"]}{saving}',
            flush=True,
        )


def run(executable: str, text: str, xyz: str, workdir: pathlib.Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / 'bench.inp').write_text(text)
    (workdir / 'bench.xyz').write_text(xyz)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(
        [executable, '-i', 'bench.inp', '-o', 'bench.out'],
        cwd=workdir,
        env={**os.environ, 'OMP_NUM_THREADS': '1'},
        check=True,
    )
    wall = time.perf_counter() - start
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    output = (workdir / 'bench.out').read_text()
    steps = re.findall(r'SCF run converged in\s+(\d+) steps', output)
    energy = re.findall(r'ENERGY\| Total FORCE_EVAL \( QS \) energy \[a\.u\.\]:\s+(-?\d+\.\d+)', output)
    gap = float('nan')
    molog = sorted(workdir.glob('*.MOLog'))
    if molog:
        from aiida_nanohetero.analysis.molog import HARTREE_TO_EV, read_mo_eigenvalues

        gap = read_mo_eigenvalues(molog[-1]).gap * HARTREE_TO_EV
    return {
        'wall': wall,
        'gap_ev': gap,
        'edge_warnings': output.count('Density non-zero on the'),
        'scf': int(steps[-1]) if steps else None,
        'scf_total': sum(int(n) for n in steps),
        'geo_steps': len(re.findall(r'OPTIMIZATION STEP:\s+\d+', output)),
        'geo_converged': 'GEOMETRY OPTIMIZATION COMPLETED' in output,
        'energy': float(energy[-1]) if energy else float('nan'),
        'peak_mb': peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--protocol', default='tiny')
    parser.add_argument('--only', default=','.join(VARIANTS), help='comma-separated variants: ' + ', '.join(VARIANTS))
    parser.add_argument('--keep', default=None, help='keep the run folders here')
    parser.add_argument('--model', choices=list(MODELS), default='cube', help='model of the settings series')
    parser.add_argument('--convergence', action='store_true', help='cutoff and vacuum series for the paper protocol')
    parser.add_argument('--optimisers', action='store_true', help='BFGS, LBFGS and CG on the protocol relaxation')
    args = parser.parse_args()
    executable = shutil.which('cp2k.psmp')
    if executable is None:
        raise SystemExit('cp2k.psmp not found on PATH')
    root = pathlib.Path(args.keep or tempfile.mkdtemp(prefix='bench-cp2k-'))
    if args.convergence:
        convergence(executable, root)
        return
    if args.optimisers:
        optimisers(executable, args.protocol, root)
        return
    print(f'# {MODELS[args.model][0]}, protocol {args.protocol}, 1 MPI rank, OMP_NUM_THREADS=1, runs in {root}')
    print(f'{"variant":<10} {"wall/s":>8} {"SCF":>5} {"peak/MB":>8} {"energy/Ha":>16}  description')
    baseline = None
    for name in args.only.split(','):
        description, changes, box = VARIANTS[name]
        text, xyz, box_text = cp2k_input(args.protocol, changes, box, model=args.model)
        result = run(executable, text, xyz, root / name)
        baseline = baseline or result
        saving = ''
        if result is not baseline:  # the protocol's choice saves this fraction of the variant's wall time
            saving = f', protocol saves {100 * (1 - baseline["wall"] / result["wall"]):.0f} %'
        scf = result['scf'] if result['scf'] is not None else 'n/c'
        print(
            f'{name:<10} {result["wall"]:8.1f} {scf!s:>5} {result["peak_mb"]:8.0f} {result["energy"]:16.8f}  '
            f'{description} ({box_text}{saving})',
            flush=True,
        )


if __name__ == '__main__':
    main()
