"""Results of finished campaigns as pandas DataFrames, queried with AiiDA's ``QueryBuilder``.

Every function takes an optional ``backend``: by default the storage of the loaded AiiDA profile; an AiiDA archive
is queried in place (no import, no profile needed) through :func:`open_archive`::

    with open_archive('examples/tiny-campaign.aiida') as backend:
        table = models(backend=backend)

* :func:`campaigns` — one row per campaign work chain;
* :func:`models` — one row per model of a campaign: halide, kind, protocol, size, composition, total energy,
  HOMO/LUMO, IPR-filtered band edges and gap, alignment, and the uuids of the nodes the numbers come from;
* :func:`orbitals` — one row per orbital of each model's window: energy, occupation, IPR, element and domain
  contributions, and the same uuids;
* :func:`trace_orbital` — the provenance chain of one plotted orbital back to the CP2K calculation and structure.

Campaigns are found by their process (``HeterostructureCampaignWorkChain``), and their models through the CALL
links of the campaign, so an imported archive needs none of the groups of the profile it came from.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = (
    'DOMAIN_ORDER',
    'ELEMENT_ORDER',
    'ArchiveError',
    'NoCampaignError',
    'ResultsError',
    'campaigns',
    'expected_model_keys',
    'get_campaign',
    'missing_models',
    'model_key',
    'models',
    'open_archive',
    'orbitals',
    'trace_orbital',
)

CAMPAIGN_PROCESS_LABEL = 'HeterostructureCampaignWorkChain'
CAMPAIGN_PROCESS_TYPE = 'aiida.workflows:nanohetero.campaign'
MODEL_PROCESS_LABEL = 'RelaxAndSinglePointWorkChain'
#: Column order of the element contributions (``element_<X>``): every element any model of the study contains.
ELEMENT_ORDER = ('Cs', 'Pb', 'Cl', 'Br', 'I', 'S')
#: Column order of the domain contributions (``domain_<name>``); other domains follow in their own order.
DOMAIN_ORDER = ('perovskite', 'chalcohalide', 'interface')
#: Order of the model kinds in tables and figures (as in the seed's Figure 4).
KIND_ORDER = ('half-sphere', 'cube', 'heterostructure')
HALIDE_ORDER = ('Br', 'Cl', 'I')
#: A state counts as an interface state when the interface layer holds at least this much of it (as in
#: :func:`~aiida_nanohetero.analysis.summarise_orbitals`).
INTERFACE_FRACTION = 0.5
#: Orbitals within this of an edge energy belong to the (degenerate) edge (as in ``summarise_orbitals``).
EDGE_TOL_EV = 1e-3
_OCCUPIED = 1e-6
_MODEL_OUTPUTS = ('structure', 'relaxed_structure', 'output_parameters', 'retrieved', 'orbitals', 'ipr', 'summary')


class ResultsError(ValueError):
    """A question about results that cannot be answered: no campaign, an unknown one, an unreadable archive."""


class NoCampaignError(ResultsError):
    """The database (or archive) holds no campaign, or not the one asked for."""


class ArchiveError(ResultsError):
    """The file is not an AiiDA archive, or one this AiiDA cannot read."""


# ---------------------------------------------------------------------------------------------------------------
# storage
# ---------------------------------------------------------------------------------------------------------------


def _backend(backend=None):
    if backend is not None:
        return backend
    from aiida.common.exceptions import ConfigurationError
    from aiida.manage import get_manager

    try:
        return get_manager().get_profile_storage()
    except ConfigurationError as exception:
        raise ResultsError(f'no AiiDA profile is loaded and no archive was given ({exception})') from None


def _qb(backend):
    from aiida import orm

    return orm.QueryBuilder(backend=_backend(backend))


@contextlib.contextmanager
def open_archive(path: str | os.PathLike) -> Iterator[Any]:
    """Open an AiiDA archive read-only, in place, as a storage backend for the functions of this module.

    Needs no AiiDA profile. An archive written by an older AiiDA is migrated into a temporary copy first (the
    file itself is left untouched); one from a newer AiiDA, or a file that is not an archive, raises
    :class:`ArchiveError` saying so.
    """
    from aiida import __version__ as aiida_version
    from aiida.common.exceptions import CorruptStorage, IncompatibleStorageSchema, UnreachableStorage
    from aiida.manage.configuration import get_config_option
    from aiida.storage.sqlite_zip.backend import SqliteZipBackend
    from aiida.storage.sqlite_zip.migrator import get_schema_version_head, list_versions, migrate
    from aiida.storage.sqlite_zip.utils import read_version

    # read AiiDA's configuration once before any query: done inside the QueryBuilder's ``catch_warnings`` when no
    # profile is loaded, it lets a spurious deprecation warning of aiida-core 2.9 through
    get_config_option('warnings.showdeprecations')
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f'archive {path} not found')
    try:
        version = read_version(path, search_limit=None)
    except (CorruptStorage, UnreachableStorage, OSError, ValueError, KeyError) as exception:
        raise ArchiveError(f'{path} is not an AiiDA archive ({exception})') from None
    head = get_schema_version_head()
    with contextlib.ExitStack() as stack:
        if version != head:
            if version not in list_versions():
                raise ArchiveError(
                    f'{path} has archive schema version "{version}", unknown to the installed aiida-core '
                    f'{aiida_version} (it reads up to "{head}"): it was probably written by a newer AiiDA; upgrade '
                    'aiida-core to read it'
                )
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix='nanohetero-archive-'))
            migrated = Path(folder) / path.name
            try:
                migrate(path, migrated, head)
            except Exception as exception:
                raise ArchiveError(
                    f'{path} has the old archive schema version "{version}" and could not be migrated to "{head}": '
                    f'{exception}'
                ) from None
            path = migrated
        try:
            backend = SqliteZipBackend(SqliteZipBackend.create_profile(path.resolve()))
        except (CorruptStorage, IncompatibleStorageSchema, UnreachableStorage) as exception:
            raise ArchiveError(f'cannot read the archive {path}: {exception}') from None
        try:
            yield backend
        finally:
            backend.close()


# ---------------------------------------------------------------------------------------------------------------
# campaigns
# ---------------------------------------------------------------------------------------------------------------


def _campaign_filters() -> dict:
    return {
        'or': [
            {'process_type': CAMPAIGN_PROCESS_TYPE},
            {'attributes.process_label': CAMPAIGN_PROCESS_LABEL},
        ]
    }


def _state(process_state: str | None, exit_status: int | None) -> str:
    if process_state == 'finished':
        return 'finished' if not exit_status else f'failed [{exit_status}]'
    return process_state or 'unknown'


def campaigns(backend=None) -> pd.DataFrame:
    """Every campaign, oldest first: pk, uuid, creation time, protocol, halides, state, number of models."""
    from aiida import orm
    from aiida.common.links import LinkType

    query = _qb(backend).append(
        orm.WorkChainNode,
        filters=_campaign_filters(),
        project=['id', 'uuid', 'ctime', 'attributes.process_state', 'attributes.exit_status', 'extras'],
        tag='campaign',
    )
    rows = {}
    for pk, uuid, ctime, state, exit_status, extras in query.all():
        extras = extras or {}
        rows[uuid] = {
            'pk': pk,
            'uuid': uuid,
            'ctime': ctime,
            'protocol': extras.get('nanohetero_protocol'),
            'halides': ','.join(extras.get('nanohetero_halides') or []),
            'state': _state(state, exit_status),
            'n_models': 0,
        }
    if rows:
        counts = _qb(backend).append(orm.WorkChainNode, filters={'uuid': {'in': list(rows)}}, tag='c', project='uuid')
        counts.append(orm.WorkChainNode, with_incoming='c', edge_filters={'type': LinkType.CALL_WORK.value})
        for uuid in counts.all(flat=True):
            rows[uuid]['n_models'] += 1
    columns = ['pk', 'uuid', 'ctime', 'protocol', 'halides', 'state', 'n_models']
    return pd.DataFrame(list(rows.values()), columns=columns).sort_values('ctime', ignore_index=True)


def _where(backend) -> str:
    backend = _backend(backend)
    if backend.profile.storage_backend == 'core.sqlite_zip':
        return f'archive {backend.profile.storage_config.get("filepath")}'
    return f'AiiDA profile "{backend.profile.name}"'


def get_campaign(identifier: Any = None, backend=None):
    """The campaign work chain with this pk, uuid (or unique uuid prefix), or the latest one if ``None``.

    A campaign node is returned as is. Raises :class:`NoCampaignError` with a clear message when there is none.
    """
    from aiida import orm

    if isinstance(identifier, orm.WorkChainNode):
        _check_is_campaign(identifier)
        return identifier
    query = _qb(backend).append(orm.WorkChainNode, filters=_campaign_filters(), tag='campaign')
    if identifier is None:
        query.order_by({'campaign': {'ctime': 'desc'}}).limit(1)
        found = query.all(flat=True)
        if not found:
            raise NoCampaignError(
                f'no campaign in {_where(backend)}: run one with `nanohetero run`, or import an archive '
                '(`verdi archive import FILE.aiida`) or read one in place with --archive FILE.aiida'
            )
        return found[0]
    text = str(identifier).strip()
    if text.isdigit():
        query.add_filter('campaign', {'id': int(text)})
    else:
        query.add_filter('campaign', {'uuid': {'like': f'{text}%'}})
    found = query.all(flat=True)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise NoCampaignError(f'"{identifier}" matches {len(found)} campaigns: give more of the uuid')
    # say what the identifier is if it is a node at all
    other = _qb(backend).append(
        orm.Node, filters={'id': int(text)} if text.isdigit() else {'uuid': {'like': f'{text}%'}}
    )
    nodes = other.all(flat=True)
    what = f'it is a {_describe(nodes[0])}' if len(nodes) == 1 else 'no such node'
    known = campaigns(backend)
    listing = ', '.join(f'{row.pk} ({row.protocol}, {row.halides})' for row in known.itertuples()) or 'none'
    raise NoCampaignError(f'"{identifier}" is not a campaign ({what}); campaigns here: {listing}')


def _describe(node) -> str:
    return getattr(node, 'process_label', None) or type(node).__name__


def _check_is_campaign(node) -> None:
    if node.process_label != CAMPAIGN_PROCESS_LABEL:
        raise NoCampaignError(f'{_describe(node)}<{node.pk}> is not a campaign')


def model_key(kind: str, halide: str | None) -> str:
    """The campaign's key of a model: ``half_sphere`` (shared by every halide), ``cube_Br``, ``heterostructure_I``."""
    return 'half_sphere' if kind == 'half-sphere' else f'{kind}_{halide}'


