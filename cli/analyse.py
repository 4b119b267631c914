"""``nanohetero analyse RUNDIR``: the orbital analysis of a CP2K run directory made by hand (no AiiDA).

The directory holds the CP2K input and what it printed: the ``.MOLog`` (``&MO`` with ``EIGENVECTORS``), the
overlap (``&S_CSR_WRITE``, binary or text) and optionally the ``.pdos`` files, which are then used to
cross-check our Löwdin populations against CP2K's own.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click

from aiida_nanohetero.analysis.ipr import SQRT_ROUTES

__all__ = ('analyse',)


def _one(directory: Path, pattern: str, project: str | None, what: str, required: bool = True) -> Path | None:
    matches = sorted(directory.glob(f'{project}-{pattern}' if project else pattern))
    if not matches:
        if required:
            raise click.UsageError(f'no {what} ({pattern}) in {directory}')
        return None
    if len(matches) > 1:
        names = ', '.join(m.name for m in matches)
        raise click.UsageError(f'several {what} files in {directory} ({names}): choose one with --project')
    return matches[0]


def _parse_domains(specs: tuple[str, ...], n_atoms: int):
    """``NAME=1-40,45`` (1-based atom indices) per option; atoms in no domain are labelled ``other``."""
    if not specs:
        return None
    labels = ['other'] * n_atoms
    for spec in specs:
        name, sep, atoms = spec.partition('=')
        if not sep or not name or not atoms:
            raise click.BadParameter(f'{spec!r}: expected NAME=ATOMS, for example perovskite=1-40,45')
        for part in atoms.split(','):
            lo, _, hi = part.partition('-')
            try:
                first, last = int(lo), int(hi or lo)
            except ValueError:
                raise click.BadParameter(f'{spec!r}: {part!r} is not an atom index or range') from None
            if not 1 <= first <= last <= n_atoms:
                raise click.BadParameter(f'{spec!r}: atoms {part} outside 1..{n_atoms}')
            for atom in range(first - 1, last):
                labels[atom] = name
    return labels


@click.command('analyse')
@click.argument('rundir', type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    '--method',
    type=click.Choice(['paper', 'lowdin', 'mulliken']),
    default='paper',
    show_default=True,
    help="IPR definition: paper = the authors' signed sums of S^½C per atom; lowdin = Löwdin populations.",
)
@click.option('--csv', 'csv_path', type=click.Path(dir_okay=False, path_type=Path), help='Write the table here.')
@click.option('--project', help='CP2K PROJECT name, when the directory holds files of several runs.')
@click.option('--threshold', type=float, default=0.03, show_default=True, help='IPR threshold for band edges.')
@click.option('--domain', 'domains', multiple=True, help='NAME=ATOMS (1-based, e.g. perovskite=1-40); repeatable.')
@click.option(
    '--route',
    type=click.Choice(list(SQRT_ROUTES)),
    default='auto',
    show_default=True,
    help='S^½ route: dense (eigendecomposition of S), chebyshev, shift-invert (Lanczos on the window only); '
    'auto picks dense up to 3,000 AOs and shift-invert above.',
)
@click.option('--json', 'as_json', is_flag=True, help='Print the summary as JSON instead of text.')
def analyse(rundir: Path, method, csv_path, project, threshold, domains, route, as_json):
    """Per-orbital energies, occupations, IPR and element contributions, and the band-edge summary, of the
    CP2K run in RUNDIR (its input plus the .MOLog, .csr and .pdos files)."""
    from aiida_nanohetero import analysis as an

    try:
        molog = _one(rundir, '*.MOLog', project, 'MO coefficient file')
        csr = _one(rundir, '*.csr', project, 'overlap (&S_CSR_WRITE)')
        mos = an.read_mo_coefficients(molog)
        overlap = an.read_overlap_csr(csr, n_ao=mos.n_ao)
        atom_domains = _parse_domains(domains, mos.n_atoms)
        result = an.analyse_orbitals(
            overlap,
            mos.coefficients,
            mos.ao_atom,
            mos.energies,
            mos.occupations,
            mos.atom_elements,
            indices=mos.indices,
            atom_domains=atom_domains,
            method=method,
            route=route,
        )
        summary = an.summarise_orbitals(
            result.indices,
            result.energies_ev,
            result.occupations,
            result.ipr,
            domain_contributions=result.domain_contributions if atom_domains else None,
            domains=result.domains,
            threshold=threshold,
            strict=False,
        )
        pdos_check = _pdos_check(an, rundir, project, result, mos)
    except an.AnalysisInputError as exc:
        raise click.ClickException(str(exc)) from None

    rows = result.table()
    if csv_path is not None:
        with open(csv_path, 'w', newline='', encoding='utf-8') as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    summary['method'] = method
    summary['sqrt'] = result.sqrt_info
    if pdos_check is not None:
        summary['pdos_max_deviation'] = pdos_check
    if as_json:
        click.echo(json.dumps({'orbitals': rows, 'summary': summary}, indent=1))
        return
    _print_table(result, molog, csr, method)
    _print_summary(summary)


def _pdos_check(an, rundir, project, result, mos):
    """Largest deviation of our Löwdin populations from CP2K's per-kind PDOS weights (kinds named by element)."""
    kinds = {}
    for path in sorted(rundir.glob(f'{project}-*.pdos' if project else '*.pdos')):
        pdos = an.read_pdos(path)
        if pdos.kind in set(mos.atom_elements):
            kinds[pdos.kind] = pdos
    if not kinds:
        return None
    deviations = an.compare_with_pdos(result.populations, mos.indices, mos.atom_elements, kinds, mos.energies)
    return max(deviations.values())


