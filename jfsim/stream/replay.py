"""Replay a recording from its file: every recorded image, its own pixels, in order.

A ``.cbors`` recording already holds every image message encoded, so replay is I/O, not
encoding. The file is memory-mapped and indexed once (``jfsim.protocol.scan_message``: where
each message and each of its entries lies; only the small per-image fields are decoded).
The index holds offsets, never pixels, so a recording far larger than memory streams at the
rate of the page cache; the kernel is asked to read ahead (``madvise``) a window in front of
the image being sent.

Image ``k`` goes out in one of two ways:

* **as recorded**: when its per-image fields (ids, timing) are exactly the recorded ones, the
  recorded message itself is sent zero-copy from the mapping (the usual case: a recording of
  ids 0…n−1 replayed once);
* **assembled**: otherwise (a repeat past the recording's end, renumbered ids, another
  ``frame_time``) the new per-image entries are encoded and the recorded pixel-tied entries
  and ``data`` are copied behind them into a reusable send buffer, as the pool does.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from jfsim.protocol import (
    Message,
    MessageLayout,
    ProtocolError,
    decode,
    decode_at,
    scan_message,
)
from jfsim.recording import RecordingError
from jfsim.stream.errors import StreamOptionError
from jfsim.stream.frames import (
    ImageEntries,
    PoolFrame,
    SendBuffer,
    SendBuffers,
    cbor_head,
    encoded_entries,
    image_header,
)
from jfsim.stream.sources import PER_IMAGE_FIELDS, PoolProgress, RecordedSeries

__all__ = ["READ_AHEAD_BYTES", "RecordedFrames", "RecordingSource", "recording_source"]

#: How far ahead of the image being sent the kernel is asked to read the recording.
READ_AHEAD_BYTES = 64 << 20
#: Messages between two progress reports while a recording is indexed.
_PROGRESS_EVERY = 256
_MAJOR_MAP = 5


@dataclass(frozen=True, slots=True)
class RecordedImage:
    """Where one image message lies in the recording (byte offsets into the file).

    ``pixel_spans``: the entries tied to the pixels (all but the per-image fields and
    ``data``), merged where adjacent; ``data_span``: the ``data`` entry; ``recorded``: the
    decoded per-image fields; ``as_recorded``: the message may be sent as it is (tag 55799,
    a definite-length map, ``type`` first).
    """

    message: tuple[int, int]
    pixel_spans: tuple[tuple[int, int], ...]
    n_pixel_entries: int
    data_span: tuple[int, int]
    recorded: dict[str, Any]
    as_recorded: bool

    @property
    def tail_bytes(self) -> int:
        spans = (*self.pixel_spans, self.data_span)
        return sum(end - start for start, end in spans)


def _merged(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def _index_image(layout: MessageLayout) -> RecordedImage:
    pixel_spans: list[tuple[int, int]] = []
    data_span: tuple[int, int] | None = None
    for key, start, end in layout.entries:
        if key == "data":
            data_span = (start, end)
        elif key not in PER_IMAGE_FIELDS:
            pixel_spans.append((start, end))
    if data_span is None:
        raise ProtocolError("image message: required field 'data' is missing")
    return RecordedImage(
        message=(layout.start, layout.end),
        pixel_spans=_merged(pixel_spans),
        n_pixel_entries=len(pixel_spans),
        data_span=data_span,
        recorded=layout.values,
        as_recorded=layout.canonical_head,
    )


class RecordedFrames:
    """The recorded images of a mapped recording, as the frames of a stream (``Frames``)."""

    def __init__(self, mapped: mmap.mmap, images: Sequence[RecordedImage], path: Path) -> None:
        self._mapped = mapped
        self._images = images
        self.path = path

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> PoolFrame:
        """Frame ``index`` decoded (pixels stay compressed): for tests and verification."""
        message = self.message(index)
        pixel_fields = {
            key: value
            for key, value in message.fields.items()
            if key not in PER_IMAGE_FIELDS and key != "data"
        }
        return PoolFrame(pixels=message["data"]["default"], pixel_fields=pixel_fields)

    def message(self, index: int) -> Message:
        """Recorded image ``index`` as a message, decoded from the file."""
        start, end = self._images[index].message
        return decode(self._mapped[start:end], strict=False)

    def assembler(self, *, messages_in_flight: int) -> ReplayAssembler:
        return ReplayAssembler(self, messages_in_flight=messages_in_flight)


class ReplayAssembler:
    """Wire bytes of recorded images: the recorded message, or one assembled around it."""

    def __init__(self, frames: RecordedFrames, *, messages_in_flight: int = 0) -> None:
        if not len(frames):
            raise ValueError("the recording has no image to replay")
        self.frames = frames
        self._images = frames._images
        self._mapped = frames._mapped
        self._view = memoryview(frames._mapped)
        tail_size = max(image.tail_bytes for image in self._images)
        self._buffers = SendBuffers(messages_in_flight + 1, tail_size=tail_size)
        self._pending: SendBuffer | None = None
        self._image_entries = ImageEntries()
        self._last: tuple[dict[str, Any], int] = ({}, 0)
        self._advised: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return len(self._images)

    @property
    def n_buffers(self) -> int:
        return self._buffers.n_buffers

    def verify(self, image_fields: dict[str, Any], slot: int) -> None:
        """Check once that what ``assemble`` sends decodes to the recorded image with these
        per-image fields (guards the index against drift from the codec)."""
        assembled = decode(bytes(self.assemble(image_fields, slot)), strict=False)
        self.sent(None)
        recorded = self.frames.message(slot)
        expected = {
            key: value for key, value in recorded.fields.items() if key not in PER_IMAGE_FIELDS
        }
        if assembled.fields != {**image_fields, **expected}:
            raise AssertionError(f"{self.frames.path}: replayed image {slot} differs from the file")

    def assemble(self, image_fields: dict[str, Any], slot: int) -> memoryview:
        """The wire bytes of one image; call ``sent`` with its tracker before the next one."""
        image = self._images[slot]
        self._read_ahead(image)
        self._last = (image_fields, slot)
        if image.as_recorded and image_fields == image.recorded:
            start, end = image.message
            return self._view[start:end]
        entries = self._image_entries(image_fields)
        header = image_header(entries, 1 + len(image_fields) + image.n_pixel_entries + 1)
        buffer = self._buffers.acquire(len(header))
        target = buffer.view  # one memcpy (slices of the array would copy twice)
        position = buffer.reserve
        for start, end in (*image.pixel_spans, image.data_span):
            target[position : position + end - start] = self._view[start:end]
            position += end - start
        self._pending = buffer
        return buffer.fill(header, position)

    def _read_ahead(self, image: RecordedImage) -> None:
        """Ask the kernel to page in the next ``READ_AHEAD_BYTES`` once half the window is
        used (and again after a jump back, when a repetition starts over)."""
        start, end = image.message
        advised_start, advised_end = self._advised
        ahead_enough = (
            advised_end == len(self._mapped) or end + READ_AHEAD_BYTES // 2 <= advised_end
        )
        if advised_start <= start and ahead_enough:
            return
        first = start - start % mmap.PAGESIZE
        last = min(first + READ_AHEAD_BYTES, len(self._mapped))
        if hasattr(self._mapped, "madvise") and hasattr(mmap, "MADV_WILLNEED"):
            self._mapped.madvise(mmap.MADV_WILLNEED, first, last - first)
        self._advised = (first, last)

    def last_image_map(self) -> bytes:
        """The last image's fields but ``data`` as one CBOR map (metadata messages)."""
        image_fields, slot = self._last
        image = self._images[slot]
        pixel_entries = b"".join(self._view[start:end] for start, end in image.pixel_spans)
        head = cbor_head(_MAJOR_MAP, len(image_fields) + image.n_pixel_entries)
        return head + encoded_entries("image", image_fields) + pixel_entries

    def sent(self, tracker: zmq.MessageTracker | None) -> None:
        """Tell which tracker guards the last assembled buffer (None: reuse it now)."""
        if self._pending is not None:
            self._buffers.release(self._pending, tracker)
            self._pending = None


