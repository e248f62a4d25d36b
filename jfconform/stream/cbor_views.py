"""Decode a message map with cbor2, but leave pixel byte strings where they are.

A JUNGFRAU 4M image message is a megabyte of compressed pixels and a few hundred bytes of
fields. cbor2 would copy the pixels into a new bytes object, and the judge only reads
their framing header. So the top-level map is walked here, entry by entry: each value that
is written the usual way, tag 40 → typed-array tag → bytes or tag 56500 [text, uint, bytes],
alone or in a map of channels, becomes the same ``CBORTag`` tree cbor2 would build, with a
``memoryview`` into the message where the byte string was. Every other value, and anything
unusual (indefinite lengths, other heads), is left to cbor2, so malformed input is judged
exactly as cbor2 sees it.
"""

from __future__ import annotations

import io
from typing import IO, Any, cast

import cbor2
from cbor2 import CBORTag

__all__ = ["CHANNEL_FIELDS", "decode_item"]

#: Fields whose value is a map of channel name → tag-40 array (DECTRIS Stream V2).
CHANNEL_FIELDS = frozenset({"data", "pixel_mask", "flatfield"})
_MAJOR_BYTES = 2
_MAJOR_TEXT = 3
_MAJOR_MAP = 5
_TAG_40 = b"\xd8\x28"
_TAG_56500 = b"\xd9\xdc\xb4"
_ARRAY_OF_2 = 0x82
_ARRAY_OF_3 = 0x83
_ONE_BYTE_TAG = 0xD8
_TYPED_ARRAY_TAGS = range(64, 88)


def _head(data: bytes | memoryview, position: int) -> tuple[int, int, int] | None:
    """(major type, argument, head length) of a definite-length item; None otherwise."""
    if position >= len(data):
        return None
    first = data[position]
    major, info = first >> 5, first & 0x1F
    if info < 24:
        return major, info, 1
    if info > 27:
        return None
    width = 1 << (info - 24)
    if position + 1 + width > len(data):
        return None
    return major, int.from_bytes(data[position + 1 : position + 1 + width], "big"), 1 + width


class _ViewReader(io.RawIOBase):
    """A seekable, read-only file over a buffer, without copying it (``io.BytesIO`` copies
    anything but ``bytes``, e.g. a ZeroMQ frame's memoryview): cbor2 reads a few kilobytes
    at a time from it."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._view[self._position : self._position + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            offset += len(self._view)
        self._position = max(0, offset)
        return self._position

    def tell(self) -> int:
        return self._position


class _Walker:
    """A cbor2 decoder on the message, plus the few item shapes it reads without copying."""

    def __init__(self, data: bytes | memoryview, max_depth: int) -> None:
        self.view = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
        self.data = self.view
        self.stream = _ViewReader(self.view)
        # a RawIOBase reads like the binary file cbor2 wants (typeshed calls that IO[bytes])
        self.decoder = cbor2.CBORDecoder(cast("IO[bytes]", self.stream), max_depth=max_depth)

    def key_at(self, position: int) -> tuple[Any, int]:
        """A map key: short text strings are read here, anything else by cbor2."""
        head = _head(self.data, position)
        if head is not None and head[0] == _MAJOR_TEXT:
            start = position + head[2]
            end = start + head[1]
            if end <= len(self.data):
                return str(self.view[start:end], "utf-8"), end
        return self.decode_at(position)

    def decode_at(self, position: int) -> tuple[Any, int]:
        """cbor2's value of the item at ``position`` and where it ends."""
        self.stream.seek(position)
        value = self.decoder.decode()
        return value, self.stream.tell()

    def byte_view(self, position: int) -> tuple[memoryview, int] | None:
        head = _head(self.data, position)
        if head is None or head[0] != _MAJOR_BYTES:
            return None
        start = position + head[2]
        end = start + head[1]
        if end > len(self.data):
            return None  # cbor2 will say it is truncated
        return self.view[start:end], end

    def array_view(self, position: int) -> tuple[CBORTag, int] | None:
        """tag 40 [dims, typed-array tag (bytes | tag 56500 [text, uint, bytes])]."""
        data = self.data
        if data[position : position + 2] != _TAG_40 or position + 3 > len(data):
            return None
        if data[position + 2] != _ARRAY_OF_2:
            return None
        dims, at = self.decode_at(position + 3)
        if at + 2 > len(data) or data[at] != _ONE_BYTE_TAG:
            return None
        typed_tag = data[at + 1]
        if typed_tag not in _TYPED_ARRAY_TAGS:
            return None
        at += 2
        if data[at : at + 3] == _TAG_56500:
            if at + 4 > len(data) or data[at + 3] != _ARRAY_OF_3:
                return None
            algorithm, at = self.decode_at(at + 4)
            modifier, at = self.decode_at(at)
            payload = self.byte_view(at)
            if payload is None:
                return None
            inner: Any = CBORTag(56500, [algorithm, modifier, payload[0]])
            at = payload[1]
        else:
            raw = self.byte_view(at)
            if raw is None:
                return None
            inner, at = raw
        return CBORTag(40, [dims, CBORTag(typed_tag, inner)]), at

    def channels_view(self, position: int) -> tuple[dict[Any, Any], int] | None:
        head = _head(self.data, position)
        if head is None or head[0] != _MAJOR_MAP:
            return None
        channels: dict[Any, Any] = {}
        at = position + head[2]
        for _ in range(head[1]):
            name, at = self.key_at(at)
            value = self.value_at(at)
            channels[name], at = value
        return channels, at

    def value_at(self, position: int, name: Any = None) -> tuple[Any, int]:
        found: tuple[Any, int] | None
        if name in CHANNEL_FIELDS:
            found = self.channels_view(position)
        else:
            found = self.array_view(position)
        return found if found is not None else self.decode_at(position)


def decode_item(data: bytes | memoryview, position: int, max_depth: int) -> tuple[Any, int]:
    """The item at ``position`` (a message map, usually) and the offset where it ends.

    Raises whatever cbor2 raises for malformed input.
    """
    walker = _Walker(data, max_depth)
    head = _head(walker.view, position)
    if head is None or head[0] != _MAJOR_MAP:
        return walker.decode_at(position)
    fields: dict[Any, Any] = {}
    at = position + head[2]
    for _ in range(head[1]):
        key, at = walker.key_at(at)
        try:
            fields[key], at = walker.value_at(at, key)
        except TypeError:  # an unhashable key: cbor2 knows how to build that map
            return walker.decode_at(position)
    return fields, at