def expected_model_keys(halides: Iterable[str]) -> list[str]:
    """The models a campaign over ``halides`` computes, in table order."""
    ordered = sorted(halides, key=lambda h: HALIDE_ORDER.index(h) if h in HALIDE_ORDER else len(HALIDE_ORDER))
    return ['half_sphere'] + [f'{kind}_{h}' for h in ordered for kind in ('cube', 'heterostructure')]


def _campaign_halides(campaign) -> list[str]:
    halides = campaign.base.extras.get('nanohetero_halides', None)
    if halides is None and 'halides' in campaign.inputs:
        halides = campaign.inputs.halides.get_list()
    return list(halides or [])


# ---------------------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------------------

MODEL_COLUMNS = (
    'key',
    'model',
    'halide',
    'protocol',
    'size',
    'formula',
    'n_atoms',
    'state',
    'total_energy_ha',
    'total_energy_ev',
    'homo_mo',
    'homo_ev',
    'lumo_mo',
    'lumo_ev',
    'gap_ev',
    'ipr_method',
    'ipr_threshold',
    'vb_edge_mo',
    'vb_edge_ev',
    'cb_edge_mo',
    'cb_edge_ev',
    'gap_filtered_ev',
    'alignment',
    'alignment_basis',
    'n_in_gap_states',
    'n_interface_in_gap_states',
    'vb_edge_domains',
    'cb_edge_domains',
    'warnings',
    'cp2k_version',
    'campaign_uuid',
    'workchain_uuid',
    'summary_uuid',
    'ipr_uuid',
    'orbitals_uuid',
    'calculation_uuid',
    'calculation_pk',
    'structure_uuid',
)
_INTEGER_COLUMNS = (
    'n_atoms',
    'homo_mo',
    'lumo_mo',
    'vb_edge_mo',
    'cb_edge_mo',
    'n_in_gap_states',
    'n_interface_in_gap_states',
    'calculation_pk',
    'workchain_pk',
)