class RecordingSource(RecordedSeries):
    """A ``FrameSource`` replaying a ``.cbors`` recording (start, images, end) from its file.

    Opening maps and indexes the file: messages are framed and their per-image fields
    checked; start, calibration and end are decoded. See ``RecordedSeries`` for the fields
    that are rewritten. ``build_pool(K)`` with K smaller than the recording keeps only the
    first K recorded images, reused in turn.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keep_dates: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """``on_progress(bytes indexed, file size)`` is called while indexing (long files)."""
        self.path = Path(path)
        description = f"recording {self.path}"
        self._mapped = _map(self.path)
        view = memoryview(self._mapped)
        others: list[Message] = []
        self._recorded: list[RecordedImage] = []
        position = index = 0
        try:
            while position < len(view):
                problem = None
                try:
                    layout = scan_message(view, position, decode_keys=PER_IMAGE_FIELDS)
                    if layout.type == "image":
                        self._recorded.append(_index_image(layout))
                    elif layout.type in ("start", "calibration", "end"):
                        others.append(decode_at(view, position)[0])
                except ProtocolError as error:
                    problem = str(error)  # raised outside, so no traceback pins the mapping
                if problem is not None:
                    raise RecordingError(
                        f"{self.path}: message #{index} at byte {position}: {problem}"
                    )
                position = layout.end
                index += 1
                if on_progress is not None and (
                    index % _PROGRESS_EVERY == 0 or position == len(view)
                ):
                    on_progress(position, len(view))
        finally:
            view.release()
        super().__init__(description, others, len(self._recorded), keep_dates=keep_dates)

    def build_pool(self, pool_size: int, on_progress: PoolProgress | None) -> RecordedFrames:
        """The first ``pool_size`` recorded images (indexed on opening: nothing to wait for)."""
        images = self._recorded[:pool_size]
        self._use_frames(len(images))
        return RecordedFrames(self._mapped, images, self.path)

    def _recorded_fields(self, frame: int) -> dict[str, Any]:
        return self._recorded[frame].recorded


def _map(path: Path) -> mmap.mmap:
    if path.is_dir():
        raise StreamOptionError(
            f"recording {path}: is a directory; give the PREFIX.cbors file jfsim simulate wrote"
        )
    if not path.is_file():
        raise StreamOptionError(
            f"recording {path}: no such file; make one with jfsim simulate -o PREFIX"
        )
    try:
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                raise StreamOptionError(f"recording {path}: the file is empty")
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as error:
        raise RecordingError(f"{path}: cannot read recording: {error.strerror or error}") from None


def recording_source(
    path: str | os.PathLike[str],
    *,
    keep_dates: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> RecordingSource:
    """A source replaying the ``.cbors`` recording at ``path`` from its file."""
    return RecordingSource(path, keep_dates=keep_dates, on_progress=on_progress)
