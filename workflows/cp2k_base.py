"""``nanohetero.cp2k``: aiida-cp2k's ``Cp2kBaseWorkChain`` with the restart handlers our runs need.

aiida-cp2k's own handler (``restart_incomplete_calculation``, enabled by our protocols) continues a calculation
that stopped at CP2K's ``GLOBAL/WALLTIME``, stopped with a truncated output, or ran out of geometry steps, from
the last geometry and wavefunction; :meth:`Cp2kRestartWorkChain.handle_scheduler_walltime` does the same for a
job that the scheduler killed at its walltime (exit code 120). aiida-cp2k's handler gives up on an SCF that did
not converge unless the SCF gradient was already small. :meth:`Cp2kRestartWorkChain.handle_scf_not_converged`
takes over there: it restarts from the last wavefunction and, if that is not enough, changes the SCF strategy, a
bounded number of times. :meth:`Cp2kRestartWorkChain.carry_bfgs_hessian` makes every continued BFGS optimisation
go on with the Hessian the stopped one had built, not with a fresh guess.
"""

from __future__ import annotations

import copy
import re

from aiida import orm
from aiida.engine import ProcessHandlerReport, process_handler
from aiida.plugins import CalculationFactory, WorkflowFactory

__all__ = (
    'HESSIAN_FILE',
    'OT_SCF_STRATEGIES',
    'SCF_STRATEGIES',
    'Cp2kRestartWorkChain',
    'geometry_progress',
    'geometry_steps_done',
    'merge_parameters',
    'uses_ot',
)

Cp2kBaseWorkChain = WorkflowFactory('cp2k.base')
Cp2kCalculation = CalculationFactory('cp2k')

#: A calculation that stopped before its end and is continued from what it wrote: CP2K's own walltime stop, an
#: output cut short, or the scheduler's walltime kill.
STOPPED_EARLY = (
    Cp2kCalculation.exit_codes.ERROR_OUT_OF_WALLTIME,
    Cp2kCalculation.exit_codes.ERROR_OUTPUT_INCOMPLETE,
    Cp2kCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,
)

#: What to change, in this order, after each SCF that did not converge: (description, CP2K input to merge).
#: Every attempt also restarts from the last wavefunction when the failed run wrote one. Diagonalisation runs (our
#: protocols) get gentler mixing, then stronger smearing; OT runs (a user's override) get a preconditioner built
#: for small gaps, then the more robust conjugate-gradient minimiser.
SCF_STRATEGIES: tuple[tuple[str, dict], ...] = (
    ('restart from the last wavefunction, twice as many SCF steps', {}),
    (
        'gentler Broyden mixing (alpha 0.1, 12 histories)',
        {'FORCE_EVAL': {'DFT': {'SCF': {'MIXING': {'METHOD': 'BROYDEN_MIXING', 'ALPHA': 0.1, 'NBROYDEN': 12}}}}},
    ),
    (
        'Fermi-Dirac smearing at 2000 K',
        {
            'FORCE_EVAL': {
                'DFT': {
                    'SCF': {'SMEAR': {'_': 'ON', 'METHOD': 'FERMI_DIRAC', 'ELECTRONIC_TEMPERATURE': 2000}},
                }
            }
        },
    ),
)
OT_SCF_STRATEGIES: tuple[tuple[str, dict], ...] = (
    ('restart from the last wavefunction, twice as many SCF steps', {}),
    (
        'OT with the FULL_ALL preconditioner and a small-gap estimate',
        {'FORCE_EVAL': {'DFT': {'SCF': {'OT': {'PRECONDITIONER': 'FULL_ALL', 'ENERGY_GAP': 0.002}}}}},
    ),
    (
        'OT with the conjugate-gradient minimiser',
        {'FORCE_EVAL': {'DFT': {'SCF': {'OT': {'MINIMIZER': 'CG', 'LINESEARCH': '2PNT'}}}}},
    ),
)


def uses_ot(parameters: dict) -> bool:
    """Whether a CP2K input minimises with OT (``&SCF/&OT`` present and not switched off)."""
    ot = parameters.get('FORCE_EVAL', {}).get('DFT', {}).get('SCF', {}).get('OT')
    return isinstance(ot, dict) and str(ot.get('_', 'ON')).upper() not in ('OFF', 'F', 'FALSE', '.FALSE.')


WFN_FILE = 'aiida-RESTART.wfn'
#: The BFGS Hessian CP2K writes after every geometry step (``MOTION/GEO_OPT/BFGS/RESTART`` print key, on by default).
HESSIAN_FILE = 'aiida-BFGS.Hessian'


