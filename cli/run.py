"""``nanohetero run``: launch the heterostructure campaign."""

from __future__ import annotations

import click

from aiida_nanohetero.cli import clean_errors, pass_context

HALIDE_CHOICES = ('Br', 'Cl', 'I')


def _halides(_ctx, _param, values) -> list[str]:
    """``--halides Br --halides Cl`` or ``--halides Br,Cl,I``."""
    halides = [h.strip() for value in values for h in value.split(',') if h.strip()]
    unknown = [h for h in halides if h not in HALIDE_CHOICES]
    if unknown:
        raise click.BadParameter(f'unknown halide(s) {", ".join(unknown)}: choose from Br, Cl, I')
    if len(set(halides)) != len(halides):
        raise click.BadParameter(f'{", ".join(halides)} lists a halide twice')
    return halides or list(HALIDE_CHOICES)


@click.command('run')
@click.option('--protocol', default='tiny', show_default=True, help='tiny (tests), mini (workstation), paper (HPC).')
@click.option(
    '--halides',
    multiple=True,
    callback=_halides,
    help='Halides to compute: repeat the option or separate with commas (default: Br, Cl, I).',
)
@click.option('--code', 'code_label', default=None, help='CP2K code label (default: the one `nanohetero setup` made).')
@click.option('--relax/--no-relax', default=True, show_default=True, help='Relax every model before its single point.')
@click.option('--submit', is_flag=True, help='Submit to the daemon and return at once, instead of running here.')
@click.option(
    '--max-concurrent',
    type=click.IntRange(min=1),
    default=None,
    help='Run at most this many models at a time (default: all). Each tiny Pb4S3Br2 model needs ~3 GB here.',
)
@click.option('--max-wallclock-seconds', type=int, default=None, help='Scheduler walltime of each CP2K job.')
@click.option('--num-machines', type=int, default=None, help='Nodes per CP2K job.')
@click.option('--num-mpiprocs-per-machine', type=int, default=None, help='MPI ranks per node.')
@click.option(
    '--dry-run', is_flag=True, help='Build the models and write the CP2K inputs of the first step, run nothing.'
)
@pass_context
@clean_errors
def run(obj, protocol, halides, code_label, relax, submit, max_concurrent, max_wallclock_seconds, num_machines,
        num_mpiprocs_per_machine, dry_run):  # fmt: skip
    """Build, relax and single-point the cube, half-sphere and heterostructure for each halide.

    Runs in the foreground on the embedded default (progress is shown as it goes); with --submit the campaign
    goes to the daemon (`verdi -p PROFILE daemon start`) and `nanohetero status CAMPAIGN` follows it.
    """
    from aiida import orm

    from aiida_nanohetero.profiles.setup import find_setup_code
    from aiida_nanohetero.workflows.campaign import HeterostructureCampaignWorkChain
    from aiida_nanohetero.workflows.relax_single_point import RelaxAndSinglePointWorkChain

    profile = obj.load_profile()
    code = find_setup_code(code_label)
    RelaxAndSinglePointWorkChain.get_protocol_inputs(protocol)  # unknown protocol: clear error before anything
    options = {}
    resources = {}
    if num_machines:
        resources['num_machines'] = num_machines
    if num_mpiprocs_per_machine:
        resources['num_mpiprocs_per_machine'] = num_mpiprocs_per_machine
    if resources:
        options['resources'] = resources
    if max_wallclock_seconds:
        options['max_wallclock_seconds'] = max_wallclock_seconds

    if dry_run:
        _dry_run(code, protocol, halides, options)
        return

    builder = HeterostructureCampaignWorkChain.get_builder()
    builder.protocol = orm.Str(protocol)
    builder.halides = orm.List(halides)
    builder.code = code
    builder.relax = orm.Bool(relax)
    if max_concurrent:
        builder.max_concurrent = orm.Int(max_concurrent)
    if options:
        builder.options = orm.Dict(options)

    if submit:
        from aiida.engine import submit as submit_process
        from aiida.engine.daemon.client import get_daemon_client

        if profile.process_control_backend is None:
            raise click.ClickException(f'profile {profile.name} has no broker: run without --submit')
        from aiida_nanohetero.profiles.services import check_broker

        problem = check_broker(profile)
        if problem:
            raise click.ClickException(problem)
        if not get_daemon_client(profile.name).is_daemon_running:
            raise click.ClickException(
                f'the daemon is not running: start it with `verdi -p {profile.name} daemon start`'
            )
        node = submit_process(builder)
        click.echo(f'Submitted HeterostructureCampaignWorkChain<{node.pk}> ({protocol}, {", ".join(halides)}).')
        click.echo(f'Follow it with: nanohetero -p {profile.name} status {node.pk}')
        return

    from aiida_nanohetero.cli.demo import _run_with_progress
    from aiida_nanohetero.cli.status import print_campaign

    click.echo(f'Running the {protocol} campaign for {", ".join(halides)} with {code.full_label} in the foreground...')
    _, node = _run_with_progress(builder)
    click.echo('')
    print_campaign(node)
    if not node.is_finished_ok:
        raise click.ClickException(
            f'campaign {node.pk} finished with exit status {node.exit_status}: {node.exit_message}'
        )


def _dry_run(code, protocol, halides, options) -> None:
    """Write the CP2K inputs of each model's first calculation with AiiDA's dry run: nothing is run or stored."""
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.plugins import CalculationFactory

    from aiida_nanohetero.builders import LADDER, build_model
    from aiida_nanohetero.calcfunctions.cp2k import in_cubic_box
    from aiida_nanohetero.workflows.relax_single_point import RelaxAndSinglePointWorkChain

    models = {'half_sphere': ('half-sphere', {})}
    for halide in halides:
        models[f'cube_{halide}'] = ('cube', {'halide': halide})
        models[f'heterostructure_{halide}'] = ('heterostructure', {'halide': halide})
    rung = LADDER[protocol]
    click.echo(f'Dry run of the {protocol} campaign (cube n = {rung.cube_n}, half-sphere radius {rung.radius} Å):')
    for key, (kind, parameters) in models.items():
        atoms = build_model(kind, protocol, **parameters)
        builder = RelaxAndSinglePointWorkChain.get_builder_from_protocol(
            code, orm.StructureData(ase=atoms), protocol, options=options
        )
        step = builder.relax
        calc = CalculationFactory('cp2k').get_builder()
        calc.code = step.cp2k.code
        calc.parameters = step.cp2k.parameters
        calc.settings = step.cp2k.settings
        calc.file = step.cp2k.file
        calc.structure = orm.StructureData(ase=in_cubic_box(atoms, builder.vacuum.value))
        calc.metadata.options = dict(step.cp2k.metadata.options)
        calc.metadata.dry_run = True
        calc.metadata.store_provenance = False
        _, node = run_get_node(calc)
        resources = step.cp2k.metadata.options['resources']
        click.echo(
            f'  {key:<22} {atoms.get_chemical_formula():<18} {len(atoms):>5} atoms  '
            f'{resources}  {node.dry_run_info["folder"]}'
        )
