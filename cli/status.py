"""``nanohetero status``: what is set up, and whether it works."""

from __future__ import annotations

import click

from aiida_nanohetero.cli import clean_errors, pass_context


@click.command('status')
@click.argument('campaign', required=False)
@pass_context
@clean_errors
def status(obj, campaign):
    """Show the set-up (profile, computer, CP2K code and version, data files, daemon) and the recent campaigns.

    With CAMPAIGN (a pk or uuid of a campaign work chain), show every model's stage instead: building,
    relaxing (geometry steps done and the largest force against the threshold), single point, analysing, done,
    or failed with its exit code; and elapsed times.
    """
    if campaign:
        from aiida import orm

        obj.load_profile()
        node = orm.load_node(campaign)
        if node.process_label != 'HeterostructureCampaignWorkChain':
            raise click.UsageError(f'node {campaign} is a {node.process_label or type(node).__name__}, not a campaign')
        print_campaign(node)
        return
    from aiida import orm

    from aiida_nanohetero.profiles import ProfileSpecError
    from aiida_nanohetero.profiles.setup import aiida_config_dir, cp2k_version, find_setup_code
    from aiida_nanohetero.workflows.cp2k_files import CP2K_DATA_GROUP

    profile = obj.load_profile()
    storage = profile.storage_backend
    location = profile.storage_config.get('filepath') or profile.storage_config.get('database_name', '')
    rows = [
        ('AiiDA data', str(aiida_config_dir())),
        ('profile', f'{profile.name} ({storage}: {location})'),
        ('broker', profile.process_control_backend or 'none (processes run in the foreground only)'),
    ]
    try:
        code = find_setup_code()
    except ProfileSpecError as exception:
        rows.append(('code', f'none: {exception}'))
        code = None
    if code is not None:
        computer = code.computer
        rows.append(
            (
                'computer',
                f'{computer.label} ({computer.transport_type}, {computer.scheduler_type}, '
                f'{"configured" if computer.is_configured else "NOT configured: run nanohetero setup"})',
            )
        )
        rows.append(
            ('code', f'{code.full_label} -> {code.filepath_executable} (MPI {"on" if code.with_mpi else "off"})')
        )
        if computer.transport_type == 'core.local':
            rows.append(('CP2K', cp2k_version(code.filepath_executable)))
    try:
        group = orm.load_group(CP2K_DATA_GROUP)
        files = ', '.join(f'{node.filename} (pk {node.pk})' for node in group.nodes) or 'none'
    except Exception:
        files = 'none stored yet'
    rows.append(('CP2K data files', files))
    rows.append(('daemon', _daemon_state(profile)))
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        click.echo(f'{key:<{width}}  {value}')
    _print_recent_campaigns()


def _print_recent_campaigns(limit: int = 5) -> None:
    from aiida import orm

    from aiida_nanohetero.workflows.campaign import CAMPAIGNS_GROUP

    query = orm.QueryBuilder().append(orm.Group, filters={'label': CAMPAIGNS_GROUP}, tag='group')
    query.append(orm.WorkChainNode, with_group='group', tag='campaign').order_by({'campaign': {'ctime': 'desc'}})
    campaigns = [node for (node,) in query.iterall()][:limit]
    if not campaigns:
        click.echo('campaigns        none yet (nanohetero run --protocol tiny --halides Br)')
        return
    click.echo('recent campaigns:')
    for node in campaigns:
        extras = node.base.extras
        halides = ', '.join(extras.get('nanohetero_halides', []))
        click.echo(
            f'  {node.pk:>6}  {extras.get("nanohetero_protocol", "?"):<6} {halides:<12} {_state(node):<22} '
            f'{node.ctime:%Y-%m-%d %H:%M}   (nanohetero status {node.pk})'
        )


def _state(node) -> str:
    if not node.is_terminated:
        return str(node.process_state.value)
    if node.is_finished_ok:
        return 'done'
    return f'failed [{node.exit_status}]'


