"""``nanohetero.cp2k`` parser: aiida-cp2k's base parser, plus a check that the final SCF converged.

CP2K 2023 only warns ("SCF run NOT converged") when the SCF of an energy calculation runs out of steps, and
exits normally, so aiida-cp2k's parser reports success for a calculation whose energy and orbitals are not
converged. This parser returns ``ERROR_SCF_NOT_CONVERGED`` (450) in that case, which the restart handlers act on.
"""

from __future__ import annotations

import re

from aiida.engine import ExitCode
from aiida.plugins import ParserFactory

Cp2kBaseParser = ParserFactory('cp2k_base_parser')

__all__ = ('Cp2kParser', 'final_scf_converged', 'killed_for_walltime')


def final_scf_converged(output: str) -> bool | None:
    """Whether the last SCF in a CP2K output converged; ``None`` if the output holds no SCF at all."""
    # diagonalisation: "SCF run converged in N steps" / "SCF run NOT converged"; OT with an outer loop:
    # "outer SCF loop converged in ..." / "outer SCF loop FAILED to converge ..."
    last_failed = max(output.rfind('SCF run NOT converged'), output.rfind('outer SCF loop FAILED'))
    last_converged = max(output.rfind('SCF run converged in'), output.rfind('outer SCF loop converged'))
    if last_failed < 0 and last_converged < 0:
        return None
    return last_converged > last_failed


def killed_for_walltime(scheduler_stderr: str) -> bool:
    """Whether SLURM's stderr says the job was cancelled for its time limit (searched on every line; AiiDA's own
    check only looks at the first line, and ``sacct`` is not available without SLURM accounting)."""
    return re.search(r'cancelled at \S+ due to time limit', scheduler_stderr, re.IGNORECASE) is not None


class Cp2kParser(Cp2kBaseParser):
    """Parses like ``cp2k_base_parser`` and fails a calculation whose final SCF did not converge.

    A job that the scheduler killed at its walltime keeps the scheduler's exit code,
    ``ERROR_SCHEDULER_OUT_OF_WALLTIME`` (120), instead of the less specific "output incomplete" (303) that the
    truncated CP2K output gives: the restart work chain continues such a job from its last geometry and wavefunction.
    """

    def parse(self, **kwargs):
        exit_code = super().parse(**kwargs)
        if exit_code is not None and exit_code.status == self.exit_codes.ERROR_OUTPUT_INCOMPLETE.status:
            if self._scheduler_killed_for_walltime():
                return self.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME
        if exit_code is not None and exit_code.status != 0:
            return exit_code
        filename = self.node.base.attributes.get('output_filename')
        try:
            output = self.retrieved.base.repository.get_object_content(filename)
        except (OSError, FileNotFoundError):
            return self.exit_codes.ERROR_OUTPUT_READ
        if final_scf_converged(output) is False:
            return self.exit_codes.ERROR_SCF_NOT_CONVERGED
        return exit_code or ExitCode(0)

    def _scheduler_killed_for_walltime(self) -> bool:
        walltime = self.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME.status
        if self.node.exit_status == walltime:  # set by the scheduler's output parser, which runs first
            return True
        filename = self.node.get_option('scheduler_stderr')
        try:
            stderr = self.retrieved.base.repository.get_object_content(filename) if filename else ''
        except (OSError, FileNotFoundError):
            return False
        return killed_for_walltime(stderr)