def _sort_key(key: str) -> tuple:
    kind, _, halide = key.partition('_') if not key.startswith('half_sphere') else ('half-sphere', '', '')
    return (
        HALIDE_ORDER.index(halide) if halide in HALIDE_ORDER else -1,
        KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER),
        key,
    )


def _model_rows(campaign, backend) -> list[dict]:
    """The model work chains called by the campaign, with their state, extras and output uuids."""
    from aiida import orm
    from aiida.common.links import LinkType

    query = _qb(backend).append(orm.WorkChainNode, filters={'uuid': campaign.uuid}, tag='campaign')
    query.append(
        orm.WorkChainNode,
        with_incoming='campaign',
        edge_filters={'type': LinkType.CALL_WORK.value},
        edge_project=['label'],
        project=[
            'uuid',
            'id',
            'attributes.process_state',
            'attributes.exit_status',
            'attributes.exit_message',
            'extras',
        ],
        tag='model',
    )
    rows = {}
    for entry in query.dict():
        model, link = entry['model'], entry['campaign--model']
        extras = model['extras'] or {}
        key = extras.get('nanohetero_key') or link['label']
        kind = extras.get('nanohetero_model') or ('half-sphere' if key == 'half_sphere' else key.partition('_')[0])
        halide = extras.get('nanohetero_halide') or ('Br' if key == 'half_sphere' else key.rpartition('_')[2])
        rows[model['uuid']] = {
            'key': key,
            'model': kind,
            'halide': halide,
            'protocol': extras.get('nanohetero_protocol'),
            'size': extras.get('nanohetero_size'),
            'formula': extras.get('nanohetero_formula'),
            'n_atoms': extras.get('nanohetero_n_atoms'),
            'state': _state(model['attributes.process_state'], model['attributes.exit_status']),
            'exit_message': model['attributes.exit_message'],
            'campaign_uuid': campaign.uuid,
            'workchain_uuid': model['uuid'],
            'workchain_pk': model['id'],
        }
    if not rows:
        return []
    # outputs returned by each model work chain
    outputs = _qb(backend).append(orm.WorkChainNode, filters={'uuid': {'in': list(rows)}}, tag='model', project='uuid')
    outputs.append(
        orm.Data,
        with_incoming='model',
        edge_filters={'type': LinkType.RETURN.value, 'label': {'in': list(_MODEL_OUTPUTS)}},
        edge_project=['label'],
        project=['uuid', 'attributes'],
        tag='output',
    )
    for model_uuid, label, uuid, attributes in (
        (e['model']['uuid'], e['model--output']['label'], e['output']['uuid'], e['output']['attributes'])
        for e in outputs.dict()
    ):
        row = rows[model_uuid]
        row[f'{label}_uuid'] = uuid
        if label == 'summary':
            row['_summary'] = attributes
        elif label == 'output_parameters':
            row['_parameters'] = attributes
    # the CP2K calculation behind the IPR: ipr <- compute_ipr <- retrieved <- Cp2kCalculation <- structure
    for model_uuid, chain in _calculation_chains(
        [r['ipr_uuid'] for r in rows.values() if r.get('ipr_uuid')], backend, by='model'
    ).items():
        rows[model_uuid].update(chain)
    return list(rows.values())


