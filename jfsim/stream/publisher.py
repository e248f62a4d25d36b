"""The preview and metadata PUB sockets: a reduced view of the stream for live displays.

PUB never blocks: a subscriber that is too slow or absent loses messages, as with
jfjoch_broker. Both sockets carry the start and end messages; in between, the preview socket
carries one full image message per period and the metadata socket one ``metadata`` message
per period bundling the per-image fields (no pixels) of every image sent in that period
(stream.md §6.5).
"""

from __future__ import annotations

from typing import Any

import zmq

from jfsim.protocol import Message, encode
from jfsim.stream.frames import cbor_head
from jfsim.stream.pusher import bind_socket

__all__ = ["MetadataPublisher", "PreviewPublisher"]

#: High-water mark of the PUB sockets; periodic traffic never needs more.
PUB_SNDHWM = 100
MAJOR_ARRAY = 4
EMPTY_ARRAY = b"\x80"


class _Publisher:
    def __init__(self, context: zmq.Context, endpoint: str, period_s: float, role: str) -> None:
        self.endpoint = endpoint
        self.period_s = period_s
        self.messages_sent = 0
        self._socket = context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, PUB_SNDHWM)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self.bound_endpoint = bind_socket(self._socket, endpoint, role)
        except BaseException:
            self._socket.close()
            raise
        self._next_due_s = 0.0

    def publish(self, frame: bytes | memoryview) -> None:
        try:
            self._socket.send(frame, zmq.NOBLOCK, copy=True)
            self.messages_sent += 1
        except zmq.Again:
            pass

    def is_due(self, now_s: float) -> bool:
        """True at most once per period (the first image is always due)."""
        if now_s < self._next_due_s:
            return False
        self._next_due_s = now_s + self.period_s
        return True

    def close(self, *, linger_s: float) -> None:
        self._socket.close(linger=int(linger_s * 1000))


class PreviewPublisher(_Publisher):
    """Start, one image per ``period_s`` (every image when 0), end."""

    def __init__(self, context: zmq.Context, endpoint: str, period_s: float) -> None:
        super().__init__(context, endpoint, period_s, "preview")

    def offer_image(self, now_s: float, frame: memoryview) -> None:
        if self.is_due(now_s):
            self.publish(frame)


class MetadataPublisher(_Publisher):
    """Start, one ``metadata`` message per ``period_s`` with the images of that period, end."""

    def __init__(
        self, context: zmq.Context, endpoint: str, period_s: float, series: dict[str, Any]
    ) -> None:
        super().__init__(context, endpoint, period_s, "metadata")
        # The run-level keys first, ``images`` last: an empty array to be filled by bytes.
        skeleton = encode(Message("metadata", {**series, "images": []}))
        if not skeleton.endswith(EMPTY_ARRAY):
            raise AssertionError("jfsim.protocol.encode no longer ends a metadata skeleton")
        self._skeleton_head = skeleton[: -len(EMPTY_ARRAY)]
        self._batch: list[bytes] = []

    def add_image(self, now_s: float, encoded_image_map: bytes) -> None:
        """Queue one image's fields (a CBOR map without ``data``); publish when due."""
        self._batch.append(encoded_image_map)
        if self.is_due(now_s):
            self.flush()

    def flush(self) -> None:
        """Publish the queued images as one ``metadata`` message (exactly ``encode``'s bytes:
        the image maps were encoded by the same encoder and are only concatenated here)."""
        if self._batch:
            images = cbor_head(MAJOR_ARRAY, len(self._batch)) + b"".join(self._batch)
            self.publish(self._skeleton_head + images)
            self._batch = []
