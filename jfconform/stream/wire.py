"""One message's bytes → its decoded map, with the encoding rules (STR-001 … STR-006).

Decoding uses cbor2 (through :mod:`jfconform.stream.cbor_views`, which spares the pixel
bytes a copy), never jfsim's decoder: the judge must not share a bug with the encoder it
judges. cbor2 drops the self-described tag 55799 and does not say which key came
first, so both are checked on the bytes and the map order here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2

from jfconform.model import Issue
from jfconform.stream.cbor_views import decode_item
from jfconform.stream.fields import MESSAGE_TYPES

__all__ = ["SELF_DESCRIBED_PREFIX", "DecodedMessage", "decode_message"]

SELF_DESCRIBED_PREFIX = b"\xd9\xd9\xf7"
#: Containers nested deeper than this are refused (real messages use fewer than ten).
MAX_NESTING = 64

Problem = tuple[str, Issue]


@dataclass(slots=True)
class DecodedMessage:
    """What the encoding rules left of one message: its map and type, or nothing.

    ``fields`` is None when the message could not be decoded into a map; ``type`` is None
    when it has no usable ``type``.
    """

    size_bytes: int
    fields: Mapping[str, Any] | None = None
    type: str | None = None
    problems: list[Problem] = field(default_factory=list)


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]


def decode_message(data: bytes | memoryview, where: str) -> DecodedMessage:
    """Decode ``data`` (one ZeroMQ message or one recorded item) and judge its encoding.

    ``where`` names the message in findings (e.g. ``#12``). Never raises for bad content.
    """
    result = DecodedMessage(len(data))
    problems = result.problems
    if not data:
        problems.append(("STR-001", Issue(where, "empty message (0 bytes)")))
        return result
    start = 0
    if data[:3] == SELF_DESCRIBED_PREFIX:
        start = 3
    else:
        problems.append(
            (
                "STR-002",
                Issue(where, f"starts with {bytes(data[:3]).hex(' ')}, not the 55799 tag d9 d9 f7"),
            )
        )
    try:
        value, end = decode_item(data, start, MAX_NESTING)
    except Exception as error:  # cbor2 raises many types for hostile input; all mean "not CBOR"
        problems.append(
            (
                "STR-001",
                Issue(where, f"not well-formed CBOR ({len(data)} bytes): {_first_line(error)}"),
            )
        )
        return result
    if end != len(data):
        problems.append(
            (
                "STR-001",
                Issue(
                    where, f"{len(data) - end} bytes follow the first CBOR item (ending at {end})"
                ),
            )
        )
    if not isinstance(value, Mapping):
        problems.append(("STR-003", Issue(where, f"the message is {_kind(value)}, not a map")))
        return result
    bad_keys = [key for key in value if not isinstance(key, str)]
    if bad_keys:
        problems.append(("STR-003", Issue(where, f"map key {bad_keys[0]!r} is not a text string")))
        return result
    result.fields = value
    message_type = value.get("type")
    if message_type is None:
        problems.append(("STR-004", Issue(where, "the map has no 'type' key")))
        return result
    if not isinstance(message_type, str):
        problems.append(("STR-004", Issue(where, f"'type' is {_kind(message_type)}, not text")))
        return result
    result.type = message_type
    first_key = next(iter(value))
    if first_key != "type":
        problems.append(
            ("STR-005", Issue(where, f"the first key is {first_key!r}; 'type' must come first"))
        )
    if message_type not in MESSAGE_TYPES:
        problems.append(
            (
                "STR-006",
                Issue(where, f"unknown message type {message_type!r}; its fields are not judged"),
            )
        )
    return result


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a map"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, (bytes, bytearray)):
        return "a byte string"
    if isinstance(value, cbor2.CBORTag):
        return f"tag {value.tag}"
    return f"{type(value).__name__} {value!r:.40}"