def _calculation_chains(ipr_uuids: Sequence[str], backend, by: str = 'ipr') -> dict[str, dict]:
    """For IPR nodes: the uuids of the compute_ipr call, the retrieved folder, the CP2K calculation and its
    input structure, found by following the links of the provenance graph."""
    from aiida import orm
    from aiida.common.links import LinkType

    if not ipr_uuids:
        return {}
    query = _qb(backend)
    query.append(orm.WorkChainNode, tag='model', project='uuid')
    query.append(
        orm.ArrayData,
        with_incoming='model',
        edge_filters={'type': LinkType.RETURN.value, 'label': 'ipr'},
        filters={'uuid': {'in': list(ipr_uuids)}},
        tag='ipr',
        project='uuid',
    )
    query.append(orm.CalcFunctionNode, with_outgoing='ipr', tag='compute', project='uuid')
    query.append(
        orm.FolderData,
        with_outgoing='compute',
        edge_filters={'label': 'retrieved'},
        tag='retrieved',
        project='uuid',
    )
    query.append(
        orm.CalcJobNode,
        with_outgoing='retrieved',
        edge_filters={'type': LinkType.CREATE.value},
        tag='calculation',
        project=['uuid', 'id', 'attributes.output_filename'],
    )
    query.append(
        orm.StructureData,
        with_outgoing='calculation',
        edge_filters={'label': 'structure'},
        tag='structure',
        project='uuid',
    )
    chains = {}
    for model, ipr, compute, retrieved, calc_uuid, calc_pk, output_name, structure in query.all():
        chains[model if by == 'model' else ipr] = {
            'compute_ipr_uuid': compute,
            'retrieved_uuid': retrieved,
            'calculation_uuid': calc_uuid,
            'calculation_pk': calc_pk,
            'structure_uuid': structure,
            '_output_name': output_name,
        }
    return chains


