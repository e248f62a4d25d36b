"""Fixtures of the stream tests: a byte-level Stream V2 checker, PULL/SUB receivers, sources.

The checker is written from stream.md alone (no jfsim.protocol): it walks the CBOR bytes
itself, so an encoder bug that the project's own decoder shares cannot hide.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import zmq

from jfsim.protocol import Compression, Message, PixelArray, Rational, decode
from jfsim.stream import MessageListSource, StreamConfig, Streamer, StreamSummary

RECEIVE_TIMEOUT_S = 10.0

#: Stream V2 Float fields (stream.md §2.1, §4.1): must be CBOR floats even when integral.
FLOAT_FIELDS = {
    "beam_center_x",
    "beam_center_y",
    "count_time",
    "frame_time",
    "incident_energy",
    "incident_wavelength",
    "pixel_size_x",
    "pixel_size_y",
    "sensor_thickness",
    "detector_distance",
}
TYPED_ARRAY_ELEMENT_BYTES = {64: 1, 69: 2, 70: 4, 72: 1, 77: 2, 78: 4, 85: 4}


class StreamV2Violation(AssertionError):
    """A message breaks the Stream V2 byte rules."""


@dataclass
class _Reader:
    data: bytes
    pos: int = 0

    def head(self) -> tuple[int, int]:
        first = self.data[self.pos]
        self.pos += 1
        major, info = first >> 5, first & 0x1F
        if info < 24:
            return major, info
        if info == 31:
            raise StreamV2Violation(f"indefinite-length item (major {major}) at {self.pos - 1}")
        if major == 7 and info in (25, 26, 27):
            return major, info  # floats: the caller reads the payload
        if info > 27:
            raise StreamV2Violation(f"reserved additional info {info} at {self.pos - 1}")
        width = 1 << (info - 24)
        value = int.from_bytes(self.data[self.pos : self.pos + width], "big")
        self.pos += width
        return major, value

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise StreamV2Violation(f"item of {n} bytes at {self.pos} runs past the message end")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk


@dataclass(frozen=True)
class CheckedPixels:
    """A pixel array as the checker saw it: dims, element tag, compression, payload."""

    dims: tuple[int, ...]
    typed_array_tag: int
    algorithm: str | None
    payload: bytes


@dataclass(frozen=True)
class FloatValue:
    value: float


def _item(reader: _Reader) -> Any:
    major, argument = reader.head()
    if major == 0:
        return argument
    if major == 1:
        return -1 - argument
    if major == 2:
        return reader.take(argument)
    if major == 3:
        return reader.take(argument).decode("utf-8")
    if major == 4:
        return [_item(reader) for _ in range(argument)]
    if major == 5:
        result = {}
        for _ in range(argument):
            key = _item(reader)
            if not isinstance(key, str):
                raise StreamV2Violation(f"map key {key!r} is not a text string")
            result[key] = _item(reader)
        return result
    if major == 6:
        return _tagged(reader, argument)
    if argument in (25, 26, 27):
        fmt = {25: ">e", 26: ">f", 27: ">d"}[argument]
        return FloatValue(struct.unpack(fmt, reader.take(struct.calcsize(fmt)))[0])
    return {20: False, 21: True, 22: None}.get(argument, ("simple", argument))


def _tagged(reader: _Reader, tag: int) -> Any:
    if tag == 40:
        major, count = reader.head()
        if (major, count) != (4, 2):
            raise StreamV2Violation("tag 40 content is not a 2-element array")
        dims = _item(reader)
        if not (isinstance(dims, list) and dims and all(isinstance(d, int) for d in dims)):
            raise StreamV2Violation(f"tag 40 dims {dims!r} are not unsigned integers")
        major, typed_tag = reader.head()
        if major != 6 or typed_tag not in TYPED_ARRAY_ELEMENT_BYTES:
            raise StreamV2Violation(f"tag 40 array is not a known typed array (tag {typed_tag})")
        elem_bytes = TYPED_ARRAY_ELEMENT_BYTES[typed_tag]
        n_bytes = math.prod(dims) * elem_bytes
        start = reader.pos
        inner = _item(reader)
        if isinstance(inner, bytes):
            if len(inner) != n_bytes:
                raise StreamV2Violation(f"raw pixels: {len(inner)} bytes, dims need {n_bytes}")
            return CheckedPixels(tuple(dims), typed_tag, None, inner)
        if not isinstance(inner, tuple) or inner[0] != "56500":
            raise StreamV2Violation(f"typed array at {start} holds neither bytes nor tag 56500")
        algorithm, modifier, payload = inner[1]
        if algorithm == "bslz4":
            if modifier != elem_bytes:
                raise StreamV2Violation(f"bslz4 modifier {modifier} != element size {elem_bytes}")
            if int.from_bytes(payload[:8], "big") != n_bytes:
                raise StreamV2Violation("bslz4 header size does not match dims x element size")
            if int.from_bytes(payload[8:12], "big") % elem_bytes:
                raise StreamV2Violation("bslz4 block size is not a multiple of the element size")
        elif algorithm != "lz4":
            raise StreamV2Violation(f"unknown tag-56500 algorithm {algorithm!r}")
        return CheckedPixels(tuple(dims), typed_tag, algorithm, payload)
    if tag == 56500:
        content = _item(reader)
        if not (
            isinstance(content, list)
            and len(content) == 3
            and isinstance(content[0], str)
            and isinstance(content[1], int)
            and isinstance(content[2], bytes)
        ):
            raise StreamV2Violation("tag 56500 content is not [text, uint, bytes]")
        return ("56500", content)
    if tag == 0:
        value = _item(reader)
        if not isinstance(value, str) or "T" not in value:
            raise StreamV2Violation(f"tag 0 holds {value!r}, not an RFC 3339 date-time")
        return value
    return ("tag", tag, _item(reader))


def _check_floats(fields: dict[str, Any]) -> None:
    for name in FLOAT_FIELDS & fields.keys():
        if not isinstance(fields[name], FloatValue):
            raise StreamV2Violation(f"Float field {name!r} is not a CBOR float: {fields[name]!r}")


def check_stream_v2(data: bytes) -> dict[str, Any]:
    """Walk one message's bytes strictly; return its content (Floats as ``FloatValue``)."""
    data = bytes(data)
    if data[:3] != b"\xd9\xd9\xf7":
        raise StreamV2Violation(f"no 55799 prefix: starts with {data[:3].hex()}")
    major, _count = _Reader(data, 3).head()  # raises on an indefinite-length map
    if major != 5:
        raise StreamV2Violation("top-level item is not a map")
    key_reader = _Reader(data, 3)
    key_reader.head()
    if data[key_reader.pos : key_reader.pos + 5] != b"\x64type":
        raise StreamV2Violation("the first map key is not 'type'")
    reader = _Reader(data, 3)
    message = _item(reader)
    if reader.pos != len(data):
        raise StreamV2Violation(f"{len(data) - reader.pos} bytes after the top-level map")
    _check_floats(message)
    return message


