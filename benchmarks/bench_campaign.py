"""Wall time and SCF iterations of a whole campaign on this machine, per model and per CP2K job.

Runs ``HeterostructureCampaignWorkChain`` for one protocol and a set of halides in a throw-away AiiDA profile
(the embedded default of ``profiles/local.yaml``: SQLite, no services, CP2K from PATH), in the foreground, and
prints for every model: atoms, wall time, geometry steps, SCF iterations of the relaxation and of the single
point, the HOMO-LUMO gap. Then the total wall time of the campaign.

    python benchmarks/bench_campaign.py --protocol tiny --halides Br
    python benchmarks/bench_campaign.py --protocol mini --halides Br --keep /tmp/mini-campaign.aiida

``--keep FILE`` exports the finished campaign (an AiiDA archive with its whole provenance). ``--campaign PK``
prints the same table for a campaign that already ran (``nanohetero demo`` or ``run``) in the profile of the
``AIIDA_PATH`` given, instead of running one:

    AIIDA_PATH=~/nanohetero-aiida python benchmarks/bench_campaign.py --campaign 41
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time


def scf_steps(output: str) -> int:
    """SCF iterations in a CP2K output: the numbered lines of every SCF block (diagonalisation or OT)."""
    return len(re.findall(r'^\s+\d+\s+(?:NoMix|Broy\.|Pulay|P_Mix|Diag\.|OT)\S*\s', output, flags=re.MULTILINE))


def job_figures(workchain) -> dict:
    from aiida import orm

    from aiida_nanohetero.workflows.cp2k_base import geometry_steps_done

    calcs = sorted((n for n in workchain.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
    figures = {'jobs': len(calcs), 'scf': 0, 'geometry': 0, 'seconds': 0.0}
    for calc in calcs:
        if 'retrieved' not in calc.outputs:
            continue
        output = calc.outputs.retrieved.base.repository.get_object_content('aiida.out')
        figures['scf'] += scf_steps(output)
        figures['geometry'] += geometry_steps_done(output)
        figures['seconds'] += (calc.mtime - calc.ctime).total_seconds()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--protocol', default='tiny', choices=['tiny', 'mini'])
    parser.add_argument('--halides', default='Br', help='comma-separated subset of Cl,Br,I')
    parser.add_argument('--keep', default=None, help='export the finished campaign to this archive file')
    parser.add_argument('--max-concurrent', type=int, default=None, help='models run at a time (default: all)')
    parser.add_argument(
        '--one-step-relax', action='store_true', help='end every relaxation after one BFGS step (as the tests do)'
    )
    parser.add_argument(
        '--campaign', type=int, default=None, help='print the table of this finished campaign (pk), run nothing'
    )
    parser.add_argument(
        '--profile', default=None, help="with --campaign: the AiiDA profile (default: nanohetero's, as `nanohetero -p`)"
    )
    args = parser.parse_args()
    if args.campaign is not None:
        report_existing(args.campaign, args.profile)
        return
    # a throw-away profile, unless AIIDA_PATH is given; set before AiiDA is imported, which reads it once
    os.environ.setdefault('AIIDA_PATH', tempfile.mkdtemp(prefix='bench-campaign-aiida-'))

    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_nanohetero.profiles import load_spec
    from aiida_nanohetero.profiles.setup import apply_spec, cp2k_version, find_setup_code
    from aiida_nanohetero.workflows.campaign import HeterostructureCampaignWorkChain

    spec = load_spec('local').with_profile_name('bench-campaign')
    apply_spec(spec)
    from aiida import load_profile

    load_profile('bench-campaign', allow_switch=True)
    code = find_setup_code()
    version = cp2k_version(code.filepath_executable)
    print(f'CP2K: {version}; {os.cpu_count()} cores; AiiDA data in {os.environ["AIIDA_PATH"]}')

    builder = HeterostructureCampaignWorkChain.get_builder()
    builder.code = code
    builder.protocol = orm.Str(args.protocol)
    builder.halides = orm.List(args.halides.split(','))
    if args.max_concurrent:
        builder.max_concurrent = orm.Int(args.max_concurrent)
    if args.one_step_relax:
        from aiida_nanohetero.workflows.campaign import ONE_STEP_RELAX

        builder.overrides = orm.Dict(ONE_STEP_RELAX)
    start = time.monotonic()
    _, campaign = run_get_node(builder)
    total = time.monotonic() - start

    print(f'\ncampaign {args.protocol} {args.halides}: exit status {campaign.exit_status}, wall time {total:.0f} s')
    print_models(campaign)
    if args.keep:
        from aiida_nanohetero.cli.export import export_campaign

        export_campaign(campaign, args.keep, overwrite=True)
        print(f'exported to {args.keep}')


def report_existing(pk: int, profile: str | None) -> None:
    """The table of a campaign that already ran, from the database (wall time from its creation to its end)."""
    import click
    from aiida import orm

    from aiida_nanohetero.cli import DEFAULT_PROFILE, Context

    try:
        Context(profile or os.environ.get('NANOHETERO_PROFILE') or DEFAULT_PROFILE).load_profile()
    except click.ClickException as exception:  # no such profile under AIIDA_PATH: the CLI's own message
        raise SystemExit(exception.format_message()) from None
    campaign = orm.load_node(pk)
    total = (campaign.mtime - campaign.ctime).total_seconds()
    protocol = campaign.inputs.protocol.value
    halides = ','.join(campaign.inputs.halides.get_list())
    print(f'campaign {pk} {protocol} {halides}: exit status {campaign.exit_status}, wall time {total:.0f} s')
    print_models(campaign)


def print_models(campaign) -> None:
    """Atoms, wall time, geometry steps, SCF iterations of relaxation and single point, and gap of every model."""
    from aiida import orm

    header = f'{"model":<20} {"atoms":>5} {"wall/s":>7} {"geo":>4} {"SCF relax":>9} {"SCF sp":>6} {"gap/eV":>7}'
    print(header)
    for link in campaign.base.links.get_outgoing(node_class=orm.WorkChainNode).all():
        node = link.node
        wall = (node.mtime - node.ctime).total_seconds()
        relax = node.base.links.get_outgoing(link_label_filter='relax').all()
        single = node.base.links.get_outgoing(link_label_filter='single_point').all()
        fig_relax = job_figures(relax[0].node) if relax else {'scf': 0, 'geometry': 0}
        fig_sp = job_figures(single[0].node) if single else {'scf': 0}
        gap = node.outputs.orbitals.base.attributes.get('gap_ev') if 'orbitals' in node.outputs else float('nan')
        print(
            f'{link.link_label:<20} {node.base.extras.get("nanohetero_n_atoms", 0):>5} {wall:>7.0f} '
            f'{fig_relax["geometry"]:>4} {fig_relax["scf"]:>9} {fig_sp["scf"]:>6} {gap:>7.3f}'
        )


if __name__ == '__main__':
    main()