def _cp2k_version(backend, retrieved_uuid: str | None, name: str | None) -> str | None:
    """CP2K's version string, read from the header of the calculation's retrieved output file."""
    if not retrieved_uuid or not name:
        return None
    from aiida import orm

    folder = _qb(backend).append(orm.FolderData, filters={'uuid': retrieved_uuid}).all(flat=True)
    if not folder:
        return None
    try:
        with folder[0].base.repository.open(name) as handle:
            for _, line in zip(range(400), handle, strict=False):
                if 'CP2K| version string:' in line:
                    return line.split('version string:', 1)[1].strip().removeprefix('CP2K version').strip()
    except (OSError, FileNotFoundError):
        return None
    return None


def _fractions(fractions: dict | None) -> str | None:
    if not fractions:
        return None
    ordered = sorted(fractions.items(), key=lambda item: -item[1])
    return ', '.join(f'{name} {value:.2f}' for name, value in ordered)


def models(campaign: Any = None, backend=None) -> pd.DataFrame:
    """One row per model of a campaign (the latest if ``campaign`` is ``None``), failed models included.

    Columns: :data:`MODEL_COLUMNS` (energies in eV unless named ``_ha``). ``state`` is ``finished``,
    ``failed [exit status]`` or the process state of an unfinished model; a failed model has no results.
    Each row carries the uuid of the analysis nodes (``summary_uuid``, ``ipr_uuid``), of the CP2K calculation
    (``calculation_uuid``) and of the structure it computed (``structure_uuid``).
    """
    from aiida_nanohetero.analysis.molog import HARTREE_TO_EV

    campaign = get_campaign(campaign, backend)
    backend = campaign.backend
    table = []
    for row in _model_rows(campaign, backend):
        summary = row.pop('_summary', None) or {}
        parameters = row.pop('_parameters', None) or {}
        energy = parameters.get('energy')
        vb, cb = summary.get('vb_edge') or {}, summary.get('cb_edge') or {}
        homo, lumo = summary.get('homo') or {}, summary.get('lumo') or {}
        row.update(
            total_energy_ha=energy,
            total_energy_ev=None if energy is None else energy * HARTREE_TO_EV,
            homo_mo=homo.get('mo'),
            homo_ev=homo.get('energy_ev'),
            lumo_mo=lumo.get('mo'),
            lumo_ev=lumo.get('energy_ev'),
            gap_ev=summary.get('gap_ev'),
            ipr_method=summary.get('ipr_method'),
            ipr_threshold=summary.get('ipr_threshold', summary.get('threshold')),
            vb_edge_mo=vb.get('mo'),
            vb_edge_ev=vb.get('energy_ev'),
            cb_edge_mo=cb.get('mo'),
            cb_edge_ev=cb.get('energy_ev'),
            gap_filtered_ev=summary.get('gap_filtered_ev'),
            alignment=summary.get('alignment'),
            alignment_basis=summary.get('alignment_basis'),
            n_in_gap_states=summary.get('n_in_gap_states'),
            n_interface_in_gap_states=summary.get('n_interface_in_gap_states'),
            vb_edge_domains=_fractions(summary.get('vb_edge_domain_fractions')),
            cb_edge_domains=_fractions(summary.get('cb_edge_domain_fractions')),
            warnings=' | '.join(summary.get('warnings') or []) or None,
            cp2k_version=_cp2k_version(backend, row.get('retrieved_uuid'), row.pop('_output_name', None)),
        )
        table.append(row)
    frame = pd.DataFrame(table)
    for column in (*MODEL_COLUMNS, 'exit_message', 'workchain_pk', 'retrieved_uuid', 'compute_ipr_uuid'):
        if column not in frame:
            frame[column] = None
    if frame.empty:
        return frame[list(MODEL_COLUMNS)]
    for column in _INTEGER_COLUMNS:
        frame[column] = frame[column].astype('Int64')
    frame = frame.iloc[sorted(range(len(frame)), key=lambda i: _sort_key(frame['key'].iloc[i]))]
    extra = [c for c in frame.columns if c not in MODEL_COLUMNS]
    return frame[[*MODEL_COLUMNS, *extra]].reset_index(drop=True)


