"""Feed CrystFEL's ``indexamajig --zmq-input`` directly: REP or PUB, one MessagePack map each.

CrystFEL connects a REQ or a SUB socket (seed 004):

* ``rep`` (default): jfsim binds REP and answers every request (``--zmq-request=next``, any
  content) with the next image. Several indexamajig workers may ask at once; each image goes
  to exactly one of them.
* ``pub``: jfsim binds an XPUB socket and publishes each image as two frames, the topic
  ``ondaframedata`` and the map, as OnDA/OM do (``--zmq-subscribe=ondaframedata``).
  indexamajig skips frames of 15 bytes or fewer, so the topic frame is ignored. Publishing
  starts once a subscription has arrived. A subscriber that cannot keep up loses images;
  they are counted.

The frames come from the same sources as ``jfsim stream``: a recording or an experiment
rendered into a pool of K frames. The pixels are decompressed and converted for each image
sent (CrystFEL reads only ``<i4``/``<f4``). The spots travel as ``peak_list``.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import zmq

from jfsim.crystfel.frame import CrystfelDtype, frame_map, pack_frame, pixels_for_crystfel
from jfsim.protocol import Message
from jfsim.stream.errors import NoWriterError, StreamOptionError
from jfsim.stream.frames import Frames
from jfsim.stream.pacing import Pacer
from jfsim.stream.pusher import bind_socket
from jfsim.stream.sources import FrameSource, PoolProgress
from jfsim.stream.stats import GapHistogram
from jfsim.units import m_to_mm

__all__ = [
    "DEFAULT_CRYSTFEL_ENDPOINT",
    "PUB_TOPIC",
    "CrystfelConfig",
    "CrystfelMode",
    "CrystfelProgress",
    "CrystfelServer",
    "CrystfelSummary",
    "frame_header",
]

#: Loopback by default; the port of the examples in CrystFEL's documentation (seed 004).
DEFAULT_CRYSTFEL_ENDPOINT = "tcp://127.0.0.1:5002"
#: The message prefix OnDA/OM publish frames under (``--zmq-subscribe=ondaframedata``).
PUB_TOPIC = b"ondaframedata"
#: Images a slow subscriber may have queued before the next ones are dropped.
PUB_SNDHWM = 4
#: Waits are cut into slices of this length so that a stop request is seen promptly.
POLL_SLICE_S = 0.05


class CrystfelMode(str, enum.Enum):
    """Which socket CrystFEL connects to: REQ → our REP, SUB → our (X)PUB."""

    REP = "rep"
    PUB = "pub"


@dataclass(frozen=True, slots=True)
class CrystfelConfig:
    """How to serve CrystFEL.

    Attributes:
        endpoint: the socket to bind.
        mode: ``rep`` or ``pub``.
        rate_hz: at most this many images per second (None: as fast as asked or sent).
        number_of_images: images to serve (None: as many as the source holds).
        pool_size: distinct frames to cycle (None: as many as the source suggests, e.g. every
            image of a recording).
        dtype: pixel type of the frames (``int32`` ``<i4`` or ``float32`` ``<f4``).
        start_timeout_s: wait this long for the first request or subscription.
        idle_timeout_s: rep only: stop when no request has come for this long (None: wait).
        end_timeout_s: let the last images leave for this long before closing.
        progress_interval_s: seconds between progress callbacks.
    """

    endpoint: str = DEFAULT_CRYSTFEL_ENDPOINT
    mode: CrystfelMode = CrystfelMode.REP
    rate_hz: float | None = None
    number_of_images: int | None = None
    pool_size: int | None = None
    dtype: CrystfelDtype = CrystfelDtype.INT32
    start_timeout_s: float = 5.0
    idle_timeout_s: float | None = None
    end_timeout_s: float = 5.0
    progress_interval_s: float = 0.5

    def __post_init__(self) -> None:
        if self.rate_hz is not None and not self.rate_hz > 0:
            raise StreamOptionError(f"rate: must be > 0 Hz or max, got {self.rate_hz}")
        if self.number_of_images is not None and self.number_of_images < 0:
            raise StreamOptionError(f"images: must be >= 0, got {self.number_of_images}")
        if self.pool_size is not None and self.pool_size < 1:
            raise StreamOptionError(f"pool: must be >= 1 frame, got {self.pool_size}")
        for name in ("start_timeout_s", "end_timeout_s", "progress_interval_s"):
            if getattr(self, name) < 0:
                raise StreamOptionError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.idle_timeout_s is not None and self.idle_timeout_s <= 0:
            raise StreamOptionError(f"idle timeout: must be > 0, got {self.idle_timeout_s}")


@dataclass(frozen=True, slots=True)
class CrystfelProgress:
    images_done: int
    images_total: int
    rate_hz: float
    images_dropped: int


@dataclass(frozen=True, slots=True)
class CrystfelSummary:
    """What a CrystFEL feed did; ``stopped_by`` is None when every image was served."""

    endpoint: str
    mode: str
    images_requested: int
    images_sent: int
    images_dropped: int
    requests: int
    bytes_sent: int
    duration_s: float
    achieved_rate_hz: float
    mean_gap_ms: float
    max_gap_ms: float
    pool_size: int
    pixel_type: str
    stopped_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_header(start: Message) -> dict[str, Any]:
    """Photon energy (eV), distance (mm), error value (None if not given) and series id
    from a start message.

    The distance is ``detector_distance`` (Jungfraujoch, m) or the z of
    ``detector_translation`` (DECTRIS, m).
    """
    energy_eV = start.get("incident_energy")
    if not isinstance(energy_eV, (int, float)) or not energy_eV > 0:
        raise StreamOptionError(
            "the start message has no incident_energy (eV); CrystFEL needs the photon energy"
        )
    distance_m = start.get("detector_distance")
    translation = start.get("detector_translation")
    if distance_m is None and isinstance(translation, (list, tuple)) and len(translation) == 3:
        distance_m = translation[2]
    if not isinstance(distance_m, (int, float)) or not distance_m > 0:
        raise StreamOptionError(
            "the start message has no detector_distance (m); CrystFEL needs the distance"
        )
    return {
        "photon_energy_eV": float(energy_eV),
        "distance_mm": float(m_to_mm(distance_m)),
        "error_value": start.get("error_value"),
        "series_unique_id": str(start.get("series_unique_id", "")),
    }


class _Counts:
    """Images sent and dropped, bytes, and the gaps between sends."""

    def __init__(self) -> None:
        self.sent = 0
        self.dropped = 0
        self.requests = 0
        self.bytes = 0
        self.gaps = GapHistogram()
        self.first_s: float | None = None
        self.last_s: float | None = None

    def record_sent(self, now_s: float, n_bytes: int) -> None:
        if self.last_s is not None:
            self.gaps.add(now_s - self.last_s)
        if self.first_s is None:
            self.first_s = now_s
        self.last_s = now_s
        self.sent += 1
        self.bytes += n_bytes

    def rate_hz(self) -> float:
        if self.first_s is None or self.last_s is None or self.sent < 2:
            return 0.0
        return (self.sent - 1) / max(self.last_s - self.first_s, 1e-9)


class CrystfelServer:
    """Serves one series to CrystFEL as configured; see the module docstring."""

    def __init__(
        self,
        config: CrystfelConfig,
        source: FrameSource,
        *,
        on_progress: Callable[[CrystfelProgress], None] | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.on_progress = on_progress
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._pool: Frames | None = None
        self._context: zmq.Context | None = None
        self._socket: zmq.Socket | None = None
        self.bound_endpoint: str | None = None

    @property
    def number_of_images(self) -> int:
        if self.config.number_of_images is not None:
            return self.config.number_of_images
        return self.source.default_number_of_images()

    def request_stop(self, reason: str = "stop requested") -> None:
        """Finish early (safe in signal handlers and from other threads)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    def prepare(self, on_pool_progress: PoolProgress | None = None) -> Frames:
        """Render or load the frame pool (slow; done once)."""
        if self._pool is None:
            pool_size = self.config.pool_size or self.source.default_pool_size()
            pool_size = max(1, min(pool_size, self.number_of_images))
            self._pool = self.source.build_pool(pool_size, on_pool_progress)
        return self._pool

    def bind(self) -> str:
        """Bind the socket now; returns the endpoint as bound (``*`` ports resolved)."""
        if self._socket is None:
            self._context = zmq.Context()
            kind = zmq.REP if self.config.mode is CrystfelMode.REP else zmq.XPUB
            self._socket = self._context.socket(kind)
            self._socket.setsockopt(zmq.LINGER, 0)
            if kind == zmq.XPUB:
                self._socket.setsockopt(zmq.SNDHWM, PUB_SNDHWM)
            try:
                self.bound_endpoint = bind_socket(
                    self._socket, self.config.endpoint, f"CrystFEL {self.config.mode.value}"
                )
            except BaseException:
                self._close()
                raise
        assert self.bound_endpoint is not None
        return self.bound_endpoint

    def _close(self, *, linger_s: float = 0.0) -> None:
        if self._socket is not None:
            self._socket.close(linger=int(linger_s * 1000))
        if self._context is not None:
            self._context.term()
        self._socket = None
        self._context = None

    def encoded_frame(self, image_id: int, header: dict[str, Any]) -> bytes:
        """The MessagePack bytes of image ``image_id`` (pool frame ``image_id % K``)."""
        pool = self.prepare()
        frame = pool[image_id % len(pool)]
        pixels = frame.pixels.to_numpy()
        error_value = header["error_value"]
        if error_value is None and pixels.dtype.kind == "u":
            error_value = int(np.iinfo(pixels.dtype).max)  # DECTRIS NODATA (stream.md §4.2)
        fields = self.source.image_fields(image_id)
        return pack_frame(
            frame_map(
                pixels_for_crystfel(pixels, error_value, self.config.dtype),
                image_id=int(fields.get("image_id", image_id)),
                photon_energy_eV=header["photon_energy_eV"],
                distance_mm=header["distance_mm"],
                spots=frame.pixel_fields.get("spots") or (),
                series_unique_id=header["series_unique_id"],
            )
        )

    def run(self) -> CrystfelSummary:
        """Serve the images; raises ``NoWriterError`` when no client shows up in time."""
        pool = self.prepare()
        self.bind()
        assert self._socket is not None
        header = frame_header(self.source.start_message(self.number_of_images))
        counts = _Counts()
        started = time.monotonic()
        linger_s = 0.0
        try:
            if self.config.mode is CrystfelMode.REP:
                self._serve_requests(header, counts)
            else:
                self._publish(header, counts)
            linger_s = self.config.end_timeout_s
        finally:
            self._close(linger_s=linger_s)
        duration_s = time.monotonic() - started
        return CrystfelSummary(
            endpoint=self.bound_endpoint or self.config.endpoint,
            mode=self.config.mode.value,
            images_requested=self.number_of_images,
            images_sent=counts.sent,
            images_dropped=counts.dropped,
            requests=counts.requests,
            bytes_sent=counts.bytes,
            duration_s=duration_s,
            achieved_rate_hz=counts.rate_hz(),
            mean_gap_ms=counts.gaps.mean_s * 1e3,
            max_gap_ms=counts.gaps.max_s * 1e3,
            pool_size=len(pool),
            pixel_type=self.config.dtype.numpy_type,
            stopped_by=self._stop_reason,
        )

    def _wait_readable(self, timeout_s: float | None) -> bool:
        """Wait for a request (or subscription); False on timeout or stop."""
        assert self._socket is not None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._stop.is_set():
            remaining = POLL_SLICE_S if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._socket.poll(int(min(remaining, POLL_SLICE_S) * 1000) + 1, zmq.POLLIN):
                return True
        return False

    def _progress(self, counts: _Counts, now_s: float, next_due_s: float) -> float:
        if self.on_progress is None or now_s < next_due_s:
            return next_due_s
        self.on_progress(
            CrystfelProgress(counts.sent, self.number_of_images, counts.rate_hz(), counts.dropped)
        )
        return now_s + self.config.progress_interval_s

    def _serve_requests(self, header: dict[str, Any], counts: _Counts) -> None:
        assert self._socket is not None
        socket = self._socket
        if not self._wait_readable(self.config.start_timeout_s):
            if self._stop.is_set():
                return
            raise NoWriterError(
                f"no CrystFEL request on {self.bound_endpoint} within "
                f"{self.config.start_timeout_s:g} s; start indexamajig --zmq-input="
                f"{self.bound_endpoint} --zmq-request=next, or raise --start-timeout"
            )
        pacer = Pacer(self.config.rate_hz, stop=self._stop)
        pacer.start()
        next_progress = time.monotonic()
        for image_id in range(self.number_of_images):
            if image_id and not self._wait_readable(self.config.idle_timeout_s):
                if not self._stop.is_set():
                    self.request_stop(
                        f"no request for {self.config.idle_timeout_s:g} s (idle timeout)"
                    )
                return
            if self._stop.is_set():
                return
            socket.recv()  # the request's content (e.g. "next") does not matter
            counts.requests += 1
            pacer.wait_for(image_id)
            payload = self.encoded_frame(image_id, header)
            socket.send(payload, copy=False)
            now = time.monotonic()
            counts.record_sent(now, len(payload))
            next_progress = self._progress(counts, now, next_progress)

    def _publish(self, header: dict[str, Any], counts: _Counts) -> None:
        assert self._socket is not None
        socket = self._socket
        subscribed = False
        deadline = time.monotonic() + self.config.start_timeout_s
        while not subscribed:
            remaining = deadline - time.monotonic()
            if not self._wait_readable(max(remaining, 0.0)):
                if self._stop.is_set():
                    return
                raise NoWriterError(
                    f"no subscriber on {self.bound_endpoint} within "
                    f"{self.config.start_timeout_s:g} s; start indexamajig --zmq-input="
                    f"{self.bound_endpoint} --zmq-subscribe={PUB_TOPIC.decode()}"
                )
            subscription = socket.recv()
            subscribed = subscription[:1] == b"\x01" and PUB_TOPIC.startswith(subscription[1:])
        pacer = Pacer(self.config.rate_hz, stop=self._stop)
        pacer.start()
        next_progress = time.monotonic()
        for image_id in range(self.number_of_images):
            pacer.wait_for(image_id)
            if self._stop.is_set():
                return
            payload = self.encoded_frame(image_id, header)
            try:
                socket.send_multipart([PUB_TOPIC, payload], zmq.NOBLOCK, copy=False)
            except zmq.Again:
                counts.dropped += 1
                continue
            now = time.monotonic()
            counts.record_sent(now, len(payload))
            next_progress = self._progress(counts, now, next_progress)
