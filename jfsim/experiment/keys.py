"""How a section's fields are spelt in an experiment file, declared on the fields themselves.

Every field of a section dataclass (``Beam``, ``DetectorPosition``, …) names the file keys
that set it in its metadata::

    distance_mm: float = field(metadata=keys(Key("distance_mm", quantity("mm"), check=positive)))

The first key is the field's own spelling, the one ``experiment_to_dict`` writes; further
keys are alternatives in another unit (``wavelength_A`` for ``energy_keV``), read but never
written. The loader's key table, its "known keys" messages and ``experiment_to_dict`` are all
derived from these declarations, so adding a key to the experiment is one line in
``model.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from jfsim.config_values import Check
from jfsim.errors import ConfigError

__all__ = ["Key", "keys", "parse_section", "section_keys", "section_to_dict"]

#: The metadata entry of a field that holds its keys.
_KEYS = "experiment_keys"


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Key:
    """One file key of a field.

    Args:
        name: the key as written in the file, its unit in the name (``mosaicity_deg``).
        parse: reads the raw value, ``parse("[section] key", raw)``; names the key on error.
        check: returns a problem with the value in the field's unit, or None when it is fine.
        to_field: converts the parsed value to the field's unit (``deg_to_rad``).
        from_field: converts the field's value back for writing (``rad_to_deg``); only the
            field's first key is written.
    """

    name: str
    parse: Callable[[str, Any], Any]
    check: Check | None = None
    to_field: Callable[[Any], Any] = _same
    from_field: Callable[[Any], Any] = _same


def keys(*spellings: Key) -> dict[str, Any]:
    """Field metadata: the keys that set this field, its own spelling first."""
    if not spellings:
        raise ValueError("a field needs at least one key")
    return {_KEYS: spellings}


def _spellings(cls: type, name: str, metadata: Mapping[str, Any]) -> tuple[Key, ...]:
    if _KEYS not in metadata:
        raise TypeError(f"{cls.__name__}.{name} declares no experiment keys (see keys())")
    spellings: tuple[Key, ...] = metadata[_KEYS]
    return spellings


@cache
def section_keys(cls: type) -> dict[str, tuple[str, Key]]:
    """Every file key of a section dataclass → (field it sets, its declaration)."""
    table: dict[str, tuple[str, Key]] = {}
    for item in fields(cls):
        for key in _spellings(cls, item.name, item.metadata):
            if key.name in table:
                raise TypeError(f"{cls.__name__}: key {key.name!r} declared twice")
            table[key.name] = (item.name, key)
    return table


def parse_section(section: str, cls: type, table: Any) -> dict[str, Any]:
    """One ``[section]`` table as keyword arguments of ``cls``, in the fields' units.

    Raises:
        ConfigError: an unknown key, a value that does not parse or fails its check, or a
            field set twice (by two of its keys); the message names ``[section] key``.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{section}]: expected a table of keys, got {type(table).__name__}")
    known = section_keys(cls)
    parsed: dict[str, Any] = {}
    for name, raw in table.items():
        where = f"[{section}] {name}"
        if name not in known:
            raise ConfigError(f"{where}: unknown key; known keys are {', '.join(sorted(known))}")
        field_name, key = known[name]
        value = key.to_field(key.parse(where, raw))
        problem = key.check(value) if key.check else None
        if problem:
            raise ConfigError(f"{where}: {problem}")
        if field_name in parsed:
            raise ConfigError(f"{where}: sets {field_name} a second time (give only one unit)")
        parsed[field_name] = value
    return parsed


def section_to_dict(section: Any) -> dict[str, Any]:
    """A section dataclass as its file keys (each field's first key); None fields are left
    out, as they are when a file omits them."""
    table: dict[str, Any] = {}
    for item in fields(section):
        value = getattr(section, item.name)
        if value is not None:
            key = _spellings(type(section), item.name, item.metadata)[0]
            table[key.name] = key.from_field(value)
    return table