def missing_models(campaign: Any, keys: Iterable[str], table: pd.DataFrame | None = None, backend=None) -> dict:
    """For each of ``keys`` without results in the campaign, why: not computed, failed (with its exit status and
    message), or still running. Keys with results are left out."""
    campaign = get_campaign(campaign, backend)
    table = models(campaign) if table is None else table
    halides = _campaign_halides(campaign)
    missing = {}
    for key in keys:
        rows = table[table['key'] == key]
        if rows.empty:
            missing[key] = f'not computed by this campaign (halides: {", ".join(halides) or "none"})'
            continue
        row = rows.iloc[0]
        if row['state'].startswith('failed'):
            message = f': {row["exit_message"]}' if row.get('exit_message') else ''
            missing[key] = f'{row["state"]}{message}'
        elif row['state'] != 'finished':
            missing[key] = f'not finished ({row["state"]})'
        elif not row.get('ipr_uuid') or not row.get('summary_uuid'):
            missing[key] = 'finished without the orbital analysis outputs (ipr, summary)'
    return missing


# ---------------------------------------------------------------------------------------------------------------
# orbitals
# ---------------------------------------------------------------------------------------------------------------

ORBITAL_COLUMNS = (
    'key',
    'model',
    'halide',
    'mo',
    'energy_ev',
    'occupation',
    'ipr',
    'ipr_raw',
    'degenerate_set',
    'localised',
    'homo',
    'lumo',
    'vb_edge',
    'cb_edge',
    'in_gap',
    'interface_state',
    *(f'element_{e}' for e in ELEMENT_ORDER),
    *(f'domain_{d}' for d in DOMAIN_ORDER),
    'ipr_threshold',
    'ipr_method',
    'ipr_uuid',
    'calculation_uuid',
    'structure_uuid',
)


