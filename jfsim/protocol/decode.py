"""A small, defensive CBOR decoder for messages (our own parser, not cbor2's).

Why our own: every declared length is checked against the bytes that are really there
before anything is allocated or sliced (a header claiming terabytes is an error, not a
``MemoryError``), nesting depth is bounded, every failure is a ``ProtocolError`` that
names the message type and field, and pixel byte strings are sliced out once and left
compressed.

What a message may cost is bounded too: a Python list or dict costs 56-64 bytes even when
empty, so 8 MiB of empty arrays would become 640 MiB of lists. Every list and map the decoder
builds is charged against a budget of ``DECODE_BYTES_PER_MESSAGE_BYTE`` times the message
size (plus ``DECODE_BUDGET_FLOOR_BYTES``), before it is built where its length is declared;
a message over budget is a ``ProtocolError``. Scalars are not charged: each costs at most
about ten times the bytes that encode it.

Tags handled: 55799 (stripped), 0/1 (date-time), 40 (multi-dimensional array), 64–86
(RFC 8746 typed arrays), 56500 (DECTRIS compression); other tags come back as
``cbor2.CBORTag``.
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import cbor2
import numpy as np

from jfsim.protocol.errors import ProtocolError
from jfsim.protocol.message import Message, Rational
from jfsim.protocol.pixels import MAX_DIMENSIONS, TAG_TO_DTYPE, Compression, PixelArray
from jfsim.protocol.plain_arrays import decode_plain_array, scan_plain_array
from jfsim.protocol.schema import SCHEMA, WireType
from jfsim.protocol.validate import check_message, describe

__all__ = [
    "DECODE_BUDGET_FLOOR_BYTES",
    "DECODE_BYTES_PER_MESSAGE_BYTE",
    "MessageLayout",
    "decode",
    "decode_at",
    "item_end",
    "message_type",
    "scan_message",
]

MAX_DEPTH = 32
#: Bytes of lists and maps a message may decode into, per byte of message (see above).
DECODE_BYTES_PER_MESSAGE_BYTE = 16
#: ... plus this much for any message (small messages with many small maps).
DECODE_BUDGET_FLOOR_BYTES = 1 << 20
#: Charged per list (and per element slot) and per dict (and per key/value pair): CPython's
#: sizes, a little rounded up.
_LIST_BYTES, _LIST_SLOT_BYTES = 56, 8
_MAP_BYTES, _MAP_PAIR_BYTES = 64, 48
_CONTAINER_BYTES = (_LIST_BYTES, _LIST_SLOT_BYTES, _MAP_BYTES, _MAP_PAIR_BYTES)
_HALF = struct.Struct(">e")
_SINGLE = struct.Struct(">f")
_DOUBLE = struct.Struct(">d")
_BREAK = object()
_TEXT_CACHE: dict[bytes, str] = {}
_TEXT_CACHE_LIMIT = 4096
"""Decoded short text strings by their encoded bytes; keys repeat in every message."""


class _Typed:
    """A typed-array tag's content before tag 40 gives it a shape."""

    __slots__ = ("compression", "dtype", "payload")

    def __init__(self, dtype: np.dtype, compression: Compression, payload: bytes) -> None:
        self.dtype = dtype
        self.compression = compression
        self.payload = payload


