"""Shared pieces of the builders: input errors, per-atom labels, parameter checks."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from aiida_nanohetero.builders._data import HALIDES

__all__ = (
    'CHALCOHALIDE_DOMAIN',
    'DOMAINS',
    'PEROVSKITE_DOMAIN',
    'BuilderInputError',
    'check_halide',
    'check_int',
    'check_positive',
    'label_atoms',
)

#: Integer codes of ``atoms.arrays['domain']`` (also stored in the AiiDA ``labels`` node).
PEROVSKITE_DOMAIN = 0
CHALCOHALIDE_DOMAIN = 1
DOMAINS = {'perovskite': PEROVSKITE_DOMAIN, 'chalcohalide': CHALCOHALIDE_DOMAIN}


class BuilderInputError(ValueError):
    """A builder parameter outside its valid range; ``parameter`` names it (for command-line messages)."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


def check_halide(halide, parameter: str = 'halide') -> str:
    """Return the canonical halide symbol (``Cl``, ``Br``, ``I``; case-insensitive) or raise."""
    if isinstance(halide, str):
        for known in HALIDES:
            if halide.strip().lower() == known.lower():
                return known
    raise BuilderInputError(parameter, f'{parameter}={halide!r} is not supported: choose one of Cl, Br, I.')


def check_int(value, parameter: str, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as an int in [minimum, maximum] or raise, naming the parameter and the range."""
    valid = f'an integer ≥ {minimum}' if maximum is None else f'an integer from {minimum} to {maximum}'
    if isinstance(value, bool) or not isinstance(value, Integral | Real):
        raise BuilderInputError(parameter, f'{parameter}={value!r} is not valid: it must be {valid}.')
    if isinstance(value, Real) and not isinstance(value, Integral):
        if not math.isfinite(value) or value != int(value):
            raise BuilderInputError(parameter, f'{parameter}={value!r} is not valid: it must be {valid}.')
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        raise BuilderInputError(parameter, f'{parameter}={value} is out of range: it must be {valid}.')
    return value


def check_positive(value, parameter: str, unit: str = 'Å', maximum: float | None = None) -> float:
    """Return ``value`` as a positive finite float (≤ maximum if given) or raise."""
    valid = f'a positive number of {unit}' + (f' up to {maximum:g} {unit}' if maximum is not None else '')
    if isinstance(value, bool) or not isinstance(value, Real):
        raise BuilderInputError(parameter, f'{parameter}={value!r} is not valid: it must be {valid}.')
    value = float(value)
    if not math.isfinite(value) or value <= 0 or (maximum is not None and value > maximum):
        raise BuilderInputError(parameter, f'{parameter}={value:g} {unit} is out of range: it must be {valid}.')
    return value


def label_atoms(atoms, domain: int | np.ndarray, interface: np.ndarray | None = None):
    """Attach the per-atom ``domain`` (int codes, see ``DOMAINS``) and ``interface`` (bool) arrays in place."""
    n = len(atoms)
    atoms.set_array('domain', np.broadcast_to(np.asarray(domain, dtype=int), (n,)).copy())
    atoms.set_array('interface', np.zeros(n, bool) if interface is None else np.asarray(interface, bool).copy())
    atoms.info['domain_codes'] = dict(DOMAINS)
    return atoms