@pytest.fixture
def stream_v2_check() -> Callable[[bytes], dict[str, Any]]:
    return check_stream_v2


# ----------------------------------------------------------------------------- receivers


class Receiver:
    """A connected PULL (or SUB) socket whose every receive has a timeout."""

    def __init__(
        self,
        context: zmq.Context,
        endpoint: str,
        socket_type: int = zmq.PULL,
        rcvhwm: int | None = None,
        rcvbuf_bytes: int | None = None,
    ):
        self.socket = context.socket(socket_type)
        self.socket.setsockopt(zmq.LINGER, 0)
        if rcvhwm is not None:  # only effective before connecting
            self.socket.setsockopt(zmq.RCVHWM, rcvhwm)
        if rcvbuf_bytes is not None:  # caps the kernel buffer, which may otherwise grow to MBs
            self.socket.setsockopt(zmq.RCVBUF, rcvbuf_bytes)
        self._monitor: zmq.Socket | None = None
        if socket_type == zmq.SUB:
            self.socket.setsockopt(zmq.SUBSCRIBE, b"")
            self._monitor = self.socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.socket.connect(endpoint)

    def wait_subscribed(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> None:
        """A PUB drops messages until our subscription arrives, sent right after the handshake."""
        assert self._monitor is not None, "only SUB receivers subscribe"
        if not self._monitor.poll(int(timeout_s * 1000)):
            raise AssertionError(f"no ZMTP handshake with the publisher within {timeout_s} s")

    def receive(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> bytes:
        if not self.socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            raise AssertionError(f"nothing received within {timeout_s} s")
        return self.socket.recv()

    def receive_series(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> list[dict[str, Any]]:
        """Every message up to and including the end message, each checked."""
        messages = []
        while True:
            message = check_stream_v2(self.receive(timeout_s))
            messages.append(message)
            if message["type"] == "end":
                return messages

    def receive_metadata(self) -> list[Message]:
        """The ``metadata`` messages of a series, each checked, up to the end message."""
        frames: list[bytes] = []
        while not frames or check_stream_v2(frames[-1])["type"] != "end":
            frames.append(self.receive())
        return [decode(f) for f in frames if check_stream_v2(f)["type"] == "metadata"]

    def close(self) -> None:
        if self._monitor is not None:
            self.socket.disable_monitor()
            self._monitor.close()
            self._monitor = None
        self.socket.close()


@pytest.fixture
def zmq_context() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def connect(zmq_context: zmq.Context) -> Iterator[Callable[..., Receiver]]:
    receivers: list[Receiver] = []

    def make(
        endpoint: str,
        socket_type: int = zmq.PULL,
        rcvhwm: int | None = None,
        rcvbuf_bytes: int | None = None,
    ) -> Receiver:
        receiver = Receiver(zmq_context, endpoint, socket_type, rcvhwm, rcvbuf_bytes)
        receivers.append(receiver)
        return receiver

    yield make
    for receiver in receivers:
        receiver.close()


# ----------------------------------------------------------------------------- sources


def synthetic_messages(
    n_images: int,
    *,
    shape: tuple[int, int] = (48, 64),
    images_per_file: int = 4,
    seed: int = 3,
) -> list[Message]:
    """start, n random int16 images (bslz4) with a spot list, end: a small series."""
    rng = np.random.default_rng(seed)
    start = Message(
        "start",
        {
            "series_id": 7,
            "series_unique_id": "7:synthetic",
            "beam_center_x": 32.0,
            "beam_center_y": 24.0,
            "frame_time": 0.0005,
            "count_time": 0.0005,
            "image_size_x": shape[1],
            "image_size_y": shape[0],
            "number_of_images": n_images,
            "images_per_file": images_per_file,
            "channels": ["default"],
            "incident_energy": 12400.0,
        },
    )
    images = []
    for image_id in range(n_images):
        pixels = rng.poisson(2.0, size=shape).astype(np.int16)
        images.append(
            Message(
                "image",
                {
                    "series_id": 7,
                    "series_unique_id": "7:synthetic",
                    "image_id": image_id,
                    "real_time": Rational(20000, 50_000_000),
                    "start_time": Rational(image_id * 25000, 50_000_000),
                    "stop_time": Rational(image_id * 25000 + 20000, 50_000_000),
                    "data": {"default": PixelArray.from_numpy(pixels, Compression.BSLZ4)},
                    "spots": [{"x": float(image_id), "y": 1.5, "I": 100.0, "indexed": False}],
                    "spot_count": 1,
                },
            )
        )
    end = Message("end", {"series_id": 7, "series_unique_id": "7:synthetic", "images_collected": 0})
    return [start, *images, end]


@pytest.fixture
def expected_metadata_entries() -> Callable[[Any, Any, int], list[dict[str, Any]]]:
    """What the metadata messages list for images 0…n−1 of ``source`` streaming ``frames``:
    each image's own fields and those of the frame it sends (a Rational is a plain
    [numerator, denominator] list inside metadata entries)."""

    def expected(source: Any, frames: Any, n_images: int) -> list[dict[str, Any]]:
        entries = []
        for image_id in range(n_images):
            frame = frames[image_id % len(frames)]
            fields = {**source.image_fields(image_id), **frame.pixel_fields}
            entries.append(
                {k: list(v) if isinstance(v, Rational) else v for k, v in fields.items()}
            )
        return entries

    return expected


@pytest.fixture
def synthetic_messages_list() -> list[Message]:
    return synthetic_messages(12)


@pytest.fixture
def make_synthetic_messages() -> Callable[..., list[Message]]:
    return synthetic_messages


@pytest.fixture
def synthetic_source() -> Callable[..., MessageListSource]:
    def make(n_images: int = 8, **kwargs: Any) -> MessageListSource:
        return MessageListSource(synthetic_messages(n_images, **kwargs), description="synthetic")

    return make


class BackgroundStream:
    """A streamer running in a thread; ``result()`` joins it and returns summary or error."""

    def __init__(self, streamer: Streamer) -> None:
        self.streamer = streamer
        self.summary: StreamSummary | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.summary = self.streamer.run()
        except BaseException as error:
            self.error = error

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def result(self, timeout_s: float = 30.0) -> StreamSummary:
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self.streamer.request_stop("test timeout")
            self._thread.join(10.0)
            raise AssertionError(f"the streamer did not finish within {timeout_s} s")
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary


@pytest.fixture
def start_stream() -> Iterator[Callable[..., tuple[BackgroundStream, list[str]]]]:
    """Bind a streamer on loopback (``*`` ports) and run it in a thread."""
    running: list[BackgroundStream] = []

    def start(
        source: Any, on_progress: Callable[..., None] | None = None, **config: Any
    ) -> tuple[BackgroundStream, list[str]]:
        config.setdefault("endpoints", ("tcp://127.0.0.1:*",))
        config.setdefault("rate_hz", None)
        config.setdefault("start_timeout_s", 10.0)
        config.setdefault("end_timeout_s", 5.0)
        streamer = Streamer(StreamConfig(**config), source, on_progress=on_progress)
        endpoints = streamer.bind()
        background = BackgroundStream(streamer)
        running.append(background)
        return background, endpoints

    yield start
    for background in running:
        background.streamer.request_stop("test teardown")
        background.join(timeout_s=30.0)
