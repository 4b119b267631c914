"""Protocols: named sets of default inputs in YAML, in the style of aiida-quantumespresso.

Each WorkChain that offers ``get_builder_from_protocol`` names a YAML file in this folder. The file holds
``default_protocol``, ``default_inputs`` and ``protocols``; a protocol's inputs are the default inputs
deep-merged with the protocol's own, then with the user's ``overrides``. Unknown keys in the overrides are an
error, not silently ignored.
"""

from __future__ import annotations

import copy
import functools
import pathlib
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ('ProtocolError', 'ProtocolMixin', 'deep_merge', 'load_protocol_file')

PROTOCOL_DIR = pathlib.Path(__file__).parent


class ProtocolError(ValueError):
    """An unknown protocol, or overrides that do not fit the protocol's inputs."""


@functools.cache
def load_protocol_file(filename: str) -> dict[str, Any]:
    with (PROTOCOL_DIR / filename).open(encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def deep_merge(base: Mapping, overrides: Mapping, *, strict: bool = False, open_keys=(), _path: str = '') -> dict:
    """Recursively merge ``overrides`` into a copy of ``base``.

    :param strict: raise :class:`ProtocolError` for a key of ``overrides`` that ``base`` does not have, unless the
        key's dotted path lies below one of ``open_keys`` (namespaces whose content is free, such as CP2K's input).
    """
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        path = f'{_path}.{key}' if _path else str(key)
        if key not in merged:
            if strict and not any(path.startswith(f'{k}.') for k in open_keys):
                valid = ', '.join(sorted(map(str, merged))) or '(none)'
                raise ProtocolError(f'unknown override "{path}": valid keys here are {valid}')
            merged[key] = copy.deepcopy(value)
        elif isinstance(merged[key], Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(merged[key], value, strict=strict, open_keys=open_keys, _path=path)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class ProtocolMixin:
    """Adds protocol look-up to a WorkChain; set ``_protocol_file`` to the YAML file's name."""

    _protocol_file: str
    #: Dotted paths below which overrides may add keys the protocol does not have (e.g. CP2K input sections).
    _open_override_keys: tuple[str, ...] = ()

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        return PROTOCOL_DIR / cls._protocol_file

    @classmethod
    def get_default_protocol(cls) -> str:
        return load_protocol_file(cls._protocol_file)['default_protocol']

    @classmethod
    def get_available_protocols(cls) -> dict[str, dict[str, Any]]:
        data = load_protocol_file(cls._protocol_file)
        return {name: {'description': value['description']} for name, value in data['protocols'].items()}

    @classmethod
    def get_protocol_inputs(cls, protocol: str | None = None, overrides: Mapping | None = None) -> dict[str, Any]:
        """The inputs of a protocol, with ``overrides`` (a nested mapping) deep-merged and checked."""
        data = load_protocol_file(cls._protocol_file)
        protocol = protocol or data['default_protocol']
        if protocol not in data['protocols']:
            raise ProtocolError(f'unknown protocol "{protocol}": choose one of {", ".join(data["protocols"])}')
        protocol_inputs = {k: v for k, v in data['protocols'][protocol].items() if k != 'description'}
        inputs = deep_merge(data['default_inputs'], protocol_inputs)
        if overrides:
            inputs = deep_merge(inputs, overrides, strict=True, open_keys=cls._open_override_keys)
        return inputs
