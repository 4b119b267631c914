"""aiida-nanohetero: AiiDA workflows for halide perovskite / lead chalcohalide nanocrystal heterostructures.

The repository root is this import package; its subpackages are ``builders`` (atomistic models),
``analysis`` (readers and numerical cores), ``calcfunctions`` (provenance-tracked wrappers),
``workflows`` (WorkChains and protocols), ``profiles`` (declarative AiiDA set-ups) and ``cli``.
"""

__version__ = '0.1.0'
