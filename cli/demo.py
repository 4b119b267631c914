"""``nanohetero demo``: the package's main job on the embedded default."""

from __future__ import annotations

import logging
import time

import click

from aiida_nanohetero.cli import clean_errors, pass_context

#: The demo's campaign: ``tiny`` finishes in minutes here; ``mini`` takes hours on 2 cores.
DEFAULT_PROTOCOL = 'tiny'
EXPECTED = {'tiny': 'about 15 minutes', 'mini': 'about three hours'}


class _ReportHandler(logging.Handler):
    """Shows the work chains' REPORT messages while they run, so the user sees progress."""

    def emit(self, record):
        click.echo(f'  [{time.strftime("%H:%M:%S")}] {record.getMessage()}')


#: How often (seconds) a campaign run in the foreground prints the models whose stage moved on.
PROGRESS_EVERY = 60.0


def _run_with_progress(builder, every: float = PROGRESS_EVERY, echo=click.echo):
    """Run in the foreground, showing the work chains' reports as short lines instead of AiiDA's long ones and,
    every ``every`` seconds, each model whose stage moved on (as ``nanohetero status`` shows it: geometry steps
    and largest force of a running relaxation), so that minutes of CP2K are not minutes of silence."""
    from aiida.engine.utils import loop_scope
    from aiida.manage import get_manager

    from aiida_nanohetero.cli.status import stage_changes

    # a local runner without a communicator, as aiida.engine.run_get_node makes one: the foreground needs no broker
    runner = get_manager().create_runner(communicator=None)
    with loop_scope(runner.loop):
        process = runner.instantiate_process(builder)
    seen: dict = {}

    def tick():
        try:
            for line in stage_changes(process.node, seen):
                echo(f'  [{time.strftime("%H:%M:%S")}] {line}')
        except Exception:  # progress is a courtesy: it must never disturb the campaign
            pass
        timer[0] = runner.loop.call_later(every, tick)

    timer = [runner.loop.call_later(every, tick)]
    logger = logging.getLogger('aiida')
    quiet = [(handler, handler.level) for handler in logger.handlers]
    for handler, _ in quiet:
        handler.setLevel(logging.ERROR)
    progress = _ReportHandler(level=23)  # AiiDA's REPORT level; the parser's warnings show too
    logger.addHandler(progress)
    try:
        return runner.run_get_node(process)
    finally:
        timer[0].cancel()
        logger.removeHandler(progress)
        for handler, level in quiet:
            handler.setLevel(level)


@click.command('demo')
@click.option('--halide', type=click.Choice(['Cl', 'Br', 'I']), default='Br', show_default=True)
@click.option(
    '--protocol',
    type=click.Choice(['tiny', 'mini']),
    default=DEFAULT_PROTOCOL,
    show_default=True,
    help='tiny: 11/45/54-atom models (minutes); mini: 64/77/133 atoms (about three hours on 2 cores, see the README).',
)
@click.option('--code', 'code_label', default=None, help='CP2K code label (default: the one `nanohetero setup` made).')
@click.option(
    '--out',
    'out_dir',
    type=click.Path(file_okay=False),
    default='nanohetero-figures',
    show_default=True,
    help='Folder for the figures and tables of the campaign.',
)
@click.option(
    '--one-step',
    is_flag=True,
    help="Stop each relaxation after its first BFGS step instead of relaxing to the protocol's thresholds "
    '(a quicker look at the pipeline; the models are then not relaxed).',
)
@pass_context
@clean_errors
def demo(obj, halide, protocol, code_label, out_dir, one_step):
    """Run the campaign for one halide on this machine: build the half-sphere, the cube and the heterostructure,
    relax each with CP2K, run the single point, analyse the orbitals, and write the figures.

    Runs in the foreground (no daemon needed), shows each CP2K job as it starts and ends and, every minute, each
    model whose stage moved on (a relaxation's geometry steps and largest force), then prints every model's
    result (`nanohetero status CAMPAIGN` shows the same table later) and where the figures are. Every model is
    relaxed to the protocol's thresholds, as `nanohetero run` does, unless --one-step is given.
    """
    from aiida import orm

    from aiida_nanohetero.cli.status import print_campaign
    from aiida_nanohetero.profiles.setup import find_setup_code
    from aiida_nanohetero.workflows.campaign import ONE_STEP_RELAX, HeterostructureCampaignWorkChain

    profile = obj.load_profile()
    code = find_setup_code(code_label)
    click.echo(f'Profile {profile.name}, code {code.full_label} ({code.filepath_executable})')
    relax = 'relaxed by one BFGS step' if one_step else "relaxed to the protocol's thresholds"
    expected = EXPECTED[protocol]
    click.echo(
        f'Running the {protocol} campaign for {halide}: half-sphere, cube and heterostructure, each {relax}, '
        f'single-pointed and analysed ({expected} on 2 cores)...'
    )
    click.echo(
        'Progress in another terminal: `nanohetero status` lists this campaign (its pk is the first number of '
        "the lines below), `nanohetero status PK` each model's stage, geometry steps and largest force."
    )
    builder = HeterostructureCampaignWorkChain.get_builder()
    builder.code = code
    builder.protocol = orm.Str(protocol)
    builder.halides = orm.List([halide])
    if one_step:
        builder.overrides = orm.Dict(ONE_STEP_RELAX)
    start = time.monotonic()
    _, node = _run_with_progress(builder)
    elapsed = time.monotonic() - start

    click.echo('')
    print_campaign(node)
    click.echo(f'Wall time {elapsed / 60:.1f} min.')
    if not node.is_finished_ok and 'models' not in node.outputs:
        raise click.ClickException(
            f'campaign {node.pk} failed with exit status {node.exit_status}: {node.exit_message}; '
            f'see `verdi -p {profile.name} process report {node.pk}`.'
        )
    _write_figures(node, out_dir)
    click.echo(f'Provenance graph: verdi -p {profile.name} node graph generate {node.pk}')
    if not node.is_finished_ok:
        raise click.ClickException(f'campaign {node.pk}: {node.exit_message}')
    click.secho('Done.', fg='green')


def _write_figures(node, out_dir: str) -> None:
    """Figure 4's panels of the models this campaign finished, and the table of plotted data."""
    try:
        from aiida_nanohetero.analysis.figures import write_campaign_figures
    except ImportError:  # the figures module is optional for the demo's CP2K part
        click.echo('Figures: not available in this version (nanohetero figures).')
        return
    written = write_campaign_figures(node, out_dir)
    click.echo(f'Figures and tables in {out_dir}/:')
    for path in written:
        click.echo(f'  {path}')
