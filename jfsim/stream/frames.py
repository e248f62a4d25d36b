"""Wire bytes of image messages without re-encoding pixels: a pool of K frames, reused.

Every image message is a CBOR map. Its entries fall in three groups: the per-image fields
(image id, timing; a few hundred bytes, encoded for every image), the fields that belong to
the pixels (analysis results, the same whenever a pool frame is reused; encoded once) and
``data`` (the compressed pixels, encoded once and placed last). A slot buffer holds the last
two groups at its end; each image writes its CBOR prefix, map head and per-image entries
right-aligned just in front of them and the whole is sent zero-copy. The result is exactly
``jfsim.protocol.encode`` of the message with its keys in that order (``message_for`` builds
that message; the tests compare both). A buffer is rewritten only once ZeroMQ has released it
(``zmq.MessageTracker``), otherwise another buffer for the same frame is used.

A source hands the streamer its distinct frames as ``Frames``: a ``FramePool`` held in
memory (this module), or a recording replayed from its file (``jfsim.stream.replay``). Each
makes the assembler that puts its frames on the wire.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import zmq

from jfsim.protocol import Message, PixelArray, Rational, encode
from jfsim.protocol.validate import coerce_floats
from jfsim.workers import Worker

__all__ = [
    "Assembler",
    "FramePool",
    "Frames",
    "ImageAssembler",
    "ImageEntries",
    "PoolFrame",
    "SendBuffer",
    "SendBuffers",
    "cbor_head",
    "encoded_entries",
    "image_header",
]

SELF_DESCRIBED_PREFIX = b"\xd9\xd9\xf7"
#: A message type without schema, so that ``encode`` checks no required field.
_ENTRIES_ONLY_TYPE = "x-entries"
_MAJOR_MAP = 5
#: Room left in front of the pool part of a buffer for the per-image part.
HEADER_RESERVE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class PoolFrame:
    """One distinct image of the pool: its compressed pixels and the fields tied to them."""

    pixels: PixelArray
    pixel_fields: dict[str, Any] = field(default_factory=dict)


def cbor_head(major: int, argument: int) -> bytes:
    """The shortest CBOR head of a data item (RFC 8949 §3)."""
    if argument < 24:
        return bytes([major << 5 | argument])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * width):
            return bytes([major << 5 | info]) + argument.to_bytes(width, "big")
    raise ValueError(f"CBOR argument {argument} does not fit in 64 bits")


def _head_length(first_byte: int) -> int:
    info = first_byte & 0x1F
    return 1 if info < 24 else 1 + (1, 2, 4, 8)[info - 24]


def encoded_entries(message_type: str, fields: dict[str, Any]) -> bytes:
    """The key/value pairs of ``fields`` as ``encode`` writes them in a ``message_type`` message.

    Floats are coerced as in a message of that type, but required fields are not asked for:
    the entries are encoded inside a message of a type the schema does not know.
    """
    coerced = coerce_floats(Message(message_type, fields))
    whole = encode(Message(_ENTRIES_ONLY_TYPE, coerced))
    type_entry = _type_entry(_ENTRIES_ONLY_TYPE)
    map_start = len(SELF_DESCRIBED_PREFIX)
    body = map_start + _head_length(whole[map_start])
    if whole[:map_start] != SELF_DESCRIBED_PREFIX or whole[body : body + len(type_entry)] != (
        type_entry
    ):
        raise AssertionError("jfsim.protocol.encode no longer starts with 55799 and 'type'")
    return whole[body + len(type_entry) :]


class ImageEntries:
    """Per-image entries of image messages, exactly as ``encoded_entries("image", fields)``
    gives them, in a few µs instead of the generic encoder's ~100 µs.

    Every image carries the same few keys (image id, timing, series id), and the generic
    path validates and coerces a whole message for them each time: on a loaded 2-core
    machine that was the largest part of the sender's work between two sends. Here each
    entry is encoded on its own (a CBOR map's entries are simply concatenated): an int or a
    Rational directly, any other value through ``encoded_entries`` once and then from a
    cache. The direct path is taken for a key only after its first value was checked against
    ``encoded_entries`` (a Float field sent as an int must travel as a float, which only the
    generic path knows).
    """

    MAX_CACHED = 4096

    def __init__(self) -> None:
        #: (key, int or Rational) -> the key's encoding, or None where the direct path differs
        self._direct: dict[tuple[str, type], bytes | None] = {}
        self._cached: dict[tuple[str, type, Any], bytes] = {}

    def __call__(self, fields: dict[str, Any]) -> bytes:
        parts = []
        for key, value in fields.items():
            kind = type(value)
            if kind is int or kind is Rational:
                head = self._direct.get((key, kind), b"")
                if head == b"":
                    head = self._check_direct(key, value)
                if head is not None:
                    parts.append(head + _direct_value(value))
                    continue
            parts.append(self._entry(key, kind, value))
        return b"".join(parts)

    def _check_direct(self, key: str, value: int | Rational) -> bytes | None:
        encoded_key = key.encode()
        key_head = cbor_head(3, len(encoded_key)) + encoded_key
        same = key_head + _direct_value(value) == encoded_entries("image", {key: value})
        head = key_head if same else None
        self._direct[(key, type(value))] = head
        return head

    def _entry(self, key: str, kind: type, value: Any) -> bytes:
        try:
            entry = self._cached.get((key, kind, value))
        except TypeError:  # an unhashable value (a list, a map): encoded every time
            return encoded_entries("image", {key: value})
        if entry is None:
            entry = encoded_entries("image", {key: value})
            if len(self._cached) >= self.MAX_CACHED:
                self._cached.clear()
            self._cached[(key, kind, value)] = entry
        return entry


def _direct_value(value: int | Rational) -> bytes:
    """An int, or a Rational as ``[numerator, denominator]``, as ``encode`` writes it."""
    if isinstance(value, Rational):
        return b"\x82" + _direct_value(int(value.numerator)) + _direct_value(int(value.denominator))
    return cbor_head(0, value) if value >= 0 else cbor_head(1, -1 - value)


def _type_entry(message_type: str) -> bytes:
    key = b"type"
    value = message_type.encode()
    return cbor_head(3, len(key)) + key + cbor_head(3, len(value)) + value


_IMAGE_TYPE_ENTRY = _type_entry("image")


#: Spare buffers a kind keeps ready once it had to grow, made by the spare-buffer thread.
SPARE_BUFFERS = 2


class SendBuffers:
    """Send buffers [free room | tail] of one kind, reused once ZeroMQ has released them.

    ``tail`` is copied into every new buffer (a pool frame's pre-encoded entries); with
    ``tail_size`` alone the room is left for the caller to fill before each send. Buffers are
    kept oldest-sent first; ZeroMQ releases messages in the order it sends them, so only the
    oldest needs checking: if it is still in flight, another buffer is used.

    Buffers run out while a receiver falls behind, just when the sender must keep its
    schedule; making one (a JF4M frame: 1 MB whose pages the kernel must first provide) took
    0.3-1 ms of the sending thread. So once a kind has had to grow, a background thread keeps
    ``SPARE_BUFFERS`` made in advance (numpy copies without holding the GIL), and a new
    buffer is made on the spot only when no spare is ready.
    """

    def __init__(self, n_buffers: int, *, tail: bytes = b"", tail_size: int = 0) -> None:
        self.tail = tail
        self.tail_size = max(tail_size, len(tail))
        self._in_flight: deque[tuple[SendBuffer, zmq.MessageTracker]] = deque()
        self.n_buffers = 0  # made and handed out (spares not yet used are not counted)
        self._idle = [self._new_buffer(HEADER_RESERVE_BYTES) for _ in range(n_buffers)]
        self._spares: list[SendBuffer] = []  # appended by the spare-buffer thread only
        self._spares_requested = 0  # written by the sending thread only
        self._spares_made = 0  # written by the spare-buffer thread only

    def acquire(self, header_length: int) -> SendBuffer:
        if self._in_flight and self._in_flight[0][1].done:
            self._idle.append(self._in_flight.popleft()[0])
        while self._idle:
            buffer = self._idle.pop()
            if buffer.reserve >= header_length:
                return buffer
            self.n_buffers -= 1  # too small for this header: let it go
        reserve = max(HEADER_RESERVE_BYTES, 2 * header_length)
        while self._spares_requested - self._spares_made + len(self._spares) < SPARE_BUFFERS:
            self._spares_requested += 1
            _SPARE_MAKER.put(self)
        while self._spares:
            spare = self._spares.pop()
            if spare.reserve >= header_length:
                self.n_buffers += 1
                return spare
        return self._new_buffer(reserve)

    def _new_buffer(self, reserve: int) -> SendBuffer:
        self.n_buffers += 1
        return make_buffer(reserve, self.tail, self.tail_size)

    def add_spare(self) -> None:
        """Make one spare buffer (on the spare-buffer thread)."""
        self._spares.append(make_buffer(HEADER_RESERVE_BYTES, self.tail, self.tail_size))
        self._spares_made += 1

    def release(self, buffer: SendBuffer, tracker: zmq.MessageTracker | None) -> None:
        if tracker is None or tracker.done:
            self._idle.append(buffer)
        else:
            self._in_flight.append((buffer, tracker))


def make_buffer(reserve: int, tail: bytes, tail_size: int) -> SendBuffer:
    """A buffer of ``reserve`` free bytes then ``tail`` (``tail_size`` bytes in all), its
    pages touched by copies that run without the GIL."""
    data = np.empty(reserve + tail_size, dtype=np.uint8)
    data[reserve : reserve + len(tail)] = np.frombuffer(tail, dtype=np.uint8)
    data[reserve + len(tail) :] = 0
    return SendBuffer(data, reserve, data.data)


def _add_spare(buffers: SendBuffers) -> None:
    try:
        buffers.add_spare()
    except MemoryError:  # the sending thread makes its own buffer, or reports
        buffers._spares_made += 1


#: The process's spare-buffer thread.
_SPARE_MAKER: Worker[SendBuffers] = Worker("jfsim-stream-spare-buffers", _add_spare)


@dataclass(frozen=True, slots=True, eq=False)  # a buffer is itself: compared by identity
class SendBuffer:
    """One buffer: ``reserve`` bytes of room for a header, then the tail."""

    data: np.ndarray
    reserve: int
    view: memoryview  # of ``data``, made once

    def fill(self, header: bytes, end: int | None = None) -> memoryview:
        """Write ``header`` just before the tail; the message runs up to ``end`` (default:
        the buffer's end)."""
        start = self.reserve - len(header)
        self.view[start : self.reserve] = header
        return self.view[start:end]


def image_header(entries: bytes, n_entries: int) -> bytes:
    """Prefix, map head of ``n_entries`` (``type`` included), ``type: image`` and ``entries``."""
    return SELF_DESCRIBED_PREFIX + cbor_head(_MAJOR_MAP, n_entries) + _IMAGE_TYPE_ENTRY + entries


class Assembler(Protocol):
    """Builds the wire bytes of image ``k`` from its per-image fields and one frame."""

    def __len__(self) -> int: ...

    @property
    def n_buffers(self) -> int: ...

    def verify(self, image_fields: dict[str, Any], slot: int) -> None: ...

    def assemble(self, image_fields: dict[str, Any], slot: int) -> memoryview: ...

    def last_image_map(self) -> bytes: ...

    def sent(self, tracker: zmq.MessageTracker | None) -> None: ...


class Frames(Protocol):
    """The distinct frames of a stream, in order; image ``k`` sends frame ``k % len``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> PoolFrame: ...

    def assembler(self, *, messages_in_flight: int) -> Assembler: ...


class FramePool:
    """Frames held in memory (rendered, or taken from a list of messages): ``Frames``."""

    def __init__(self, frames: Iterable[PoolFrame]) -> None:
        self._frames = tuple(frames)

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index: int) -> PoolFrame:
        return self._frames[index]

    def assembler(self, *, messages_in_flight: int) -> ImageAssembler:
        return ImageAssembler(self._frames, messages_in_flight=messages_in_flight)


class ImageAssembler:
    """Builds image ``k``'s wire bytes from its per-image fields and one pool frame."""

    def __init__(self, pool: Sequence[PoolFrame], *, messages_in_flight: int = 0) -> None:
        """``messages_in_flight``: how many sent messages ZeroMQ may hold at once (queues
        plus the one being written); buffers for them are made now, not while streaming."""
        if not pool:
            raise ValueError("the frame pool is empty")
        self.pool = tuple(pool)
        self._slots: list[SendBuffers] = []
        self._pixel_entries: list[bytes] = []
        buffers_per_frame = -(-messages_in_flight // len(self.pool)) + 1
        for frame in self.pool:
            pixel_entries = encoded_entries("image", frame.pixel_fields)
            data_entry = encoded_entries("image", {"data": _data_field(frame)})
            self._pixel_entries.append(pixel_entries)
            self._slots.append(SendBuffers(buffers_per_frame, tail=pixel_entries + data_entry))
        self._pending: tuple[int, SendBuffer] | None = None
        self._last_image: tuple[int, bytes, int] = (0, b"", 0)
        self._image_entries = ImageEntries()

    def __len__(self) -> int:
        return len(self.pool)

    @property
    def n_buffers(self) -> int:
        """Buffers allocated so far over all frames (grows while messages are in flight)."""
        return sum(slot.n_buffers for slot in self._slots)

    def message_for(self, image_fields: dict[str, Any], slot: int) -> Message:
        """The message whose ``encode`` equals what ``assemble`` produces."""
        frame = self.pool[slot]
        return Message("image", {**image_fields, **frame.pixel_fields, "data": _data_field(frame)})

    def verify(self, image_fields: dict[str, Any], slot: int) -> None:
        """Check once that ``assemble`` gives exactly ``encode``'s bytes (guards codec drift)."""
        assembled = bytes(self.assemble(image_fields, slot))
        self.sent(None)
        if assembled != encode(self.message_for(image_fields, slot)):
            raise AssertionError("assembled image bytes differ from jfsim.protocol.encode")

    def assemble(self, image_fields: dict[str, Any], slot: int) -> memoryview:
        """The wire bytes of one image; call ``sent`` with its tracker before the next one."""
        entries = self._image_entries(image_fields)
        n_entries = 1 + len(image_fields) + len(self.pool[slot].pixel_fields) + 1
        self._last_image = (len(image_fields), entries, slot)
        header = image_header(entries, n_entries)
        buffer = self._slots[slot].acquire(len(header))
        self._pending = (slot, buffer)
        return buffer.fill(header)

    def last_image_map(self) -> bytes:
        """The last assembled image's fields but ``data``, as one encoded CBOR map (for
        metadata messages, stream.md §6.5), reusing the pre-encoded pixel fields."""
        n_image_fields, entries, slot = self._last_image
        n_entries = n_image_fields + len(self.pool[slot].pixel_fields)
        return cbor_head(_MAJOR_MAP, n_entries) + entries + self._pixel_entries[slot]

    def sent(self, tracker: zmq.MessageTracker | None) -> None:
        """Tell which tracker guards the last assembled buffer (None: not queued, reuse now)."""
        if self._pending is not None:
            slot, buffer = self._pending
            self._slots[slot].release(buffer, tracker)
            self._pending = None


def _data_field(frame: PoolFrame) -> dict[str, PixelArray]:
    return {"default": frame.pixels}
