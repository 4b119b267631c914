"""Provenance-tracked model builders: calcfunctions that take plain nodes and return ``StructureData``.

Every calcfunction returns

* ``structure`` — ``StructureData`` with plain element kind names (Cs, Pb, S, Cl/Br/I), no periodicity, in a
  rectangular box with ``BOX_VACUUM`` Å of vacuum around the atoms (CP2K workflows re-box it as they need);
* ``labels`` — ``ArrayData`` with the per-atom arrays ``domain`` (int; codes in the attribute ``domain_codes``:
  perovskite 0, chalcohalide 1) and ``interface`` (bool), in the order of the structure's sites, and the attributes
  ``summary`` (what :func:`~aiida_nanohetero.builders.validate` found) and ``model`` (the builder's parameters and,
  for heterostructures, mismatch, strain and interface data).

Bad input raises a ``ValueError`` naming the parameter and its valid range *before anything is stored*: each
calcfunction's input namespace has a validator that runs the ``check_*`` function (the same plain function the
command line calls), and AiiDA runs input validators before it creates any node.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_nanohetero.builders import (
    DOMAINS,
    BuilderInputError,
    chalcohalide_sphere,
    half_sphere,
    heterostructure,
    perovskite_cube,
    validate,
)

__all__ = (
    'BOX_VACUUM',
    'build_half_sphere',
    'build_heterostructure',
    'build_perovskite_cube',
    'build_sphere',
    'check_cube_inputs',
    'check_half_sphere_inputs',
    'check_heterostructure_inputs',
    'check_sphere_inputs',
    'model_nodes',
)

#: Vacuum (Å) between the atoms and the faces of the ``StructureData`` cell.
BOX_VACUUM = 10.0


def _value(node):
    return None if node is None else node.value


def _values(inputs: dict) -> dict:
    """Python values of the node inputs (``None`` for absent optional ones); lists stay lists."""
    values = {}
    for key, node in inputs.items():
        if key == 'metadata' or node is None:
            continue
        values[key] = node.get_list() if isinstance(node, orm.List) else node.value
    return values


def check_cube_inputs(n, halide='Br', lattice_constant=None, distortion=False):
    """Build the cube once from plain values; raises ``BuilderInputError`` (a ``ValueError``) for bad input."""
    return perovskite_cube(n, halide, lattice_constant, bool(distortion))


def check_sphere_inputs(radius, anion_radius=None, centre='4a'):
    return chalcohalide_sphere(radius, centre=_centre(centre), anion_radius=anion_radius)


def check_half_sphere_inputs(radius, anion_radius=None, centre='4a', side=1):
    return half_sphere(radius, centre=_centre(centre), anion_radius=anion_radius, side=side)


def check_heterostructure_inputs(
    n,
    halide='Br',
    radius=20.035,
    anion_radius=None,
    lattice_constant=None,
    distortion=False,
    facet='010',
    strain='perovskite',
    centre='4a',
    contact='PbX2',
):
    return heterostructure(
        n,
        halide,
        radius,
        anion_radius=anion_radius,
        lattice_constant=lattice_constant,
        distortion=bool(distortion),
        facet=facet,
        strain=strain,
        centre=_centre(centre),
        contact=contact,
    )


def _centre(centre):
    return tuple(centre) if isinstance(centre, list | tuple) else centre


def _json(value):
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def model_nodes(atoms, vacuum: float = BOX_VACUUM) -> dict:
    """Unstored ``structure`` and ``labels`` nodes for a built model (what the calcfunctions return)."""
    boxed = atoms.copy()
    positions = boxed.get_positions()
    low, high = positions.min(axis=0), positions.max(axis=0)
    boxed.set_cell(high - low + 2 * vacuum)
    boxed.translate(vacuum - low)
    boxed.set_pbc(False)
    for name in list(boxed.arrays):
        if name not in ('numbers', 'positions'):
            del boxed.arrays[name]
    boxed.info = {}
    structure = orm.StructureData(ase=boxed)
    structure.pbc = (False, False, False)

    labels = orm.ArrayData()
    labels.set_array('domain', np.asarray(atoms.arrays['domain'], dtype=int))
    labels.set_array('interface', np.asarray(atoms.arrays['interface'], dtype=bool))
    labels.base.attributes.set('domain_codes', dict(DOMAINS))
    labels.base.attributes.set('summary', _json(validate(atoms).as_dict()))
    labels.base.attributes.set('model', _json(dict(atoms.info)))
    return {'structure': structure, 'labels': labels}


def _validator(check):
    """An input-namespace validator that runs ``check`` on the plain values and returns its message, if any."""

    def validator(inputs, _namespace):
        try:
            check(**_values(inputs))
        except BuilderInputError as exception:
            return str(exception)
        except TypeError:  # a required input is missing: the port validation reports it
            return None
        return None

    return validator


@calcfunction
def build_perovskite_cube(
    n: orm.Int,
    halide: orm.Str,
    lattice_constant: orm.Float | None = None,
    distortion: orm.Bool | None = None,
) -> dict:
    """The charge-balanced CsPbX3 n-cube (see :func:`aiida_nanohetero.builders.perovskite_cube`)."""
    atoms = perovskite_cube(n.value, halide.value, _value(lattice_constant), bool(_value(distortion)))
    return model_nodes(atoms)


@calcfunction
def build_sphere(
    radius: orm.Float,
    anion_radius: orm.Float | None = None,
    centre: orm.Str | None = None,
) -> dict:
    """A charge-balanced Pb4S3Br2 sphere (see :func:`aiida_nanohetero.builders.chalcohalide_sphere`)."""
    atoms = chalcohalide_sphere(radius.value, centre=_value(centre) or '4a', anion_radius=_value(anion_radius))
    return model_nodes(atoms)


@calcfunction
def build_half_sphere(
    radius: orm.Float,
    anion_radius: orm.Float | None = None,
    centre: orm.Str | None = None,
    side: orm.Int | None = None,
) -> dict:
    """One half of the Pb4S3Br2 sphere (see :func:`aiida_nanohetero.builders.half_sphere`)."""
    side_value = 1 if side is None else side.value
    atoms = half_sphere(radius.value, centre=_value(centre) or '4a', anion_radius=_value(anion_radius), side=side_value)
    return model_nodes(atoms)


@calcfunction
def build_heterostructure(
    n: orm.Int,
    halide: orm.Str,
    radius: orm.Float,
    anion_radius: orm.Float | None = None,
    lattice_constant: orm.Float | None = None,
    distortion: orm.Bool | None = None,
    facet: orm.Str | None = None,
    strain: orm.Str | None = None,
    centre: orm.Str | None = None,
    contact: orm.Str | None = None,
) -> dict:
    """The CsPbX3 cube on a Pb4S3Br2 half-sphere (see :func:`aiida_nanohetero.builders.heterostructure`)."""
    atoms = heterostructure(
        n.value,
        halide.value,
        radius.value,
        anion_radius=_value(anion_radius),
        lattice_constant=_value(lattice_constant),
        distortion=bool(_value(distortion)),
        facet=_value(facet) or '010',
        strain=_value(strain) or 'perovskite',
        centre=_value(centre) or '4a',
        contact=_value(contact) or 'PbX2',
    )
    return model_nodes(atoms)


def _attach_validators() -> None:
    pairs = (
        (build_perovskite_cube, check_cube_inputs),
        (build_sphere, check_sphere_inputs),
        (build_half_sphere, check_half_sphere_inputs),
        (build_heterostructure, check_heterostructure_inputs),
    )
    for function, check in pairs:
        function.spec().inputs.validator = _validator(check)


_attach_validators()
