"""Named exceptions of the orbital analysis.

Every error is a :class:`ValueError`, names the file (where there is one) and says what is wrong, so a
calcfunction can turn it into an exit code and a user of ``nanohetero analyse`` sees what to fix.
"""

from __future__ import annotations

import functools

__all__ = (
    'AOCountMismatchError',
    'AnalysisInputError',
    'BandEdgeNotFoundError',
    'OrbitalWindowError',
    'OverlapFormatError',
    'OverlapNotPositiveDefiniteError',
    'OverlapNotSymmetricError',
    'PDOSFormatError',
    'SpinPolarisedError',
    'UnknownIPRMethodError',
    'WfnFormatError',
)


class AnalysisInputError(ValueError):
    """Base class: an input of the orbital analysis is unusable."""


class SpinPolarisedError(AnalysisInputError):
    """A spin-polarised (UKS/LSD) output was given; the analysis supports closed-shell runs only."""


class AOCountMismatchError(AnalysisInputError):
    """Two files of one run disagree on the number (or the atom map) of atomic orbitals."""


class WfnFormatError(AnalysisInputError):
    """A binary ``-RESTART.wfn`` file is truncated, corrupted or of an unsupported kind."""


class OverlapFormatError(AnalysisInputError):
    """An ``&S_CSR_WRITE`` file is truncated or corrupted."""


class OverlapNotSymmetricError(AnalysisInputError):
    """The overlap matrix read is not symmetric."""


class OverlapNotPositiveDefiniteError(AnalysisInputError):
    """The overlap matrix is not (numerically) positive definite, so S^½ is not defined."""


class PDOSFormatError(AnalysisInputError):
    """A ``.pdos`` file is truncated, corrupted or of an unsupported kind."""


class UnknownIPRMethodError(AnalysisInputError):
    """An IPR method (or an S^½ route) that does not exist was requested."""


class OrbitalWindowError(AnalysisInputError):
    """The orbital window does not contain what the analysis needs (the HOMO and the LUMO)."""


class BandEdgeNotFoundError(OrbitalWindowError):
    """No delocalised (IPR below threshold) state on one side of the gap inside the window."""


@functools.cache
def _spin_class(base: type[AnalysisInputError]) -> type[AnalysisInputError]:
    return type(f'SpinPolarised{base.__name__}', (base, SpinPolarisedError), {'__module__': __name__})


def spin_error(base: type[AnalysisInputError], message: str) -> AnalysisInputError:
    """An exception that is both a ``base`` (the reader's own format error) and a :class:`SpinPolarisedError`."""
    return _spin_class(base)(message)