class _Reader:
    """Cursor over one buffer; methods raise ProtocolError on any malformed byte."""

    def __init__(
        self,
        buffer: bytes | bytearray | memoryview,
        position: int = 0,
        budget_bytes: int | None = None,
    ) -> None:
        self.data: bytes | memoryview = (
            buffer if isinstance(buffer, bytes) else memoryview(buffer).cast("B")
        )
        self.position = position
        self.end = len(self.data)
        self._as_array: np.ndarray | None = None
        if budget_bytes is None:
            budget_bytes = (
                DECODE_BYTES_PER_MESSAGE_BYTE * (self.end - position) + DECODE_BUDGET_FLOOR_BYTES
            )
        self.budget_bytes = budget_bytes
        self._left = budget_bytes

    def charge(self, n_bytes: int) -> None:
        """Count ``n_bytes`` of lists and maps against the message's budget."""
        self._left -= n_bytes
        if self._left < 0:
            raise ProtocolError(
                f"decoding would take more than {self.budget_bytes} bytes of lists and maps "
                f"for a {self.end}-byte message (at offset {self.position}); refused"
            )

    def plain_array(self, start: int, max_levels: int) -> list[Any] | None:
        """The array at ``start`` through the fast plain-array decoder, or None if it is not
        plain CBOR (``plain_arrays``) within ``max_levels`` levels. The lists and maps below
        the array (the array itself is charged by ``item``) are charged before any is built."""
        if self._as_array is None:
            self._as_array = np.frombuffer(self.data, dtype=np.uint8)
        items, end = decode_plain_array(
            self.data, self._as_array, start, max_levels, _CONTAINER_BYTES, self.charge
        )
        if items is not None:
            self.position = end
        return items

    def need(self, count: int, what: str) -> None:
        if count > self.end - self.position:
            raise ProtocolError(
                f"truncated: {what} needs {count} bytes at offset {self.position}, "
                f"only {self.end - self.position} left"
            )

    def head(self) -> tuple[int, int, bool]:
        """Read an initial byte and argument: ``(major, argument, indefinite)``."""
        self.need(1, "an item")
        initial = self.data[self.position]
        self.position += 1
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, False
        if info <= 27:
            size = 1 << (info - 24)
            self.need(size, "an item head")
            value = int.from_bytes(self.data[self.position : self.position + size], "big")
            self.position += size
            return major, value, False
        if info == 31 and major in (2, 3, 4, 5, 7):
            return major, 0, True
        raise ProtocolError(f"malformed item head 0x{initial:02x} at offset {self.position - 1}")

    def take(self, count: int, what: str) -> bytes:
        self.need(count, what)
        start = self.position
        self.position += count
        return bytes(self.data[start : self.position])

    def item(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ProtocolError(f"nesting deeper than {MAX_DEPTH} levels")
        start = self.position
        data = self.data
        if start < self.end:
            initial = data[start]
            if initial < 0x18:  # fast path: small unsigned integer
                self.position = start + 1
                return initial
            if 0x60 <= initial < 0x78 and isinstance(data, bytes):  # fast path: short text
                end = start + 1 + (initial - 0x60)
                raw = data[start:end]
                text = _TEXT_CACHE.get(raw)
                if text is not None:
                    self.position = end
                    return text
        major, argument, indefinite = self.head()
        if major == 0:
            return argument
        if major == 1:
            return -1 - argument
        if major in (2, 3):
            raw = self._chunks(major) if indefinite else self.take(argument, "a string")
            if major == 2:
                return raw
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ProtocolError(f"invalid UTF-8 in text string at offset {start}") from error
            if argument < 24 and len(_TEXT_CACHE) < _TEXT_CACHE_LIMIT:
                _TEXT_CACHE[bytes((0x60 + argument,)) + raw] = text
            return text
        if major == 4:
            self.need(argument, f"an array of {argument} items")
            self.charge(_LIST_BYTES + _LIST_SLOT_BYTES * argument)
            return self._array(start, argument, indefinite, depth)
        if major == 5:
            if not indefinite:
                self.need(2 * argument, f"a map of {argument} pairs")
            self.charge(_MAP_BYTES + _MAP_PAIR_BYTES * argument)
            return self._map(argument, indefinite, depth)
        if major == 6:
            return self._tag(argument, depth)
        if indefinite:
            return _BREAK
        return self._simple(argument, start)

    def value(self, depth: int = 0) -> Any:
        """An item as a user-facing value (a bare typed array becomes numpy or PixelArray)."""
        item = self.item(depth)
        if item is _BREAK:
            raise ProtocolError(f"unexpected break code at offset {self.position - 1}")
        if isinstance(item, _Typed):
            return _bare_typed(item)
        return item

    def _chunks(self, major: int) -> bytes:
        chunks: list[bytes] = []
        while True:
            chunk_major, argument, indefinite = self.head()
            if chunk_major == 7 and indefinite:
                return b"".join(chunks)
            if chunk_major != major or indefinite:
                raise ProtocolError("malformed indefinite-length string")
            chunks.append(self.take(argument, "a string chunk"))

    def _array(self, start: int, count: int, indefinite: bool, depth: int) -> list[Any]:
        """The array whose head starts at ``start`` (its length checked and charged by ``item``).

        A definite-length array (spots, reflections, profiles: the bulk of an analysis
        message) is first offered to the plain-array decoder (``plain_arrays``: a numba scan
        that checks every length, then cbor2's C decoder), which declines anything with a
        tag, a byte string or an indefinite length; this general path then decodes it item
        by item and owns every error.
        """
        if indefinite:
            out: list[Any] = []
            while True:
                item = self.item(depth + 1)
                if item is _BREAK:
                    return out
                self.charge(_LIST_SLOT_BYTES)
                out.append(_bare_typed(item) if isinstance(item, _Typed) else item)
        if count and depth < MAX_DEPTH:
            items = self.plain_array(start, MAX_DEPTH - depth)
            if items is not None:
                return items
        return [self.value(depth + 1) for _ in range(count)]

    def _map(self, count: int, indefinite: bool, depth: int) -> dict[Any, Any]:
        """A map whose head was read (and its declared pairs charged) by ``item``."""
        out: dict[Any, Any] = {}
        index = 0
        while indefinite or index < count:
            key = self.item(depth + 1)
            if key is _BREAK and indefinite:
                return out
            if indefinite:
                self.charge(_MAP_PAIR_BYTES)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise ProtocolError(f"map key of type {describe(key)} (only text or integer)")
            try:
                out[key] = self.value(depth + 1)
            except ProtocolError as error:
                raise ProtocolError(f"'{key}': {error}") from None
            index += 1
        return out

    def _simple(self, argument: int, start: int) -> Any:
        initial = self.data[start] & 0x1F
        if initial == 25:
            return _HALF.unpack(argument.to_bytes(2, "big"))[0]
        if initial == 26:
            return _SINGLE.unpack(argument.to_bytes(4, "big"))[0]
        if initial == 27:
            return _DOUBLE.unpack(argument.to_bytes(8, "big"))[0]
        if argument == 20:
            return False
        if argument == 21:
            return True
        if argument in (22, 23):
            return None
        raise ProtocolError(f"unsupported simple value {argument} at offset {start}")

    def _tag(self, tag: int, depth: int) -> Any:
        if tag == 55799:
            return self.item(depth + 1)
        if tag == 40:
            return self._multidim(depth)
        if tag == 1040:
            raise ProtocolError("column-major multi-dimensional array (tag 1040) is not supported")
        if 64 <= tag <= 87:
            return self._typed(tag, depth)
        if tag == 56500:
            raise ProtocolError("compressed byte string (tag 56500) outside a typed array")
        content = self.value(depth + 1)
        if tag == 0:
            return _parse_datetime(content)
        if tag == 1:
            if not isinstance(content, (int, float)) or isinstance(content, bool):
                raise ProtocolError(f"epoch date-time (tag 1) holds {describe(content)}")
            try:
                return datetime.fromtimestamp(content, tz=timezone.utc)
            except (OverflowError, OSError, ValueError) as error:
                raise ProtocolError(f"epoch date-time {content} out of range") from error
        return cbor2.CBORTag(tag, content)

    def _typed(self, tag: int, depth: int) -> _Typed:
        dtype = TAG_TO_DTYPE.get(tag)
        if dtype is None:
            raise ProtocolError(f"typed-array tag {tag} is not supported")
        start = self.position
        major, argument, indefinite = self.head()
        if major == 2 and not indefinite:
            return _Typed(dtype, Compression.NONE, self.take(argument, "a typed array"))
        if major == 6 and argument == 56500:
            return self._compressed(dtype, depth)
        self.position = start
        content = self.value(depth + 1)
        raise ProtocolError(f"typed-array tag {tag} holds {describe(content)}, not a byte string")

    def _compressed(self, dtype: np.dtype, depth: int) -> _Typed:
        content = self.value(depth + 1)
        if (
            not isinstance(content, list)
            or len(content) != 3
            or not isinstance(content[0], str)
            or not isinstance(content[1], int)
            or not isinstance(content[2], bytes)
        ):
            raise ProtocolError(
                "tag 56500 must hold [algorithm (text), modifier (uint), data (bytes)]"
            )
        algorithm, modifier, payload = content
        try:
            compression = Compression(algorithm)
        except ValueError:
            raise ProtocolError(
                f"unsupported compression '{algorithm}' (known: bslz4, lz4)"
            ) from None
        if compression is Compression.NONE:
            raise ProtocolError("tag 56500 algorithm 'none' is not a compression")
        if compression is Compression.BSLZ4 and modifier != dtype.itemsize:
            raise ProtocolError(
                f"bslz4 element size {modifier} disagrees with the typed array's "
                f"{dtype.itemsize}-byte elements"
            )
        return _Typed(dtype, compression, payload)

    def _multidim(self, depth: int) -> PixelArray:
        major, count, indefinite = self.head()
        if major != 4 or indefinite or count != 2:
            raise ProtocolError("tag 40 must hold a 2-element array [dims, typed array]")
        dims = self.value(depth + 1)
        if (
            not isinstance(dims, list)
            or not 1 <= len(dims) <= MAX_DIMENSIONS
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims)
        ):
            raise ProtocolError(f"tag 40 dims must be 1..{MAX_DIMENSIONS} unsigned integers")
        typed = self.item(depth + 1)
        if not isinstance(typed, _Typed):
            raise ProtocolError(f"tag 40 holds {describe(typed)} instead of a typed array")
        array = PixelArray(tuple(dims), typed.dtype, typed.compression, typed.payload)
        array.validate()
        return array


