"""Type checks against the field table, and the Float coercion the encoder applies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from jfsim.protocol.errors import ProtocolError
from jfsim.protocol.message import Message, Rational
from jfsim.protocol.pixels import PixelArray
from jfsim.protocol.schema import SCHEMA, FieldSpec, WireType, member_specs, required_fields

__all__ = ["check_message", "coerce_floats", "describe"]


def describe(value: Any) -> str:
    """A short type name for error messages (``str``, ``int``, ``list``, ``PixelArray``)."""
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_float_array(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(isinstance(item, float) for item in value)
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.dtype.kind == "f"
    if isinstance(value, PixelArray):
        return value.dtype.kind == "f"
    return False


def _channels_problem(value: Any) -> str | None:
    if not isinstance(value, Mapping) or not value:
        return "expected a non-empty map of channel name to multi-dimensional array"
    for name, array in value.items():
        if not isinstance(name, str):
            return f"channel name {name!r} is not a text string"
        if not isinstance(array, PixelArray):
            return f"channel '{name}': expected a tag-40 array, got {describe(array)}"
    return None


def _problem(wire_type: WireType, value: Any) -> str | None:
    """None when ``value`` fits ``wire_type``, else what was expected."""
    ok: bool
    if wire_type is WireType.UINT:
        ok = _is_int(value) and value >= 0
    elif wire_type is WireType.INT:
        ok = _is_int(value)
    elif wire_type is WireType.FLOAT:
        ok = isinstance(value, float)
    elif wire_type is WireType.BOOL:
        ok = isinstance(value, bool)
    elif wire_type is WireType.TEXT:
        ok = isinstance(value, str)
    elif wire_type is WireType.DATETIME:
        ok = isinstance(value, datetime) and value.tzinfo is not None
    elif wire_type is WireType.RATIONAL:
        ok = isinstance(value, Rational) and _is_int(value[0]) and _is_int(value[1])
        ok = ok and value[0] >= 0 and value[1] > 0
    elif wire_type is WireType.TIME:
        ok = _problem(WireType.RATIONAL, value) is None or (
            isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        )
    elif wire_type is WireType.FLOAT_LIST:
        ok = _is_float_array(value)
    elif wire_type is WireType.TEXT_LIST:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    elif wire_type is WireType.FLOAT_MAP:
        ok = isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, float) for k, v in value.items()
        )
    elif wire_type is WireType.AXIS_MAP:
        ok = isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, Mapping) for k, v in value.items()
        )
    elif wire_type is WireType.CHANNELS:
        return _channels_problem(value)
    elif wire_type is WireType.TYPED_ARRAY:
        ok = isinstance(value, (np.ndarray, PixelArray, list))
    elif wire_type is WireType.MAP:
        ok = isinstance(value, Mapping)
    elif wire_type is WireType.MAP_OF_MAPS:
        ok = isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, Mapping) for k, v in value.items()
        )
    elif wire_type is WireType.MAP_LIST:
        ok = isinstance(value, (list, tuple)) and all(
            type(v) is dict or isinstance(v, Mapping) for v in value
        )
    else:
        ok = True
    if ok:
        return None
    shown = f" {list(value)}" if isinstance(value, Rational) else ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        shown = f" {value!r}"
    return f"expected {wire_type.value}, got {describe(value)}{shown}"


def check_message(message: Message, *, required: bool = True) -> None:
    """Raise ``ProtocolError`` for a missing required field or a known field of the wrong type.

    Unknown message types and unknown keys pass: receivers must ignore them (stream.md §9).
    ``required=False`` checks only the types of the fields present (a part of a message).
    """
    table = SCHEMA.get(message.type)
    if table is None:
        return
    for name in required_fields(message.type) if required else ():
        if name not in message.fields:
            raise ProtocolError(f"{message.type} message: required field '{name}' is missing")
    for name, value in message.fields.items():
        spec = table.get(name)
        if spec is None:
            continue
        problem = _problem(spec.wire_type, value)
        if problem is not None:
            raise ProtocolError(f"{message.type} message: field '{name}': {problem}")


def _as_float(value: Any) -> Any:
    if _is_int(value):
        return float(value)
    if isinstance(value, np.floating | np.integer):
        return float(value)
    return value


def _coerce(wire_type: WireType, value: Any) -> Any:
    if wire_type is WireType.FLOAT:
        return _as_float(value)
    if wire_type is WireType.FLOAT_LIST and isinstance(value, (list, tuple)):
        return [_as_float(item) for item in value]
    if wire_type is WireType.FLOAT_MAP and isinstance(value, Mapping):
        return {key: _as_float(item) for key, item in value.items()}
    if wire_type is WireType.AXIS_MAP and isinstance(value, Mapping):
        return {
            axis: {k: _as_float(v) for k, v in members.items()}
            if isinstance(members, Mapping)
            else members
            for axis, members in value.items()
        }
    if wire_type in (WireType.RATIONAL, WireType.TIME) and isinstance(value, (list, tuple)):
        if len(value) == 2:
            return Rational(*value)
    return value


def _coerce_map(table: Mapping[str, FieldSpec], entry: Any) -> Any:
    """One map of a container field with its tabled keys coerced (others kept as they are)."""
    if not isinstance(entry, Mapping):
        return entry
    out = {}
    for key, value in entry.items():
        spec = table.get(key)
        out[key] = value if spec is None else _coerce_field(spec, value)
    return out


def _coerce_field(spec: FieldSpec, value: Any) -> Any:
    """``value`` of the field ``spec`` with Float values turned into floats, nested ones too."""
    members = member_specs(spec.message, spec.name)
    if members is None:
        return _coerce(spec.wire_type, value)
    if spec.wire_type is WireType.MAP_LIST and isinstance(value, (list, tuple)):
        return [_coerce_map(members, entry) for entry in value]
    if spec.wire_type is WireType.MAP_OF_MAPS and isinstance(value, Mapping):
        return {name: _coerce_map(members, entry) for name, entry in value.items()}
    if spec.wire_type is WireType.MAP:
        return _coerce_map(members, value)
    return value


def coerce_floats(message: Message) -> dict[str, Any]:
    """The message's fields with every Float-typed value turned into a Python float.

    A Float written as a CBOR integer is rejected by the DECTRIS reference parser, so
    ``beam_center_x=512`` must travel as ``512.0``. Tabled keys inside container fields
    (spot ``x``/``y``/``I``, reflection and ROI values, ``grid_scan`` steps, the image
    fields of metadata ``images`` entries) are coerced the same way.
    """
    table = SCHEMA.get(message.type)
    if table is None:
        return dict(message.fields)
    coerced: dict[str, Any] = _coerce_map(table, message.fields)
    return coerced
