"""Crystal data embedded in the builders (cells, asymmetric units, lattice constants, formal charges).

Every structure is given as a space group, a cell and an asymmetric unit, expanded with
``ase.spacegroup.crystal``. All Pnma settings are the standard one (b is the long axis).

Sources
-------
* Pb4S3Br2, Pnma (No. 62): Toso et al., J. Am. Chem. Soc. 2020, 142, 10198 (3D electron diffraction and XRPD
  cell; atomic positions relaxed by DFT at fixed cell), as published by the same group in the CIF
  ``examples/cifs/Pb4S3Br2_DFT.cif`` of the public repository nlesc-nano/QD_Builder.
* CsPbBr3, Pnma, room temperature: Stoumpos et al., Cryst. Growth Des. 2013, 13, 2722 (COD 4510745).
* gamma-CsPbI3, Pnma, 295 K: Straus et al., J. Am. Chem. Soc. 2019, 141, 11435 (COD 4127359).
* CsPbCl3, cubic Pm-3m: a = 5.600 Å (experimental room-temperature pseudo-cubic constant); the seed study
  (Imran et al., J. Am. Chem. Soc. 2021, 143, 1435) reports its CsPbCl3 domain as cubic.
* Pseudo-cubic constants a_pc: CsPbCl3 5.600 Å, CsPbBr3 5.83 Å, CsPbI3 6.19 Å (the same sources; for the Pnma
  phases a_pc = (V/4)^(1/3)).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = (
    'CHALCOHALIDE',
    'FORMAL_CHARGES',
    'HALIDES',
    'PEROVSKITE_PNMA',
    'PSEUDOCUBIC_A',
    'OrthoCrystal',
)

#: Halides X of CsPbX3 the builders know.
HALIDES = ('Cl', 'Br', 'I')

#: Formal (oxidation-state) charges used for every neutrality check.
FORMAL_CHARGES = {'Cs': 1, 'Pb': 2, 'S': -2, 'Se': -2, 'F': -1, 'Cl': -1, 'Br': -1, 'I': -1}

#: Experimental pseudo-cubic lattice constants of CsPbX3 in Å (sources in the module docstring).
PSEUDOCUBIC_A = {'Cl': 5.600, 'Br': 5.83, 'I': 6.19}


@dataclass(frozen=True)
class OrthoCrystal:
    """An orthorhombic crystal given by space group, cell and asymmetric unit (fractional coordinates)."""

    name: str
    spacegroup: int
    cell: tuple[float, float, float]
    symbols: tuple[str, ...]
    basis: tuple[tuple[float, float, float], ...]
    source: str

    @property
    def volume(self) -> float:
        return float(np.prod(self.cell))

    def unit_cell(self):
        """The conventional cell expanded from the asymmetric unit (an ``ase.Atoms``, cached)."""
        return _expand(self)


@cache
def _expand(crystal: OrthoCrystal):
    from ase.spacegroup import crystal as ase_crystal

    a, b, c = crystal.cell
    return ase_crystal(
        list(crystal.symbols),
        [list(p) for p in crystal.basis],
        spacegroup=crystal.spacegroup,
        cellpar=[a, b, c, 90, 90, 90],
    )


# Toso et al. 2020 (DFT-relaxed positions at the experimental cell), CIF Pb4S3Br2_DFT.cif of nlesc-nano/QD_Builder.
CHALCOHALIDE = OrthoCrystal(
    name='Pb4S3Br2',
    spacegroup=62,
    cell=(8.20261, 14.72212, 8.16986),
    symbols=('Pb', 'Pb', 'Pb', 'S', 'S', 'Br'),
    basis=(
        (0.128131, 0.750000, 0.117896),  # Pb1 4c
        (0.466672, 0.750000, 0.817366),  # Pb2 4c
        (0.794226, 0.941176, 0.936731),  # Pb3 8d
        (0.807880, 0.750000, 0.999052),  # S1 4c
        (0.634160, 0.885044, 0.646000),  # S2 8d
        (0.488357, 0.903264, 0.166210),  # Br1 8d
    ),
    source='Toso et al., JACS 2020, 142, 10198; nlesc-nano/QD_Builder examples/cifs/Pb4S3Br2_DFT.cif',
)

#: Orthorhombic (Pnma) CsPbX3 phases used for the optional octahedral-tilt distortion (X = Br, I).
PEROVSKITE_PNMA = {
    # Stoumpos et al., Cryst. Growth Des. 2013, 13, 2722 (COD 4510745), room temperature.
    'Br': OrthoCrystal(
        name='CsPbBr3',
        spacegroup=62,
        cell=(8.2440, 11.7351, 8.1982),
        symbols=('Cs', 'Pb', 'Br', 'Br'),
        basis=(
            (0.53100, 0.25, 0.00702),  # Cs 4c
            (0.0, 0.5, 0.0),  # Pb 4a
            (0.29347, 0.47611, 0.20607),  # Br1 8d
            (0.00370, 0.75, 0.04550),  # Br2 4c
        ),
        source='Stoumpos et al., Cryst. Growth Des. 2013, 13, 2722 (COD 4510745)',
    ),
    # Straus et al., JACS 2019, 141, 11435 (COD 4127359), 295 K.
    'I': OrthoCrystal(
        name='CsPbI3',
        spacegroup=62,
        cell=(8.8637, 12.4838, 8.5783),
        symbols=('Cs', 'Pb', 'I', 'I'),
        basis=(
            (0.43839, 0.25, 0.02006),  # Cs 4c
            (0.0, 0.0, 0.0),  # Pb 4a
            (0.50303, 0.25, 0.56458),  # I1 4c
            (0.19871, 0.03272, 0.30445),  # I2 8d
        ),
        source='Straus et al., JACS 2019, 141, 11435 (COD 4127359)',
    ),
}