def _bare_typed(typed: _Typed) -> np.ndarray | PixelArray:
    """A typed array outside tag 40: a 1-D numpy array, or a 1-D PixelArray if compressed."""
    size = typed.dtype.itemsize
    if typed.compression is Compression.NONE:
        if len(typed.payload) % size:
            raise ProtocolError(
                f"typed array of {len(typed.payload)} bytes is not a whole number of "
                f"{size}-byte elements"
            )
        return np.frombuffer(typed.payload, dtype=typed.dtype)
    if len(typed.payload) < 8:
        raise ProtocolError("compressed typed array shorter than its header")
    total = int.from_bytes(typed.payload[:8], "big")
    array = PixelArray((total // size,), typed.dtype, typed.compression, typed.payload)
    array.validate()
    return array


def _parse_datetime(content: Any) -> datetime:
    if not isinstance(content, str):
        raise ProtocolError(f"date-time (tag 0) holds {describe(content)}, not text")
    text = content[:-1] + "+00:00" if content.endswith(("Z", "z")) else content
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ProtocolError(f"date-time '{content[:40]}' is not RFC 3339") from None
    if value.tzinfo is None:
        raise ProtocolError(f"date-time '{content[:40]}' has no time-zone offset")
    return value


def _rationals(message_type: str, fields: dict[str, Any]) -> None:
    """Turn ``[numerator, denominator]`` of Rational (or time) fields into ``Rational``."""
    table = SCHEMA.get(message_type, {})
    for name, value in fields.items():
        spec = table.get(name)
        if (
            spec is not None
            and spec.wire_type in (WireType.RATIONAL, WireType.TIME)
            and isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            fields[name] = Rational(value[0], value[1])


def _message_head(reader: _Reader) -> tuple[str, int, bool, int]:
    """Read tags 55799, the map head and the ``type`` entry: (type, entries, indefinite,
    number of 55799 tags)."""
    major, count, indefinite = reader.head()
    prefixes = 0
    while major == 6 and count == 55799:
        prefixes += 1
        major, count, indefinite = reader.head()
    if major != 5:
        raise ProtocolError(f"message is not a CBOR map (major type {major} at the top level)")
    if not indefinite:
        reader.need(2 * count, f"a map of {count} pairs")
        reader.charge(_MAP_BYTES + _MAP_PAIR_BYTES * count)
    if not indefinite and count == 0:
        raise ProtocolError("message is an empty map; the first key must be 'type'")
    key = reader.item(1)
    if key != "type":
        raise ProtocolError(f"first key of the message must be 'type', got {key!r}")
    message_type = reader.value(1)
    if not isinstance(message_type, str):
        raise ProtocolError(f"message 'type' must be a text string, got {describe(message_type)}")
    return message_type, count, indefinite, prefixes


def _entry_key(reader: _Reader, message_type: str, indefinite: bool) -> str | None:
    """The next entry's key; None at the break code of an indefinite-length map."""
    key = reader.item(1)
    if key is _BREAK and indefinite:
        return None
    if not isinstance(key, str):
        raise ProtocolError(f"{message_type} message: key {key!r} is not a text string")
    return key


def decode_at(
    buffer: bytes | bytearray | memoryview,
    position: int = 0,
    *,
    strict: bool = True,
    max_decoded_bytes: int | None = None,
) -> tuple[Message, int]:
    """Decode the message starting at ``position``; returns it and the offset just after.

    ``max_decoded_bytes`` lowers the budget of lists and maps below its default
    (``DECODE_BYTES_PER_MESSAGE_BYTE`` × size + ``DECODE_BUDGET_FLOOR_BYTES``).
    """
    reader = _Reader(buffer, position)
    if max_decoded_bytes is not None and max_decoded_bytes < reader.budget_bytes:
        reader = _Reader(buffer, position, max_decoded_bytes)
    message_type, count, indefinite, _prefixes = _message_head(reader)
    fields: dict[str, Any] = {}
    index = 1
    while indefinite or index < count:
        key = _entry_key(reader, message_type, indefinite)
        if key is None:
            break
        try:
            fields[key] = reader.value(1)
        except ProtocolError as error:
            raise ProtocolError(f"{message_type} message: field '{key}': {error}") from None
        index += 1
    _rationals(message_type, fields)
    message = Message(message_type, fields)
    if strict:
        check_message(message)
    return message, reader.position


def decode(
    buffer: bytes | bytearray | memoryview,
    *,
    strict: bool = True,
    max_decoded_bytes: int | None = None,
) -> Message:
    """Decode one message; pixels stay compressed (``PixelArray.payload`` = wire bytes).

    Args:
        buffer: exactly one encoded message (trailing bytes are an error).
        strict: also check required fields and the types of known fields.
        max_decoded_bytes: a lower cap on the lists and maps the message may decode into.

    Raises:
        ProtocolError: malformed CBOR, wrong tags or sizes, a message that would decode
            into more than its budget, or (strict) schema violations.
    """
    message, end = decode_at(buffer, 0, strict=strict, max_decoded_bytes=max_decoded_bytes)
    size = buffer.nbytes if isinstance(buffer, memoryview) else len(buffer)
    if end != size:
        raise ProtocolError(
            f"{message.type} message: {size - end} trailing bytes after the message"
        )
    return message


@dataclass(frozen=True, slots=True)
class MessageLayout:
    """Where the entries of one encoded message lie, found without decoding their values.

    Offsets are into the buffer given to :func:`scan_message`. ``entries`` holds every entry
    but ``type``, in wire order, as (key, offset of the key, offset after the value);
    ``values`` the decoded values of the keys that were asked for. ``canonical_head``: the
    message is tag 55799 + a definite-length map whose first key is ``type``, the head that
    ``encode`` writes and Stream V2 asks for.
    """

    type: str
    start: int
    end: int
    canonical_head: bool
    entries: tuple[tuple[str, int, int], ...]
    values: dict[str, Any]


def scan_message(
    buffer: bytes | bytearray | memoryview,
    position: int = 0,
    *,
    decode_keys: Collection[str] = (),
) -> MessageLayout:
    """Find the entries of the message at ``position``; decode only ``decode_keys``.

    Every length is checked as in :func:`decode` (values that are skipped are walked, not
    built: a pixel array costs a few head reads whatever its size). The decoded values are
    type-checked against the schema and rationals come back as ``Rational``.

    Raises:
        ProtocolError: malformed CBOR, no ``type`` first, or a decoded value of a wrong type.
    """
    reader = _Reader(buffer, position)
    message_type, count, indefinite, prefixes = _message_head(reader)
    as_array: np.ndarray | None = None
    entries: list[tuple[str, int, int]] = []
    values: dict[str, Any] = {}
    index = 1
    while indefinite or index < count:
        key_start = reader.position
        key = _entry_key(reader, message_type, indefinite)
        if key is None:
            break
        try:
            reader.need(1, "a value")
            if key in decode_keys:
                values[key] = reader.value(1)
            elif 0x80 <= reader.data[reader.position] < 0x9C:  # an array: spots, reflections
                if as_array is None:
                    as_array = np.frombuffer(reader.data, dtype=np.uint8)
                end, _ = scan_plain_array(
                    as_array, reader.position, MAX_DEPTH - 1, _CONTAINER_BYTES
                )
                if end < 0 and not _skip(reader, 1):
                    raise ProtocolError("unexpected break code")
                reader.position = max(end, reader.position)
            elif not _skip(reader, 1):
                raise ProtocolError("unexpected break code")
        except ProtocolError as error:
            raise ProtocolError(f"{message_type} message: field '{key}': {error}") from None
        entries.append((key, key_start, reader.position))
        index += 1
    _rationals(message_type, values)
    check_message(Message(message_type, values), required=False)
    return MessageLayout(
        type=message_type,
        start=position,
        end=reader.position,
        canonical_head=prefixes == 1 and not indefinite,
        entries=tuple(entries),
        values=values,
    )


def message_type(buffer: bytes | bytearray | memoryview) -> str | None:
    """The ``type`` of an encoded message, read from its first entry without decoding the
    rest (None if the bytes do not start like a message)."""
    reader = _Reader(buffer)
    try:
        major, _count, _indefinite = reader.head()
        while major == 6 and _count == 55799:
            major, _count, _indefinite = reader.head()
        if major != 5 or reader.item(1) != "type":
            return None
        value = reader.item(1)
    except ProtocolError:
        return None
    return value if isinstance(value, str) else None


def item_end(buffer: bytes | bytearray | memoryview, position: int = 0) -> int:
    """Offset just after the CBOR item at ``position`` (used to split recordings)."""
    reader = _Reader(buffer, position)
    _skip(reader, 0)
    return reader.position


def _skip(reader: _Reader, depth: int) -> bool:
    """Skip one item without building it; returns False for a break code."""
    if depth > MAX_DEPTH:
        raise ProtocolError(f"nesting deeper than {MAX_DEPTH} levels")
    major, argument, indefinite = reader.head()
    if major in (2, 3):
        if indefinite:
            while _skip(reader, depth + 1):
                pass
        else:
            reader.need(argument, "a string")
            reader.position += argument
    elif major in (4, 5):
        per_entry = 2 if major == 5 else 1
        if indefinite:
            while _skip(reader, depth + 1):
                for _ in range(per_entry - 1):
                    _skip(reader, depth + 1)
        else:
            reader.need(argument * per_entry, "a container")
            for _ in range(argument * per_entry):
                if not _skip(reader, depth + 1):
                    raise ProtocolError("unexpected break code")
    elif major == 6:
        return _skip(reader, depth + 1)
    elif major == 7 and indefinite:
        return False
    return True
