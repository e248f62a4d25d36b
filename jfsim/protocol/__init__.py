"""Stream V2 / Jungfraujoch CBOR messages: encode and decode, no I/O.

``encode(Message) -> bytes`` and ``decode(bytes) -> Message`` follow
``shared/spec/stream.md``: tag 55799 prefix, ``type`` first, tag 40 multi-dimensional
arrays around RFC 8746 typed arrays, tag 56500 compression (``bslz4`` encode and decode,
``lz4`` decode), DateTime tag 0, rationals. Decoding keeps pixels compressed
(``PixelArray.payload`` is the wire byte string) so writers can store them as they are.
Field names, types and confidence live in ``jfsim.protocol.schema``.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

from jfsim.protocol.decode import (
    MessageLayout,
    decode,
    decode_at,
    item_end,
    message_type,
    scan_message,
)
from jfsim.protocol.encode import encode, encode_parts
from jfsim.protocol.errors import ProtocolError
from jfsim.protocol.message import MESSAGE_TYPES, Message, Rational
from jfsim.protocol.pixels import Compression, PixelArray

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "DEFAULT_CHANNEL",
    "MESSAGE_TYPES",
    "Compression",
    "Message",
    "MessageLayout",
    "PixelArray",
    "ProtocolError",
    "Rational",
    "decode",
    "decode_at",
    "encode",
    "encode_parts",
    "iter_sequence",
    "message_type",
    "scan_message",
    "split_sequence",
]

DEFAULT_CHANNEL = "default"
"""Jungfraujoch's single channel name: ``data["default"]``, ``pixel_mask["default"]``."""


def split_sequence(buffer: ReadableBuffer) -> Generator[memoryview, None, None]:
    """Yield each encoded message of an RFC 8742 CBOR sequence (any buffer: bytes, a
    memoryview, an mmap) as a view, without decoding.

    Raises:
        ProtocolError: an item is malformed or truncated; the text gives its index and offset.
    """
    view = memoryview(buffer).cast("B")
    position = 0
    index = 0
    try:
        while position < len(view):
            problem = None
            try:
                end = item_end(view, position)
            except ProtocolError as error:
                problem = str(error)  # raised below, so no traceback pins the buffer
            if problem is not None:
                raise ProtocolError(f"message #{index} at byte {position}: {problem}")
            yield view[position:end]
            position = end
            index += 1
    finally:
        view.release()


def iter_sequence(
    buffer: bytes | bytearray | memoryview, *, strict: bool = True
) -> Iterator[Message]:
    """Decode every message of an RFC 8742 CBOR sequence (our ``.cbors`` recordings)."""
    for index, frame in enumerate(split_sequence(buffer)):
        try:
            yield decode(frame, strict=strict)
        except ProtocolError as error:
            raise ProtocolError(f"message #{index}: {error}") from None
