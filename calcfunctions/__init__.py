"""Provenance-tracked calcfunctions: the builders (models as ``StructureData``), the CP2K helpers
(``calcfunctions.cp2k``) and the orbital analysis (``calcfunctions.analysis``)."""

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
