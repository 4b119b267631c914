"""``nanohetero.cp2k`` parser: aiida-cp2k's base parser, plus a check that the final SCF converged.

CP2K 2023 only warns ("SCF run NOT converged") when the SCF of an energy calculation runs out of steps, and
exits normally, so aiida-cp2k's parser reports success for a calculation whose energy and orbitals are not
converged. This parser returns ``ERROR_SCF_NOT_CONVERGED`` (450) in that case, which the restart handlers act on.
"""

from __future__ import annotations

from aiida.engine import ExitCode
from aiida.plugins import ParserFactory

Cp2kBaseParser = ParserFactory('cp2k_base_parser')

__all__ = ('Cp2kParser', 'final_scf_converged')


def final_scf_converged(output: str) -> bool | None:
    """Whether the last SCF in a CP2K output converged; ``None`` if the output holds no SCF at all."""
    last_failed = output.rfind('SCF run NOT converged')
    last_converged = output.rfind('SCF run converged in')
    if last_failed < 0 and last_converged < 0:
        return None
    return last_converged > last_failed


class Cp2kParser(Cp2kBaseParser):
    """Parses like ``cp2k_base_parser`` and fails a calculation whose final SCF did not converge."""

    def parse(self, **kwargs):
        exit_code = super().parse(**kwargs)
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