def _node(backend, uuid: str):
    from aiida import orm

    return _qb(backend).append(orm.Node, filters={'uuid': uuid}).one()[0]


def _add_contributions(frame, prefix: str, names: list[str], contributions, order) -> None:
    """One ``<prefix>_<name>`` column per element or domain: those of ``order`` always (0 where absent), then
    any other the node has."""
    for name in order:
        frame[f'{prefix}_{name}'] = contributions[names.index(name)] if name in names else 0.0
    for i, name in enumerate(names):
        if name not in order:
            frame[f'{prefix}_{name}'] = contributions[i]


def _orbital_frame(row: pd.Series, backend) -> pd.DataFrame:
    ipr_node = _node(backend, row['ipr_uuid'])
    summary = _node(backend, row['summary_uuid']).get_dict()
    threshold = float(summary.get('ipr_threshold', summary.get('threshold')))
    energies = ipr_node.get_array('energies_ev')
    occupations = ipr_node.get_array('occupations')
    ipr = ipr_node.get_array('ipr')
    indices = ipr_node.get_array('indices')
    occupied = occupations > _OCCUPIED
    frame = pd.DataFrame(
        {
            'key': row['key'],
            'model': row['model'],
            'halide': row['halide'],
            'mo': indices.astype(int),
            'energy_ev': energies,
            'occupation': occupations,
            'ipr': ipr,
            'ipr_raw': ipr_node.get_array('ipr_raw'),
            'degenerate_set': ipr_node.get_array('degenerate_set').astype(int),
            'localised': ipr >= threshold,
        }
    )
    homo_mo = (summary.get('homo') or {}).get('mo')
    lumo_mo = (summary.get('lumo') or {}).get('mo')
    frame['homo'] = frame['mo'] == homo_mo
    frame['lumo'] = frame['mo'] == lumo_mo
    vb, cb = summary.get('vb_edge'), summary.get('cb_edge')
    delocalised = ~frame['localised'].to_numpy()
    if vb and cb:
        frame['vb_edge'] = occupied & delocalised & (np.abs(energies - vb['energy_ev']) <= EDGE_TOL_EV)
        frame['cb_edge'] = ~occupied & delocalised & (np.abs(energies - cb['energy_ev']) <= EDGE_TOL_EV)
        frame['in_gap'] = (energies > vb['energy_ev'] + EDGE_TOL_EV) & (energies < cb['energy_ev'] - EDGE_TOL_EV)
    else:
        frame['vb_edge'] = frame['cb_edge'] = frame['in_gap'] = False
    for prefix, names, order in (('element', 'elements', ELEMENT_ORDER), ('domain', 'domains', DOMAIN_ORDER)):
        _add_contributions(
            frame,
            prefix,
            list(ipr_node.base.attributes.get(names)),
            ipr_node.get_array(f'{prefix}_contributions'),
            order,
        )
    frame['interface_state'] = frame['localised'] & (frame['domain_interface'] >= INTERFACE_FRACTION)
    frame['ipr_threshold'] = threshold
    frame['ipr_method'] = ipr_node.base.attributes.get('method')
    frame['ipr_uuid'] = row['ipr_uuid']
    frame['calculation_uuid'] = row['calculation_uuid']
    frame['structure_uuid'] = row['structure_uuid']
    return frame


