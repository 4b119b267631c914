"""calcfunctions."""

from aiida_nanohetero.calcfunctions.builders import (
    build_half_sphere,
    build_heterostructure,
    build_perovskite_cube,
    build_sphere,
)

__all__ = (
    'build_half_sphere',
    'build_heterostructure',
    'build_perovskite_cube',
    'build_sphere',
)
