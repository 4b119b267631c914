"""``nanohetero figures``: the seed's Figure 4 and Figure S32 from a campaign, in the profile or in an archive."""

from __future__ import annotations

import click

from aiida_nanohetero.cli import clean_errors, pass_context
from aiida_nanohetero.cli.results import archive_option, campaign_option, storage

__all__ = ('figures',)


@click.command('figures')
@campaign_option
@archive_option
@click.option(
    '--out',
    'out_dir',
    type=click.Path(file_okay=False),
    required=True,
    help='Folder for figure4.{png,svg,csv} and figureS32.{png,svg,csv} (created if needed).',
)
@click.option(
    '--figure',
    'names',
    type=click.Choice(['figure4', 'figureS32']),
    multiple=True,
    help='Only this figure (repeatable); default: both.',
)
@click.option(
    '--window',
    'window_ev',
    type=click.FloatRange(min=0.1),
    default=1.5,
    show_default=True,
    help='Energy range drawn below the valence-band edge and above the conduction-band edge (eV).',
)
@pass_context
@clean_errors
def figures(obj, campaign_id, archive, out_dir, names, window_ev):
    """Draw Figure 4 (Br half-sphere, cube, heterostructure) and Figure S32 (Cl and I heterostructures).

    Nothing is recomputed: the figures are drawn from the orbital analysis stored with the campaign, in the
    selected profile or, with --archive, in an AiiDA archive read in place. Each figure comes as PNG, SVG and a
    CSV of exactly the data plotted, with the uuids of the analysis nodes and CP2K calculations. Models that are
    missing (not computed, failed) are named, on the figure and here.
    """
    from aiida_nanohetero.analysis import figures as figures_module
    from aiida_nanohetero.analysis import queries

    with storage(obj, archive) as backend:
        campaign = queries.get_campaign(campaign_id, backend)
        click.echo(
            f'Campaign {campaign.pk} ({campaign.uuid}), protocol '
            f'{campaign.base.extras.get("nanohetero_protocol", "?")}' + (f', read from {archive}' if archive else '')
        )
        written = figures_module.write_figures(
            campaign, out_dir, figures=tuple(names) or tuple(figures_module.FIGURES), window_ev=window_ev
        )
    for figure in written:
        for line in figure.describe():
            click.echo(line)
    if any(figure.missing for figure in written):
        click.echo('Panels of missing models say why on the figure; the others are drawn as computed.')