def _print_table(result, molog, csr, method):
    click.echo(f'orbitals: {molog.name}   overlap: {csr.name}   IPR method: {method}')
    groups = list(result.elements) + [f'[{d}]' for d in result.domains]
    header = f'{"MO":>6} {"E (eV)":>10} {"occ":>5} {"IPR":>8}  ' + ' '.join(f'{g:>8}' for g in groups)
    click.echo(header)
    for i in range(result.indices.size):
        contrib = list(result.element_contributions[:, i]) + list(result.domain_contributions[:, i])
        flag = '*' if result.degenerate[i] else ' '
        click.echo(
            f'{result.indices[i]:>6} {result.energies_ev[i]:>10.4f} {result.occupations[i]:>5.2f} '
            f'{result.ipr[i]:>8.4f}{flag} ' + ' '.join(f'{100 * c:>7.1f}%' for c in contrib)
        )
    click.echo('* member of a degenerate set: rotation-invariant IPR and contributions of the set')


def _print_summary(summary: dict):
    click.echo('')
    click.echo(f'HOMO  MO {summary["homo"]["mo"]:>6}  {summary["homo"]["energy_ev"]:.4f} eV')
    click.echo(f'LUMO  MO {summary["lumo"]["mo"]:>6}  {summary["lumo"]["energy_ev"]:.4f} eV')
    click.echo(f'HOMO-LUMO gap             {summary["gap_ev"]:.4f} eV')
    threshold = summary['threshold']
    for warning in summary['warnings']:
        click.echo(f'warning: {warning}')
    if summary['vb_edge'] is not None:
        vb, cb = summary['vb_edge'], summary['cb_edge']
        click.echo(f'VB edge (IPR < {threshold}) MO {vb["mo"]}  {vb["energy_ev"]:.4f} eV')
        click.echo(f'CB edge (IPR < {threshold}) MO {cb["mo"]}  {cb["energy_ev"]:.4f} eV')
        click.echo(f'gap between edges         {summary["gap_filtered_ev"]:.4f} eV')
        click.echo(f'localised states in the gap: {summary["n_in_gap_states"]}')
    for key in (
        'homo_domain_fractions',
        'lumo_domain_fractions',
        'vb_edge_domain_fractions',
        'cb_edge_domain_fractions',
    ):
        if key in summary:
            text = ', '.join(f'{d} {100 * f:.1f}%' for d, f in summary[key].items())
            click.echo(f'{key.replace("_", " ")}: {text}')
    if 'alignment' in summary:
        click.echo(f'alignment: {summary["alignment"]} (from the {summary.get("alignment_basis", "band edges")})')
    if 'n_interface_in_gap_states' in summary:
        click.echo(f'interface states in the gap: {summary["n_interface_in_gap_states"]}')
    if 'pdos_max_deviation' in summary:
        click.echo(f'cross-check against CP2K PDOS: max |deviation| = {summary["pdos_max_deviation"]:.2e}')
