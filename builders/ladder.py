"""The size ladder: the paper's models for the HPC campaign and smaller, equally valid versions for local work.

========  ======  ===========================  =======================  ==================================
rung      cube n  half-sphere radius (anions)  cube / half / hetero      use
========  ======  ===========================  =======================  ==================================
tiny      1       8.25 Å (8.25 Å)              Cs4PbX6 (11) /           tests, CP2K on 2 cores
                                               Pb20S15Br10 (45) / 54
mini      2       10.0 Å (10.0 Å)              Cs20Pb8X36 (64) /        local runs (a workstation)
                                               Pb34S25Br18 (77) / 137
paper     5       20.035 Å (19.95 Å)           Cs200Pb125X450 (775) /   the seed's models, HPC campaign
                                               Pb274S211Br126 (611) /
                                               1336
========  ======  ===========================  =======================  ==================================

Why these rungs: n = 1 is the smallest cube (one PbX6 octahedron, the published Cs4PbX6), and 8.25 Å lies in the
first radius window above the 7.264 Å minimum (:data:`~aiida_nanohetero.builders.chalcohalide.MIN_RADIUS`) whose
half-sphere is exactly stoichiometric (Pb20S15Br10 = 5 Pb4S3Br2, radii 8.164–8.32 Å) and wider than the n = 1
cube; the mini half-sphere is 2.0 nm across and covers the n = 2 cube's facet; ``paper`` reproduces the seed
(n = 5 "3.2 nm" cube, the "4.2 nm" sphere cut as described in ``docs/builders.md``, its half, and their
heterostructure). Every rung is neutral and passes :func:`~aiida_nanohetero.builders.validation.validate` for
X = Cl, Br, I (tested).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from aiida_nanohetero.builders._common import BuilderInputError

__all__ = ('KINDS', 'LADDER', 'PRESETS', 'Rung', 'build_model', 'preset_parameters')


@dataclass(frozen=True)
class Rung:
    """Sizes of one rung: the cube's n and the (half-)sphere's Pb and anion radii in Å."""

    name: str
    cube_n: int
    radius: float
    anion_radius: float | None
    description: str

    def as_dict(self) -> dict:
        return asdict(self)


LADDER = {
    'tiny': Rung('tiny', 1, 8.25, None, 'smallest meaningful models: tests and CP2K on 2 cores'),
    'mini': Rung('mini', 2, 10.0, None, 'n = 2 cube and a 2.0 nm half-sphere: local runs'),
    'paper': Rung('paper', 5, 20.035, 19.95, "the seed's sizes: n = 5 cube, the 4.2 nm sphere, its half"),
}

#: Alias: the presets accepted by ``--preset`` are the rungs of the ladder.
PRESETS = LADDER

#: Model kinds and the parameters each takes.
KINDS = {
    'cube': ('n', 'halide', 'lattice_constant', 'distortion'),
    'sphere': ('radius', 'anion_radius', 'centre'),
    'half-sphere': ('radius', 'anion_radius', 'centre', 'side'),
    'heterostructure': (
        'n',
        'halide',
        'radius',
        'anion_radius',
        'centre',
        'lattice_constant',
        'distortion',
        'facet',
        'strain',
        'contact',
    ),
}


def _kind(kind: str) -> str:
    key = str(kind).replace('_', '-').lower()
    if key not in KINDS:
        raise BuilderInputError('kind', f'kind={kind!r} is not supported: choose one of {", ".join(KINDS)}.')
    return key


def preset_parameters(kind: str, preset: str | None = None, **parameters) -> dict:
    """The explicit builder parameters of ``kind`` for ``preset`` (a rung name), overridden by ``parameters``.

    Parameters that are ``None`` are left to the preset (or to the builder's default); parameters that the kind
    does not take are an error.
    """
    kind = _kind(kind)
    unknown = sorted({k for k, v in parameters.items() if v is not None} - set(KINDS[kind]))
    if unknown:
        accepted = ', '.join(KINDS[kind])
        raise BuilderInputError(unknown[0], f'{kind} takes no parameter {unknown[0]!r}: it takes {accepted}.')
    resolved = {}
    if preset is not None:
        if preset not in LADDER:
            raise BuilderInputError('preset', f'preset={preset!r} is not supported: choose one of {", ".join(LADDER)}.')
        rung = LADDER[preset]
        values = {'n': rung.cube_n, 'radius': rung.radius, 'anion_radius': rung.anion_radius}
        resolved = {k: v for k, v in values.items() if k in KINDS[kind] and v is not None}
    resolved.update({k: v for k, v in parameters.items() if v is not None})
    return resolved


def build_model(kind: str, preset: str | None = None, **parameters):
    """Build a model of ``kind`` (cube, sphere, half-sphere, heterostructure) for a preset and/or parameters."""
    from aiida_nanohetero.builders.chalcohalide import chalcohalide_sphere, half_sphere
    from aiida_nanohetero.builders.heterostructure import heterostructure
    from aiida_nanohetero.builders.perovskite import perovskite_cube

    kind = _kind(kind)
    resolved = preset_parameters(kind, preset, **parameters)
    if kind == 'cube' and 'n' not in resolved:
        raise BuilderInputError('n', 'cube needs n (octahedra per edge, an integer ≥ 1) or a preset.')
    builder = {
        'cube': perovskite_cube,
        'sphere': chalcohalide_sphere,
        'half-sphere': half_sphere,
        'heterostructure': heterostructure,
    }[kind]
    return builder(**resolved)
