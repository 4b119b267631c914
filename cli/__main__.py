"""``python -m aiida_nanohetero.cli`` is the ``nanohetero`` command."""

from aiida_nanohetero.cli import cli

cli(prog_name='nanohetero')
