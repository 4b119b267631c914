"""``nanohetero results``: the results of a campaign as a table, CSV or JSON, from the profile or an archive."""

from __future__ import annotations

import contextlib
import json

import click

from aiida_nanohetero.cli import clean_errors, pass_context

__all__ = ('archive_option', 'campaign_option', 'results', 'storage')

#: The columns of the human-readable table (CSV and JSON have every column).
TABLE_COLUMNS = (
    ('key', 'model', '{}'),
    ('formula', 'formula', '{}'),
    ('n_atoms', 'atoms', '{}'),
    ('state', 'state', '{}'),
    ('total_energy_ha', 'E/Ha', '{:.6f}'),
    ('homo_ev', 'HOMO/eV', '{:.3f}'),
    ('lumo_ev', 'LUMO/eV', '{:.3f}'),
    ('gap_ev', 'gap/eV', '{:.3f}'),
    ('vb_edge_ev', 'VB edge', '{:.3f}'),
    ('cb_edge_ev', 'CB edge', '{:.3f}'),
    ('gap_filtered_ev', 'Eg(IPR)', '{:.3f}'),
    ('alignment', 'alignment', '{}'),
    ('n_interface_in_gap_states', 'interface', '{}'),
)

campaign_option = click.option(
    '--campaign',
    'campaign_id',
    default=None,
    metavar='PK|UUID',
    help='The campaign (pk, uuid or uuid prefix); default: the latest one.',
)
archive_option = click.option(
    '--archive',
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    metavar='FILE.aiida',
    help='Read an AiiDA archive in place instead of the profile (no import, no profile needed).',
)


@contextlib.contextmanager
def storage(obj, archive: str | None):
    """The storage backend to query: the archive opened in place, or the selected profile's (``None``)."""
    if archive:
        from aiida_nanohetero.analysis.queries import open_archive

        with open_archive(archive) as backend:
            yield backend
    else:
        obj.load_profile()
        yield None


def _missing_note(campaign, table) -> list[str]:
    from aiida_nanohetero.analysis.queries import _campaign_halides, expected_model_keys, missing_models

    keys = expected_model_keys(_campaign_halides(campaign))
    return [f'{key}: {reason}' for key, reason in missing_models(campaign, keys, table).items()]


def _cell(value, fmt: str) -> str:
    if value is None or value is False:
        return '-'
    try:
        import pandas as pd

        if pd.isna(value):
            return '-'
    except (TypeError, ValueError):
        pass
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def _print_table(frame, columns) -> None:
    cells = [[_cell(row.get(name), fmt) for name, _, fmt in columns] for row in frame.to_dict('records')]
    headers = [header for _, header, _ in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    click.echo('  '.join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo('  '.join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _emit(frame, fmt: str, output) -> None:
    if fmt == 'csv':
        text = frame.to_csv(index=False, float_format='%.10g')
    else:
        text = json.dumps(json.loads(frame.to_json(orient='records', date_format='iso', double_precision=15)), indent=1)
        text += '\n'
    if output:
        with open(output, 'w', encoding='utf-8') as handle:
            handle.write(text)
        click.echo(f'Wrote {len(frame)} rows to {output}', err=True)
    else:
        click.echo(text, nl=False)


@click.command('results')
@campaign_option
@archive_option
@click.option('--orbitals', is_flag=True, help='One row per orbital (energy, occupation, IPR, contributions).')
@click.option('--list', 'list_campaigns', is_flag=True, help='List the campaigns instead.')
@click.option(
    '--format',
    'fmt',
    type=click.Choice(['table', 'csv', 'json']),
    default='table',
    show_default=True,
    help='table: the main numbers; csv and json: every column, uuids included.',
)
@click.option('-o', '--output', type=click.Path(dir_okay=False), default=None, help='Write CSV/JSON to this file.')
@pass_context
@clean_errors
def results(obj, campaign_id, archive, orbitals, list_campaigns, fmt, output):
    """The results of a campaign: one row per model (or per orbital with --orbitals).

    Reads the selected profile, or an AiiDA archive in place with --archive. Every row of the CSV and JSON
    output carries the uuids of the analysis nodes and of the CP2K calculation the numbers come from.
    """
    from aiida_nanohetero.analysis import queries

    with storage(obj, archive) as backend:
        if list_campaigns:
            frame = queries.campaigns(backend)
            if frame.empty:
                raise click.ClickException('no campaign here: run one with `nanohetero run`')
            if fmt == 'table':
                columns = [
                    ('pk', 'pk', '{}'),
                    ('uuid', 'uuid', '{}'),
                    ('ctime', 'created', '{:%Y-%m-%d %H:%M}'),
                    ('protocol', 'protocol', '{}'),
                    ('halides', 'halides', '{}'),
                    ('state', 'state', '{}'),
                    ('n_models', 'models', '{}'),
                ]
                _print_table(frame, columns)
            else:
                _emit(frame, fmt, output)
            return
        campaign = queries.get_campaign(campaign_id, backend)
        table = queries.models(campaign)
        frame = queries.orbitals(campaign, table=table) if orbitals else table
        if fmt != 'table':
            _emit(frame, fmt, output)
            return
        extras = campaign.base.extras
        click.echo(
            f'Campaign {campaign.pk} ({campaign.uuid}), protocol {extras.get("nanohetero_protocol", "?")}, '
            f'halides {", ".join(extras.get("nanohetero_halides", [])) or "?"}'
            + (f', from {archive}' if archive else '')
        )
        if orbitals:
            columns = [
                ('key', 'model', '{}'),
                ('mo', 'MO', '{}'),
                ('energy_ev', 'E/eV', '{:.3f}'),
                ('occupation', 'occ', '{:.0f}'),
                ('ipr', 'IPR', '{:.4f}'),
                ('localised', 'localised', '{}'),
                ('in_gap', 'in gap', '{}'),
                ('interface_state', 'interface', '{}'),
            ]
            columns += [
                (c, c.split('_', 1)[1], '{:.2f}')
                for c in frame.columns
                if c.startswith(('element_', 'domain_')) and frame[c].abs().max() > 1e-6
            ]
            _print_table(frame, columns)
        else:
            shown = table.copy()
            if 'alignment_basis' in shown:  # a class taken from the HOMO and LUMO says so
                from_frontier = shown['alignment_basis'] == 'HOMO/LUMO'
                shown.loc[from_frontier, 'alignment'] = shown.loc[from_frontier, 'alignment'] + '*'
            _print_table(shown, TABLE_COLUMNS)
        notes = _missing_note(campaign, table)
        if notes:
            click.echo('missing: ' + '; '.join(notes))
        if not orbitals:
            click.echo(
                'Energies in eV (vacuum level); Eg(IPR): gap between the edges with IPR below the threshold; '
                'alignment*: from the HOMO and LUMO (no state below the threshold). All columns and uuids: '
                '--format csv.'
            )
