"""``nanohetero export``: an AiiDA archive of one campaign with its whole provenance."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from aiida_nanohetero.cli import clean_errors, pass_context
from aiida_nanohetero.cli.results import campaign_option

__all__ = ('export', 'export_campaign')


def export_campaign(campaign, filename, overwrite: bool = False) -> Path:
    """Write an AiiDA archive of ``campaign``: the campaign work chain, its group of models, and everything the
    provenance graph links to them (models, structures, CP2K calculations and their retrieved files, the basis
    set and potential files, the orbital analysis nodes)."""
    from aiida import orm
    from aiida.tools.archive import create_archive

    from aiida_nanohetero.workflows.campaign import campaign_group_label

    entities = [campaign]
    group = orm.QueryBuilder().append(orm.Group, filters={'label': campaign_group_label(campaign.uuid)}).all(flat=True)
    entities += group
    path = Path(filename)
    if path.exists() and not overwrite:
        raise click.ClickException(f'{path} exists: choose another name or pass --overwrite')
    logger = logging.getLogger('aiida.export')
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        create_archive(entities, filename=path, overwrite=overwrite, include_authinfos=False)
    finally:
        logger.setLevel(level)
    return path


@click.command('export')
@campaign_option
@click.option('-o', '--output', type=click.Path(dir_okay=False), required=True, help='The archive to write.')
@click.option('--overwrite', is_flag=True, help='Replace the file if it exists.')
@pass_context
@clean_errors
def export(obj, campaign_id, output, overwrite):
    """Write an AiiDA archive of a campaign (default: the latest) with all its provenance.

    Anyone can then draw its figures with `nanohetero figures --archive FILE --out DIR` (no import needed) or
    import it with `verdi archive import FILE`.
    """
    from aiida import orm

    from aiida_nanohetero.analysis import queries

    obj.load_profile()
    campaign = queries.get_campaign(campaign_id)
    if not campaign.is_terminated:
        raise click.ClickException(
            f'campaign {campaign.pk} is still {campaign.process_state.value}: export it when it has finished'
        )
    path = export_campaign(campaign, output, overwrite)
    with queries.open_archive(path) as backend:
        n_nodes = orm.QueryBuilder(backend=backend).append(orm.Node).count()
        table = queries.models(campaign.uuid, backend=backend)
    size = path.stat().st_size / 1e6
    finished = int((table['state'] == 'finished').sum())
    click.echo(
        f'Wrote {path} ({size:.1f} MB): campaign {campaign.pk} ({campaign.uuid}), {len(table)} models '
        f'({finished} finished), {n_nodes} nodes.'
    )
    click.echo(f'Draw its figures anywhere with: nanohetero figures --archive {path} --out figures/')
