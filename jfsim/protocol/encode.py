"""A hand-written CBOR encoder for messages: small header bytes plus the pixel payloads.

Generic encoders copy every byte string into their output; here large byte strings are
kept as separate parts, so ``encode_parts`` costs no pixel copy at all and ``encode`` one
(the final join). Output follows the DECTRIS recordings: tag 55799 prefix, definite-length
map with ``type`` first, shortest integer heads, Float fields as binary64, tag 40 → typed
array tag → tag 56500 for compressed pixels, DateTime as tag 0 with milliseconds.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import cbor2
import numpy as np

from jfsim.protocol.errors import ProtocolError
from jfsim.protocol.message import Message, Rational
from jfsim.protocol.pixels import DTYPE_TO_TAG, Compression, PixelArray, dtype_key
from jfsim.protocol.validate import check_message, coerce_floats, describe

__all__ = ["encode", "encode_parts"]

SELF_DESCRIBE_PREFIX = b"\xd9\xd9\xf7"
TAG_DATETIME = 0
TAG_MULTIDIM = 40
TAG_COMPRESSED = 56500
_INLINE_LIMIT = 4096
"""Byte strings longer than this become their own part instead of being copied."""

_DTYPE_TO_TAG_BIG_ENDIAN = {
    ">u2": 65,
    ">u4": 66,
    ">u8": 67,
    ">i2": 73,
    ">i4": 74,
    ">i8": 75,
    ">f2": 80,
    ">f4": 81,
    ">f8": 82,
}
_FLOAT64 = struct.Struct(">Bd")


_SMALL_HEADS = tuple(
    tuple(
        bytes((major << 5 | argument,)) if argument < 24 else bytes((major << 5 | 24, argument))
        for argument in range(256)
    )
    for major in range(8)
)
_TEXT_CACHE: dict[str, bytes] = {}
_TEXT_CACHE_LIMIT = 4096
"""Encoded keys and short strings; messages repeat the same few dozen names."""


def _head(major: int, argument: int) -> bytes:
    if 0 <= argument < 0x100:
        return _SMALL_HEADS[major][argument]
    if argument < 0:
        raise ProtocolError(f"negative length or argument {argument}")
    if argument < 0x10000:
        return bytes((major << 5 | 25,)) + argument.to_bytes(2, "big")
    if argument < 0x100000000:
        return bytes((major << 5 | 26,)) + argument.to_bytes(4, "big")
    if argument < 0x10000000000000000:
        return bytes((major << 5 | 27,)) + argument.to_bytes(8, "big")
    raise ProtocolError(f"integer {argument} does not fit in 64 bits")


class _Writer:
    """Collects small items in a bytearray and large byte strings as separate parts."""

    def __init__(self) -> None:
        self.parts: list[bytes | bytearray | memoryview] = []
        self.buffer = bytearray()

    def raw(self, data: bytes) -> None:
        self.buffer += data

    def byte_string(self, data: bytes | bytearray | memoryview) -> None:
        length = data.nbytes if isinstance(data, memoryview) else len(data)
        self.buffer += _head(2, length)
        if length > _INLINE_LIMIT:
            self.parts.append(self.buffer)
            self.parts.append(data)
            self.buffer = bytearray()
        else:
            self.buffer += data

    def finish(self) -> list[bytes | bytearray | memoryview]:
        if self.buffer:
            self.parts.append(self.buffer)
        return self.parts


def _typed_array_tag(dtype: np.dtype) -> int:
    if dtype.byteorder == ">":
        tag = _DTYPE_TO_TAG_BIG_ENDIAN.get(dtype.str)
    else:
        tag = DTYPE_TO_TAG.get(dtype_key(dtype))
    if tag is None:
        raise ProtocolError(f"dtype {dtype} has no RFC 8746 typed-array tag")
    return tag


def _pixel_array(writer: _Writer, array: PixelArray) -> None:
    writer.raw(_head(6, TAG_MULTIDIM) + b"\x82" + _head(4, len(array.shape)))
    for dim in array.shape:
        writer.raw(_head(0, dim))
    writer.raw(_head(6, _typed_array_tag(array.dtype)))
    if array.compression is not Compression.NONE:
        modifier = array.elem_size if array.compression is Compression.BSLZ4 else 0
        writer.raw(_head(6, TAG_COMPRESSED) + b"\x83")
        _text(writer, array.compression.value)
        writer.raw(_head(0, modifier))
    writer.byte_string(array.payload)


def _ndarray(writer: _Writer, array: np.ndarray) -> None:
    contiguous = np.ascontiguousarray(array)
    if contiguous.ndim != 1:
        _pixel_array(writer, PixelArray.from_numpy(contiguous, Compression.NONE))
        return
    writer.raw(_head(6, _typed_array_tag(contiguous.dtype)))
    writer.byte_string(contiguous.tobytes())


def _text(writer: _Writer, text: str) -> None:
    encoded = _TEXT_CACHE.get(text)
    if encoded is None:
        data = text.encode("utf-8")
        encoded = _head(3, len(data)) + data
        if len(data) <= 64 and len(_TEXT_CACHE) < _TEXT_CACHE_LIMIT:
            _TEXT_CACHE[text] = encoded
    writer.buffer += encoded


def _datetime(writer: _Writer, value: datetime) -> None:
    if value.tzinfo is None:
        raise ProtocolError(f"date-time {value.isoformat()} has no time zone; use a tz-aware value")
    writer.raw(_head(6, TAG_DATETIME))
    _text(writer, value.isoformat(timespec="milliseconds"))


def _value(writer: _Writer, value: Any) -> None:
    if isinstance(value, str):
        _text(writer, value)
    elif value is None:
        writer.raw(b"\xf6")
    elif value is True:
        writer.raw(b"\xf5")
    elif value is False:
        writer.raw(b"\xf4")
    elif isinstance(value, int):
        writer.raw(_head(0, value) if value >= 0 else _head(1, -1 - value))
    elif isinstance(value, float):
        writer.raw(_FLOAT64.pack(0xFB, value))
    elif isinstance(value, PixelArray):
        _pixel_array(writer, value)
    elif isinstance(value, Mapping):
        writer.raw(_head(5, len(value)))
        for key, item in value.items():
            _value(writer, key)
            _value(writer, item)
    elif isinstance(value, Rational):
        writer.raw(b"\x82")
        _value(writer, int(value.numerator))
        _value(writer, int(value.denominator))
    elif isinstance(value, (list, tuple)):
        writer.raw(_head(4, len(value)))
        for item in value:
            _value(writer, item)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        writer.byte_string(value)
    elif isinstance(value, datetime):
        _datetime(writer, value)
    elif isinstance(value, np.ndarray):
        _ndarray(writer, value)
    elif isinstance(value, np.bool_):
        _value(writer, bool(value))
    elif isinstance(value, np.integer):
        _value(writer, int(value))
    elif isinstance(value, np.floating):
        _value(writer, float(value))
    elif isinstance(value, cbor2.CBORTag):
        writer.raw(_head(6, value.tag))
        _value(writer, value.value)
    else:
        raise ProtocolError(f"cannot encode a value of type {describe(value)}")


def encode_parts(message: Message) -> list[bytes | bytearray | memoryview]:
    """Encode ``message`` as a list of buffers whose concatenation is the CBOR message.

    Pixel payloads are returned as they are (no copy); ``b"".join(parts)`` or a ZeroMQ
    ``send`` of the joined bytes gives the wire message.

    Raises:
        ProtocolError: a required field is missing, a known field has the wrong type, or a
            value has no CBOR encoding. The text names the message type and field.
    """
    if not isinstance(message.type, str) or not message.type:
        raise ProtocolError(f"message type must be a non-empty text string, got {message.type!r}")
    fields = coerce_floats(message)
    check_message(Message(message.type, fields))
    writer = _Writer()
    if "type" in fields:
        raise ProtocolError(f"{message.type} message: 'type' belongs in Message.type, not fields")
    writer.raw(SELF_DESCRIBE_PREFIX + _head(5, len(fields) + 1) + b"\x64type")
    _text(writer, message.type)
    for name, value in fields.items():
        if not isinstance(name, str):
            raise ProtocolError(f"{message.type} message: key {name!r} is not a text string")
        _text(writer, name)
        try:
            _value(writer, value)
        except ProtocolError as error:
            raise ProtocolError(f"{message.type} message: field '{name}': {error}") from None
    return writer.finish()


def encode(message: Message) -> bytes:
    """Encode ``message`` into one CBOR byte string (see ``encode_parts``)."""
    return b"".join(encode_parts(message))