def orbitals(
    campaign: Any = None, keys: Iterable[str] | None = None, backend=None, table: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per orbital of the window of each finished model (or of the models ``keys``), sorted by model and
    energy. Columns: :data:`ORBITAL_COLUMNS` (energies in eV; ``element_<X>`` and ``domain_<name>`` are Löwdin
    fractions summing to 1 per orbital; ``localised``: IPR at or above the model's threshold; ``vb_edge``/
    ``cb_edge``: the IPR-filtered band-edge states; ``in_gap``: between them; ``interface_state``: localised with
    at least half of it on the interface layer). Each row carries ``ipr_uuid`` (the analysis node),
    ``calculation_uuid`` (the CP2K calculation) and ``structure_uuid`` (the structure it computed).
    """
    campaign = get_campaign(campaign, backend)
    backend = campaign.backend
    table = models(campaign) if table is None else table
    wanted = None if keys is None else list(keys)
    frames = []
    for _, row in table.iterrows():
        if wanted is not None and row['key'] not in wanted:
            continue
        if row['state'] != 'finished' or not row.get('ipr_uuid') or not row.get('summary_uuid'):
            continue
        frames.append(_orbital_frame(row, backend))
    if not frames:
        return pd.DataFrame(columns=list(ORBITAL_COLUMNS))
    frame = pd.concat(frames, ignore_index=True)
    extra = [c for c in frame.columns if c not in ORBITAL_COLUMNS]
    return frame[[*ORBITAL_COLUMNS, *extra]]


def trace_orbital(ipr_uuid: str, mo: int, backend=None) -> dict:
    """The provenance of one orbital's numbers: every node between the IPR node and the CP2K calculation.

    Returns a dict of nodes: ``ipr`` (the analysis node), ``compute_ipr``, ``orbitals`` (parsed energies and
    coefficients), ``parse_orbitals``, ``retrieved`` (CP2K's files), ``calculation`` (the ``Cp2kCalculation``),
    ``structure`` (its input geometry), ``model`` (the model's work chain), plus ``mo``, ``energy_ev`` and
    ``ipr_value`` of the orbital read back from the IPR node.
    """
    from aiida import orm
    from aiida.common.links import LinkType

    chains = _calculation_chains([ipr_uuid], backend)
    if ipr_uuid not in chains:
        raise ResultsError(f'no IPR node {ipr_uuid} returned by a model work chain, or its provenance is incomplete')
    chain = chains[ipr_uuid]
    ipr_node = _node(backend, ipr_uuid)
    indices = list(ipr_node.get_array('indices'))
    if mo not in indices:
        raise ResultsError(f'MO {mo} is not in the window of {ipr_uuid} (MOs {indices[0]}-{indices[-1]})')
    i = indices.index(mo)
    query = _qb(backend).append(orm.ArrayData, filters={'uuid': ipr_uuid}, tag='ipr')
    query.append(orm.CalcFunctionNode, with_outgoing='ipr', tag='compute')
    query.append(orm.ArrayData, with_outgoing='compute', edge_filters={'label': 'orbitals'}, tag='orbitals')
    query.append(orm.CalcFunctionNode, with_outgoing='orbitals', tag='parse', project='*')
    query.add_projection('orbitals', '*')
    (found,) = query.dict()
    parse, orbitals_node = found['parse']['*'], found['orbitals']['*']
    model = _qb(backend).append(orm.ArrayData, filters={'uuid': ipr_uuid}, tag='ipr')
    # the model's work chain returned it as ``ipr`` (the campaign returns it too, as ``models__<key>__ipr``)
    model.append(
        orm.WorkChainNode,
        with_outgoing='ipr',
        edge_filters={'type': LinkType.RETURN.value, 'label': 'ipr'},
        project='*',
    )
    return {
        'mo': int(mo),
        'energy_ev': float(ipr_node.get_array('energies_ev')[i]),
        'ipr_value': float(ipr_node.get_array('ipr')[i]),
        'ipr': ipr_node,
        'compute_ipr': _node(backend, chain['compute_ipr_uuid']),
        'orbitals': orbitals_node,
        'parse_orbitals': parse,
        'retrieved': _node(backend, chain['retrieved_uuid']),
        'calculation': _node(backend, chain['calculation_uuid']),
        'structure': _node(backend, chain['structure_uuid']),
        'model': model.all(flat=True)[0],
    }
