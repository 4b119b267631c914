"""``nanohetero demo``: the package's main job on the embedded default."""

from __future__ import annotations

import logging
import time

import click

from aiida_nanohetero.cli import clean_errors, pass_context


class _ReportHandler(logging.Handler):
    """Shows the work chains' REPORT messages while they run, so the user sees progress."""

    def emit(self, record):
        click.echo(f'  [{time.strftime("%H:%M:%S")}] {record.getMessage()}')


def _run_with_progress(builder):
    """Run in the foreground, showing the work chains' reports as short lines instead of AiiDA's long ones."""
    from aiida.engine import run_get_node

    logger = logging.getLogger('aiida')
    quiet = [(handler, handler.level) for handler in logger.handlers]
    for handler, _ in quiet:
        handler.setLevel(logging.ERROR)
    progress = _ReportHandler(level=23)  # AiiDA's REPORT level; the parser's warnings show too
    logger.addHandler(progress)
    try:
        return run_get_node(builder)
    finally:
        logger.removeHandler(progress)
        for handler, level in quiet:
            handler.setLevel(level)


@click.command('demo')
@click.option('--halide', type=click.Choice(['Cl', 'Br', 'I']), default='Br', show_default=True)
@click.option('--protocol', default='tiny', show_default=True, help='CP2K protocol: tiny, mini or paper.')
@click.option('--code', 'code_label', default=None, help='CP2K code label (default: the one `nanohetero setup` made).')
@pass_context
@clean_errors
def demo(obj, halide, protocol, code_label):
    """Build the smallest CsPbX3 cube (Cs4PbX6, n = 1), run a real CP2K single point through AiiDA, read its orbitals.

    Runs in the foreground (no daemon needed) and prints what ran, how long it took and the HOMO-LUMO gap.
    """
    from aiida import orm

    from aiida_nanohetero.calcfunctions.builders import build_perovskite_cube
    from aiida_nanohetero.profiles.setup import find_setup_code
    from aiida_nanohetero.workflows.single_point import SinglePointWorkChain

    profile = obj.load_profile()
    code = find_setup_code(code_label)
    click.echo(f'Profile {profile.name}, code {code.full_label} ({code.filepath_executable})')
    start = time.monotonic()

    model = build_perovskite_cube(n=orm.Int(1), halide=orm.Str(halide))['structure']
    click.echo(f'Built {model.get_formula()} ({len(model.sites)} atoms): StructureData<{model.pk}>')
    builder = SinglePointWorkChain.get_builder_from_protocol(code, model, protocol=protocol)
    click.echo(f'Running CP2K single point, protocol "{protocol}" (about a minute on 2 cores for the tiny protocol)...')

    _, node = _run_with_progress(builder)
    elapsed = time.monotonic() - start

    if not node.is_finished_ok:
        raise click.ClickException(
            f'SinglePointWorkChain<{node.pk}> failed with exit status {node.exit_status}: {node.exit_message}; '
            f'see `verdi process report {node.pk}`.'
        )
    orbitals = node.outputs.orbitals.base.attributes
    energy = node.outputs.output_parameters['energy']
    click.secho('\nDone.', fg='green')
    click.echo(f'  model                {model.get_formula()}  (StructureData<{model.pk}>)')
    click.echo(f'  work chain           SinglePointWorkChain<{node.pk}>')
    click.echo(f'  wall time            {elapsed:.1f} s')
    click.echo(f'  total energy         {energy:.8f} Ha')
    click.echo(f'  valence electrons    {orbitals.get("n_electrons"):.0f}')
    click.echo(
        f'  HOMO / LUMO          {orbitals.get("homo_ev"):.3f} / {orbitals.get("lumo_ev"):.3f} eV '
        f'(MO {orbitals.get("homo_index")} / {orbitals.get("lumo_index")})'
    )
    click.secho(f'  HOMO-LUMO gap        {orbitals.get("gap_ev"):.3f} eV', bold=True)
    click.echo(f'Provenance graph: verdi -p {profile.name} node graph generate {node.pk}')