def _elapsed(node) -> str:
    from aiida.common import timezone

    end = node.mtime if node.is_terminated else timezone.now()
    seconds = int((end - node.ctime).total_seconds())
    return f'{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def model_stage(node) -> str:
    """Where one model's RelaxAndSinglePointWorkChain is: relaxing (k geometry steps done), single point,
    analysing, done, failed."""
    from aiida import orm

    if node.is_terminated:
        if node.is_finished_ok:
            return 'done'
        return f'failed [{node.exit_status}] {node.exit_message or ""}'.strip()
    called = sorted(node.called, key=lambda child: child.ctime)
    if not called:
        return 'building'
    last = called[-1]
    labels = {link.node.pk: link.link_label for link in node.base.links.get_outgoing().all()}
    label = labels.get(last.pk, '')
    if isinstance(last, orm.CalcFunctionNode):
        # the calcfunctions before the first CP2K step place the model in its cell; those after it analyse
        started = any(labels.get(child.pk) in ('relax', 'single_point') for child in called)
        return 'analysing' if started else 'building'
    if label == 'relax':
        return f'relaxing{_relax_progress(last)}'
    if label == 'single_point':
        return 'single point'
    return 'analysing'


def _relax_progress(relax) -> str:
    """How far a running relaxation is: geometry steps done and the largest force against the threshold, read from
    CP2K's output on a local computer."""
    import pathlib

    from aiida import orm

    from aiida_nanohetero.workflows.cp2k_base import geometry_progress

    calcs = sorted((n for n in relax.called if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
    if not calcs or 'remote_folder' not in calcs[-1].outputs:
        return ', queued'
    remote = calcs[-1].outputs.remote_folder
    if remote.computer.transport_type != 'core.local':
        return f' (CP2K running on {remote.computer.label})'
    output = pathlib.Path(remote.get_remote_path()) / 'aiida.out'
    try:
        progress = geometry_progress(output.read_text(errors='replace'))
    except OSError:
        progress = None
    if progress is None:
        return ', first SCF'
    steps = progress['step']
    text = f', {steps} geometry step{"" if steps == 1 else "s"} done'
    if progress['max_force'] is not None and progress['max_force_limit'] is not None:
        text += f', largest force {progress["max_force"]:.4f} Ha/bohr (converged below {progress["max_force_limit"]:g})'
    return text


def campaign_models(node) -> list:
    """The work chains of a campaign's models, in the order they were launched (from the campaign's group)."""
    from aiida import orm

    from aiida_nanohetero.workflows.campaign import campaign_group_label

    query = orm.QueryBuilder().append(orm.Group, filters={'label': campaign_group_label(node.uuid)}, tag='group')
    query.append(orm.WorkChainNode, with_group='group', tag='model').order_by({'model': {'ctime': 'asc'}})
    return [model for (model,) in query.iterall()]


def stage_changes(node, seen: dict) -> list[str]:
    """'model: stage' for every model of the campaign whose stage is not the one in ``seen`` (pk -> stage), which is
    updated: called every so often, it tells what moved since the last call."""
    lines = []
    for model in campaign_models(node):
        stage = model_stage(model)
        if seen.get(model.pk) != stage:
            seen[model.pk] = stage
            lines.append(f'{model.base.extras.get("nanohetero_key", model.label)}: {stage}')
    return lines


def print_campaign(node) -> None:
    """A table of the models of one campaign: stage, atoms, elapsed time, and the results of the finished ones."""
    extras = node.base.extras
    click.echo(
        f'Campaign {node.pk} ({extras.get("nanohetero_protocol", "?")}, '
        f'{", ".join(extras.get("nanohetero_halides", []))}): {_state(node)}, elapsed {_elapsed(node)}'
    )
    models = campaign_models(node)
    if not models:
        click.echo('  building the models' if not node.is_terminated else '  no model was launched')
        return
    click.echo(f'  {"model":<22} {"formula":<18} {"atoms":>5}  {"elapsed":>8}  {"gap/eV":>7}  stage')
    for model in models:
        extras = model.base.extras
        gap = ''
        if model.is_finished_ok and 'orbitals' in model.outputs:
            gap = f'{model.outputs.orbitals.base.attributes.get("gap_ev"):.3f}'
        click.echo(
            f'  {extras.get("nanohetero_key", model.label):<22} {extras.get("nanohetero_formula", ""):<18} '
            f'{extras.get("nanohetero_n_atoms", 0):>5}  {_elapsed(model):>8}  {gap:>7}  {model_stage(model)}'
        )


def _daemon_state(profile) -> str:
    if profile.process_control_backend is None:
        return 'unavailable (profile has no broker)'
    from aiida.engine.daemon.client import get_daemon_client

    client = get_daemon_client(profile.name)
    if not client.is_daemon_running:
        return f'not running (start it with `verdi -p {profile.name} daemon start`)'
    try:
        workers = client.get_numprocesses(timeout=2).get('numprocesses', '?')
    except Exception:
        workers = '?'
    return f'running, {workers} worker(s)'
