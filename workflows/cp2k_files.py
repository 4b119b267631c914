"""CP2K basis-set and pseudopotential files as provenance: stored once, reused by every calculation.

Each file is stored as a :class:`~aiida.orm.SinglefileData` whose ``sha256`` extra identifies its content, and
put in the group ``nanohetero/cp2k-data``. Passing these nodes in the ``file`` namespace of
``Cp2kCalculation`` copies them into the job folder, so the CP2K input refers to them by file name and every
result links back to the exact basis and potential definitions it used.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

from aiida import orm

from aiida_nanohetero.profiles import find_cp2k_data_file

__all__ = ('CP2K_DATA_GROUP', 'get_cp2k_data_files', 'store_cp2k_data_file')

CP2K_DATA_GROUP = 'nanohetero/cp2k-data'
_EXTRA_SHA = 'nanohetero_sha256'
_EXTRA_ROLE = 'nanohetero_cp2k_data'


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open('rb') as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def store_cp2k_data_file(path: str | os.PathLike, role: str) -> tuple[orm.SinglefileData, bool]:
    """Return the stored node with this file's content, storing it first if no such node exists.

    :param role: ``basis`` or ``potential``.
    :returns: the node, and whether it was created now.
    """
    path = pathlib.Path(path)
    sha = _sha256(path)
    query = orm.QueryBuilder().append(
        orm.SinglefileData,
        filters={f'extras.{_EXTRA_SHA}': sha, f'extras.{_EXTRA_ROLE}': role, 'attributes.filename': path.name},
    )
    existing = query.first(flat=True)
    if existing is not None:
        return existing, False
    node = orm.SinglefileData(file=path, filename=path.name)
    node.label = path.name
    node.description = f'CP2K {role} file, from {path}'
    node.store()
    node.base.extras.set_many({_EXTRA_SHA: sha, _EXTRA_ROLE: role, 'nanohetero_source_path': str(path)})
    group, _ = orm.Group.collection.get_or_create(CP2K_DATA_GROUP)
    group.add_nodes(node)
    return node, True


def get_cp2k_data_files(
    basis: str | os.PathLike = 'BASIS_MOLOPT', potential: str | os.PathLike = 'GTH_POTENTIALS'
) -> dict[str, orm.SinglefileData]:
    """The stored nodes for a basis-set file and a pseudopotential file (names in CP2K's data dir, or paths).

    The keys, ``basis`` and ``potential``, are the names used in the ``file`` namespace of the CP2K calculation.
    """
    paths = {'basis': find_cp2k_data_file(basis, 'basis'), 'potential': find_cp2k_data_file(potential, 'potential')}
    return {role: store_cp2k_data_file(path, role)[0] for role, path in paths.items()}