def merge_parameters(parameters: dict, changes: dict) -> dict:
    """A copy of a CP2K input dictionary with ``changes`` merged in recursively."""
    merged = copy.deepcopy(parameters)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_parameters(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def geometry_steps_done(output: str) -> int:
    """How many geometry steps a CP2K optimisation completed (step 0 is the starting point, not a step)."""
    progress = geometry_progress(output)
    return 0 if progress is None else progress['step']


def geometry_progress(output: str) -> dict | None:
    """The last geometry step a CP2K optimisation completed, from its output: ``step``, the largest force
    ``max_force`` and its threshold ``max_force_limit`` (Hartree/bohr; ``None`` at step 0, which is only the
    starting point), and ``energy`` (Hartree). ``None`` when no step has finished yet.

    Two layouts: CP2K 2023.1 prints an ``Informations at step = N`` block (``Max. gradient = ...``, ``Conv. limit
    for gradients = ...``, ``Total Energy = ...``); 2025.1 and 2026.2 print ``OPT| Step number N`` lines
    (``OPT| Maximum gradient``, ``OPT| Convergence limit for maximum gradient``, ``OPT| Total energy [hartree]``).
    """
    old = output.rfind('Informations at step =')
    new = output.rfind('OPT| Step number')
    if old < 0 and new < 0:
        return None
    if old > new:  # 2023.1: 'Max. gradient              =   0.0235347294'
        last = output[old + len('Informations at step =') :].split('-' * 47 + '\n', 1)[0]
        line, names = r'^\s*{}\s+=\s+([-+0-9.Ee]+)', ('Total Energy', r'Max\. gradient', r'Conv\. limit for gradients')
    else:  # 2025.1, 2026.2: 'OPT| Maximum gradient                0.0022572971'
        last = output[new + len('OPT| Step number') :].split('OPT| ******', 1)[0]
        line = r'^\s*OPT\| {}\s+([-+0-9.Ee]+)\s*$'
        names = (r'Total energy \[hartree\]', 'Maximum gradient', 'Convergence limit for maximum gradient')

    def number(name):
        found = re.search(line.format(name), last, flags=re.MULTILINE)
        return float(found.group(1)) if found else None

    energy, max_force, limit = (number(name) for name in names)
    return {
        'step': int(re.match(r'\s*(\d+)', last).group(1)),
        'energy': energy,
        'max_force': max_force,
        'max_force_limit': limit,
    }


class Cp2kRestartWorkChain(Cp2kBaseWorkChain):
    """``Cp2kBaseWorkChain`` plus a bounded SCF-recovery handler; all failures end with a named exit code."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.exit_code(
            320,
            'ERROR_SCF_NOT_CONVERGED_UNRECOVERABLE',
            message='The SCF did not converge after every recovery strategy was tried: {strategies}.',
        )
        spec.exit_code(
            330,
            'ERROR_NO_PROGRESS_WITHIN_WALLTIME',
            message='Two runs in a row hit the walltime before completing one geometry step: give each job more '
            'time (max_wallclock_seconds) or more resources.',
        )

    def setup(self):
        super().setup()
        self.ctx.scf_attempt = 0
        self.ctx.stalled_runs = 0

    @process_handler(priority=450, exit_codes=list(STOPPED_EARLY))
    def handle_no_progress_within_walltime(self, calc):
        """Stop, instead of restarting forever, when a geometry optimisation makes no progress within its walltime.

        aiida-cp2k's handler restarts a stopped run from its wavefunction whenever an SCF finished; if the walltime
        is shorter than one geometry step, every restart ends where the previous one did.
        """
        if self.ctx.inputs.parameters.get_dict().get('GLOBAL', {}).get('RUN_TYPE') not in ('GEO_OPT', 'CELL_OPT'):
            return None
        output = calc.outputs.retrieved.base.repository.get_object_content(calc.base.attributes.get('output_filename'))
        if geometry_steps_done(output) > 0:
            self.ctx.stalled_runs = 0
            return None
        self.ctx.stalled_runs += 1
        if self.ctx.stalled_runs >= 2:
            return ProcessHandlerReport(True, self.exit_codes.ERROR_NO_PROGRESS_WITHIN_WALLTIME)
        return None

    @process_handler(priority=402, exit_codes=[Cp2kCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME])
    def handle_scheduler_walltime(self, calc):
        """Continue a job that the scheduler killed at its walltime, like one that CP2K stopped itself.

        aiida-cp2k's ``restart_incomplete_calculation`` acts on CP2K's own walltime stop (400) and on a truncated
        output (303), but not on the scheduler's exit code (120) that our parser keeps for a job killed by the
        scheduler: this handler hands such a job to the same logic, which continues it from the last geometry and
        wavefunction found in the killed job's remote folder (or stops with ``NO_RESTART_DATA`` if it wrote none).
        """
        self.report(
            f'{calc.process_label}<{calc.pk}> was killed by the scheduler at its walltime '
            f'({calc.get_option("max_wallclock_seconds")} s): continuing it from what it wrote'
        )
        return Cp2kBaseWorkChain.restart_incomplete_calculation.__wrapped__(self, calc)

    @process_handler(
        priority=400,
        exit_codes=[*STOPPED_EARLY, Cp2kCalculation.exit_codes.ERROR_MAXIMUM_NUMBER_OPTIMIZATION_STEPS_REACHED],
    )
    def carry_bfgs_hessian(self, calc):
        """Continue a BFGS optimisation with the Hessian the stopped run had built.

        Runs after aiida-cp2k's ``restart_incomplete_calculation`` (and :meth:`handle_scheduler_walltime`), which
        continue from the last geometry (``EXT_RESTART``) and wavefunction but leave BFGS to start again from its
        initial guess, so that where the walltime falls changes the path of the relaxation. When the stopped run
        wrote its Hessian, the continuation reads it (``MOTION/GEO_OPT/BFGS/RESTART_HESSIAN``) from the stopped
        run's folder, which it already gets as ``parent_calc/``, and goes on as one uninterrupted run would (the
        tiny cube: the same largest forces, to two digits, as one job). Other optimisers (LBFGS, CG) keep no
        Hessian file and are left as they are.
        """
        if 'remote_folder' not in calc.outputs:
            return None
        parameters = self.ctx.inputs.parameters.get_dict()
        if parameters.get('GLOBAL', {}).get('RUN_TYPE') != 'GEO_OPT':
            return None  # CELL_OPT keeps its optimiser in MOTION/CELL_OPT (our clusters in vacuum never use it)
        optimizer = str(parameters.get('MOTION', {}).get('GEO_OPT', {}).get('OPTIMIZER', 'BFGS')).upper()
        parent = self.ctx.inputs.get('parent_calc_folder')
        if optimizer != 'BFGS' or parent is None or parent.uuid != calc.outputs.remote_folder.uuid:
            return None  # not BFGS, or the run is not being continued from this calculation's folder
        bfgs = parameters.setdefault('MOTION', {}).setdefault('GEO_OPT', {}).setdefault('BFGS', {})
        if HESSIAN_FILE in calc.outputs.remote_folder.listdir():
            bfgs.update({'RESTART_HESSIAN': True, 'RESTART_FILE_NAME': f'./parent_calc/{HESSIAN_FILE}'})
            self.report(f'continuing the BFGS optimisation of {calc.process_label}<{calc.pk}> with its Hessian')
        elif bfgs.pop('RESTART_HESSIAN', None) is not None:
            # stopped before its first geometry step: no Hessian in its folder, so CP2K must not look for one
            bfgs.pop('RESTART_FILE_NAME', None)
        else:
            return None
        self.ctx.inputs.parameters = orm.Dict(parameters)
        return None

    @process_handler(priority=500, exit_codes=[Cp2kCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED])
    def handle_scf_not_converged(self, calc):
        """Restart from the last wavefunction with the next SCF strategy; stop once all were tried."""
        strategies = OT_SCF_STRATEGIES if uses_ot(self.ctx.inputs.parameters.get_dict()) else SCF_STRATEGIES
        if self.ctx.scf_attempt >= len(strategies):
            tried = '; '.join(description for description, _ in strategies)
            return ProcessHandlerReport(
                True, self.exit_codes.ERROR_SCF_NOT_CONVERGED_UNRECOVERABLE.format(strategies=tried)
            )
        description, changes = strategies[self.ctx.scf_attempt]
        self.ctx.scf_attempt += 1

        parameters = self.ctx.inputs.parameters.get_dict()
        scf = parameters.setdefault('FORCE_EVAL', {}).setdefault('DFT', {}).setdefault('SCF', {})
        scf['MAX_SCF'] = 2 * int(scf.get('MAX_SCF', 50)) if self.ctx.scf_attempt == 1 else scf.get('MAX_SCF', 50)
        parameters = merge_parameters(parameters, changes)

        wrote_wavefunction = WFN_FILE in calc.outputs.remote_folder.listdir()
        if wrote_wavefunction:
            self.ctx.inputs.parent_calc_folder = calc.outputs.remote_folder
            parameters = merge_parameters(
                parameters,
                {
                    'FORCE_EVAL': {
                        'DFT': {'RESTART_FILE_NAME': f'./parent_calc/{WFN_FILE}', 'SCF': {'SCF_GUESS': 'RESTART'}}
                    }
                },
            )
        self.ctx.inputs.parameters = orm.Dict(parameters)
        self.report(
            f'SCF of {calc.process_label}<{calc.pk}> did not converge: attempt {self.ctx.scf_attempt} of '
            f'{len(strategies)}, {description}'
            + (', from its wavefunction' if wrote_wavefunction else ' (no wavefunction written)')
        )
        return ProcessHandlerReport(True)
