"""The broker's image buffer: the latest start message and the last N images sent.

jfjoch_broker keeps recent image messages in memory for ``/image_buffer/image.cbor``. Copying
every 1-4 MB message at kHz rates would cost as much as sending it, so jfsim keeps only the
ids: an image message is rebuilt on request from the frame pool and the image's own fields,
exactly as the streamer assembled it (``ImageAssembler.message_for`` builds the same
message), so the bytes served equal the bytes sent. ``record`` is on the sending path: one
lock and one append.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from jfjoch_client.models import ImageBufferStatus

from jfsim.protocol import Message, encode
from jfsim.serve.errors import NotFound
from jfsim.stream import PoolFrame
from jfsim.stream.frames import Frames

__all__ = ["LATEST", "LATEST_INDEXED", "ImageBuffer"]

#: Special ids of ``/image_buffer/image.cbor?id=``: the newest image, the newest indexed one.
LATEST = -1
LATEST_INDEXED = -2


class ImageBuffer:
    """Start message and the ids of the last ``total_slots`` images of the current series."""

    def __init__(self, total_slots: int) -> None:
        if total_slots < 1:
            raise ValueError(f"image buffer: needs at least 1 slot, got {total_slots}")
        self.total_slots = total_slots
        self._lock = threading.Lock()
        self._ids: deque[int] = deque(maxlen=total_slots)
        self._counter = 0
        self._start: bytes | None = None
        self._pool: Sequence[PoolFrame] = ()
        self._image_fields: Callable[[int], dict[str, Any]] | None = None

    def begin(
        self,
        start_message: Message,
        pool: Frames,
        image_fields: Callable[[int], dict[str, Any]],
    ) -> None:
        """A new series: forget the old images, keep how to rebuild the new ones."""
        start = encode(start_message)
        with self._lock:
            self._ids.clear()
            self._counter = 0
            self._start = start
            self._pool = tuple(pool[i] for i in range(len(pool)))
            self._image_fields = image_fields

    def record(self, image_id: int) -> None:
        """Image ``image_id`` was sent (called by the streamer for every image)."""
        with self._lock:
            self._ids.append(image_id)
            self._counter += 1

    def clear(self) -> None:
        """Forget the series (``/image_buffer/clear``, ``/initialize``)."""
        with self._lock:
            self._ids.clear()
            self._counter = 0
            self._start = None
            self._pool = ()
            self._image_fields = None

    def status(self) -> ImageBufferStatus:
        with self._lock:
            ids = list(self._ids)
            counter = self._counter
        return ImageBufferStatus(
            min_image_number=min(ids, default=0),
            max_image_number=max(ids, default=0),
            image_numbers=ids,
            total_slots=self.total_slots,
            available_slots=self.total_slots - len(ids),
            in_preparation_slots=0,
            in_sending_slots=0,
            current_counter=counter,
        )

    def start_cbor(self) -> bytes:
        """The start message of the series in the buffer, as sent."""
        with self._lock:
            start = self._start
        if start is None:
            raise NotFound("image buffer: no start message; the buffer is empty (POST /start)")
        return start

    def _resolve(self, image_id: int) -> tuple[int, PoolFrame, Callable[[int], dict[str, Any]]]:
        with self._lock:
            ids = list(self._ids)
            pool, image_fields = self._pool, self._image_fields
        if not ids or image_fields is None:
            raise NotFound("image buffer: empty; no image was sent since the last clear")
        if image_id == LATEST:
            chosen = ids[-1]
        elif image_id == LATEST_INDEXED:
            indexed = [i for i in ids if pool[i % len(pool)].pixel_fields.get("indexing_result")]
            if not indexed:
                raise NotFound("image buffer: no indexed image in the buffer")
            chosen = indexed[-1]
        elif image_id in ids:
            chosen = image_id
        else:
            raise NotFound(
                f"image buffer: image {image_id} is not in the buffer (it holds "
                f"{len(ids)} images, ids {min(ids)}..{max(ids)}; -1 = latest)"
            )
        return chosen, pool[chosen % len(pool)], image_fields

    def image_message(self, image_id: int) -> Message:
        """Image ``image_id`` (or ``LATEST`` / ``LATEST_INDEXED``) as the message sent."""
        chosen, frame, image_fields = self._resolve(image_id)
        return Message(
            "image",
            {**image_fields(chosen), **frame.pixel_fields, "data": {"default": frame.pixels}},
        )

    def image_cbor(self, image_id: int) -> bytes:
        return encode(self.image_message(image_id))

    def image_pixels(self, image_id: int) -> np.ndarray:
        """The decompressed pixels ``[slow, fast]`` of an image in the buffer."""
        _, frame, _ = self._resolve(image_id)
        return frame.pixels.to_numpy()
