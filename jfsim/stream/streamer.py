"""One series on the wire: start, the source's frames at a paced rate, end.

``Streamer(config, source).run()`` is everything ``jfsim stream`` does; it returns a
``StreamSummary`` and never prints. ``request_stop`` (safe from a signal handler or another
thread) ends the image loop early; the end message is still sent. The run ends once the end
message and every image before it have left ZeroMQ for the writers, however long a slow
writer takes, unless a writer takes nothing for ``end_timeout_s`` (or a stop is requested
during that wait): what was still queued is then counted as lost (``images_lost_in_queue``).
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import zmq

from jfsim.protocol import Message, encode
from jfsim.stream.errors import StreamOptionError, WriterStalledError
from jfsim.stream.frames import Assembler, Frames
from jfsim.stream.pacing import Pacer
from jfsim.stream.publisher import MetadataPublisher, PreviewPublisher
from jfsim.stream.pusher import EndDelivery, ImageSockets, OnSlow, SendOutcome
from jfsim.stream.sources import FrameReuse, FrameSource, PoolProgress
from jfsim.stream.stats import StreamProgress, StreamStats, StreamSummary

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_MAX_LAG_S",
    "DEFAULT_SNDHWM",
    "StreamConfig",
    "Streamer",
    "image_socket_index",
    "schedule_wait_s",
]

#: Loopback unless the user names another address: a detector stream is not for the network
#: by default.
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5500"
#: jfjoch_broker's ``send_watermark`` bounds (stream.md §1.2).
SNDHWM_RANGE = (2, 16384)
#: Images a socket may queue before a slow writer makes the next one wait: 0.125 s at 2 kHz
#: of hiccups ride on the queue alone, longer stalls on the catch-up's lag budget. Each
#: queued image holds a buffer of its own (its header precedes the pixels in one frame), all
#: made before the stream starts: a deeper queue (1000, as ALBA's eiger-simulator) made
#: hundreds of 1 MB JF4M buffers while a receiver lagged, on the sending thread's time,
#: which then fell behind and lost images that a queue of 250 kept (docs/stream.md).
DEFAULT_SNDHWM = 250
#: Calibration messages wait this long for the first socket (stream.md §1.2: 1 s).
CALIBRATION_TIMEOUT_S = 1.0
DEFAULT_SEND_TIMEOUT_S = {OnSlow.CATCH_UP: 1.0, OnSlow.DROP: 1.0, OnSlow.BLOCK: 10.0}
#: With ``catch-up``, how far behind its slot an image may still be sent. A writer that
#: stalls this long beyond what the send queue holds (250 images: 0.125 s at 2 kHz) loses
#: nothing, and the stream then ends at most this late.
DEFAULT_MAX_LAG_S = 1.0
#: Messages a socket holds besides its queue (the one in the kernel buffer, the one written).
MESSAGES_BEYOND_HWM = 4
#: Send buffers made before streaming at most for this many messages; more grow on demand
#: (a deeper --sndhwm, several sockets). The default queue's are all made up front, so a
#: lagging writer costs the sending thread no buffer making (JF4M: 256 buffers, ~340 MB).
PREALLOCATED_MESSAGES_MAX = 256


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """How to stream. ``rate_hz=None`` means as fast as the transport takes it.

    ``number_of_images=None`` streams as many images as the source holds;
    ``pool_size=None`` lets the source choose its distinct frames (a recording: every
    recorded image; an experiment: 32 rendered frames);
    ``send_timeout_s=None`` means 10 s with ``on_slow=BLOCK`` and 1 s otherwise (with
    ``CATCH_UP`` it bounds the wait only at ``rate_hz=None``, where there is no schedule);
    ``max_lag_s``: with ``CATCH_UP``, how far behind its slot an image may be sent before it
    is dropped; ``end_timeout_s``: after the last image, how long a writer may take nothing
    (no queued image, nor the end message, leaving) before what is still queued for it is
    given up as lost.
    """

    endpoints: tuple[str, ...] = (DEFAULT_ENDPOINT,)
    rate_hz: float | None = 2000.0
    number_of_images: int | None = None
    pool_size: int | None = None
    sndhwm: int = DEFAULT_SNDHWM
    on_slow: OnSlow = OnSlow.CATCH_UP
    max_lag_s: float = DEFAULT_MAX_LAG_S
    send_timeout_s: float | None = None
    start_timeout_s: float = 5.0
    end_timeout_s: float = 5.0
    preview_endpoint: str | None = None
    preview_period_s: float = 1.0
    metadata_endpoint: str | None = None
    metadata_period_s: float = 1.0
    progress_interval_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise StreamOptionError("endpoints: give at least one, e.g. tcp://127.0.0.1:5500")
        if self.rate_hz is not None and not self.rate_hz > 0:
            raise StreamOptionError(f"rate: must be > 0 Hz or max, got {self.rate_hz}")
        if self.number_of_images is not None and self.number_of_images < 0:
            raise StreamOptionError(f"images: must be >= 0, got {self.number_of_images}")
        if self.pool_size is not None and self.pool_size < 1:
            raise StreamOptionError(f"pool: must be >= 1 frame, got {self.pool_size}")
        low, high = SNDHWM_RANGE
        if not low <= self.sndhwm <= high:
            raise StreamOptionError(f"sndhwm: must be in {low}..{high}, got {self.sndhwm}")
        for name in (
            "start_timeout_s",
            "end_timeout_s",
            "preview_period_s",
            "metadata_period_s",
            "progress_interval_s",
            "max_lag_s",
        ):
            if getattr(self, name) < 0:
                raise StreamOptionError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.send_timeout_s is not None and self.send_timeout_s < 0:
            raise StreamOptionError(f"send_timeout_s: must be >= 0, got {self.send_timeout_s}")

    @property
    def effective_send_timeout_s(self) -> float:
        if self.send_timeout_s is not None:
            return self.send_timeout_s
        return DEFAULT_SEND_TIMEOUT_S[self.on_slow]


def _start_frames(start: Message, n_sockets: int) -> list[bytes]:
    """The start message per image socket: with several, only the first socket's writer
    writes the master file (``write_master_file``, stream.md §1.2), and ``image_sockets``
    tells each writer that it receives only its socket's data files."""
    if n_sockets == 1:
        return [encode(start)]
    return [
        encode(
            Message(
                "start",
                {**start.fields, "write_master_file": index == 0, "image_sockets": n_sockets},
            )
        )
        for index in range(n_sockets)
    ]


def schedule_wait_s(
    on_slow: OnSlow,
    *,
    due_s: float,
    next_due_s: float,
    now_s: float,
    max_lag_s: float,
    send_timeout_s: float,
) -> float | None:
    """How long a paced image due at ``due_s`` may wait for room (None: the send timeout).

    ``catch-up``: until it is ``max_lag_s`` behind its slot, so a short stall only delays
    images (they go back to back afterwards); ``drop``: until the next image is due (the
    schedule first), or the send timeout if that is sooner; ``block``: the send timeout.
    """
    if on_slow is OnSlow.CATCH_UP:
        return due_s + max_lag_s - now_s
    if on_slow is OnSlow.DROP and next_due_s - now_s < send_timeout_s:
        return next_due_s - now_s
    return None


def image_socket_index(image_id: int, images_per_file: int, n_sockets: int) -> int:
    """Which image socket carries ``image_id``: whole data files per socket (stream.md §1.2)."""
    if images_per_file <= 0:
        return 0
    return (image_id // images_per_file) % n_sockets


class Streamer:
    """Streams one series from ``source`` as configured; see the module docstring."""

    def __init__(
        self,
        config: StreamConfig,
        source: FrameSource,
        *,
        on_progress: Callable[[StreamProgress], None] | None = None,
        on_image_sent: Callable[[int], None] | None = None,
    ) -> None:
        """``on_image_sent(image_id)`` runs in the sending thread after each image is queued
        on its socket (not for dropped ones); keep it to a few microseconds."""
        self.config = config
        self.source = source
        self.on_progress = on_progress
        self.on_image_sent = on_image_sent
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._ending = False  # the image loop is over: a stop request gives up the end wait
        self._give_up_end = threading.Event()
        self._give_up_reason: str | None = None
        self._pool: Frames | None = None
        self._assembler: Assembler | None = None
        self._context: zmq.Context | None = None
        self._sockets: ImageSockets | None = None
        self._preview: PreviewPublisher | None = None
        self._metadata: MetadataPublisher | None = None

    @property
    def number_of_images(self) -> int:
        if self.config.number_of_images is not None:
            return self.config.number_of_images
        return self.source.default_number_of_images()

    def request_stop(self, reason: str = "stop requested") -> None:
        """Finish early: no more images, then the end message. Once the images are over, stop
        waiting for the writers to take what is queued (it is reported lost). Safe in signal
        handlers."""
        if self._ending:
            if self._give_up_reason is None:
                self._give_up_reason = reason
            self._give_up_end.set()
            return
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    def prepare(self, on_pool_progress: PoolProgress | None = None) -> Frames:
        """Make the source's frames (render a pool, index a recording) and the send buffers
        (slow; done once)."""
        if self._pool is None:
            config = self.config
            pool_size = config.pool_size or self.source.default_pool_size()
            pool_size = max(1, min(pool_size, self.number_of_images))
            self._pool = self.source.build_pool(pool_size, on_pool_progress)
            in_flight = min(
                len(config.endpoints) * (config.sndhwm + MESSAGES_BEYOND_HWM),
                PREALLOCATED_MESSAGES_MAX,
            )
            self._assembler = self._pool.assembler(messages_in_flight=in_flight)
        return self._pool

    @property
    def frame_reuse(self) -> FrameReuse:
        """Which images reuse which frames (after ``prepare``); announce its text first."""
        n_frames = len(self.prepare())
        return FrameReuse(self.number_of_images, n_frames, self.source.frame_noun)

    def bind(self) -> list[str]:
        """Bind every socket now; returns the image endpoints as bound (``*`` ports resolved)."""
        if self._sockets is None:
            config = self.config
            self._context = zmq.Context()
            try:
                self._sockets = ImageSockets(
                    self._context,
                    config.endpoints,
                    sndhwm=config.sndhwm,
                    on_slow=config.on_slow,
                    send_timeout_s=config.effective_send_timeout_s,
                    stop=self._stop,
                )
                if config.preview_endpoint:
                    self._preview = PreviewPublisher(
                        self._context, config.preview_endpoint, config.preview_period_s
                    )
                if config.metadata_endpoint:
                    start = self.source.start_message(self.number_of_images)
                    series: dict[str, Any] = {
                        key: start[key]
                        for key in ("series_id", "series_unique_id")
                        if key in start.fields
                    }
                    self._metadata = MetadataPublisher(
                        self._context, config.metadata_endpoint, config.metadata_period_s, series
                    )
            except BaseException:
                self._close(linger_s=0.0)
                raise
        return list(self._sockets.bound_endpoints)

    @property
    def preview_endpoint(self) -> str | None:
        return self._preview.bound_endpoint if self._preview else None

    @property
    def metadata_endpoint(self) -> str | None:
        return self._metadata.bound_endpoint if self._metadata else None

    def close(self) -> None:
        """Close the sockets now (after ``bind`` when ``run`` will not follow)."""
        self._close(linger_s=0.0)

    def _close(self, *, linger_s: float) -> None:
        for publisher in (self._preview, self._metadata):
            if publisher is not None:
                publisher.close(linger_s=linger_s)
        if self._sockets is not None:
            self._sockets.close(linger_s=linger_s)
        if self._context is not None:
            self._context.term()
        self._sockets = self._preview = self._metadata = None
        self._context = None

    def run(self) -> StreamSummary:
        """Stream the series; raises ``NoWriterError`` if nobody takes the start message."""
        config = self.config
        pool = self.prepare()
        self.bind()
        assert self._sockets is not None and self._assembler is not None
        sockets, assembler = self._sockets, self._assembler
        n_images = self.number_of_images
        stats = StreamStats(len(sockets), n_images)
        deliveries: tuple[EndDelivery, ...] = ()
        try:
            start = self.source.start_message(n_images)
            start_frame = encode(start)
            sockets.send_start(_start_frames(start, len(sockets)), config.start_timeout_s)
            for calibration in self.source.calibration_messages():
                sockets.send_first(encode(calibration), CALIBRATION_TIMEOUT_S)
            for publisher in (self._preview, self._metadata):
                if publisher is not None:
                    publisher.publish(start_frame)
            if n_images:
                assembler.verify(self.source.image_fields(0), 0)
            # The objects alive now (pool, sockets, imported modules) are left out of garbage
            # collection while images are sent: a full collection over them pauses the
            # sender for milliseconds, and each image's own objects are freed as it goes.
            gc.freeze()
            try:
                self._send_images(assembler, stats)
            except WriterStalledError as error:
                self.request_stop(str(error))
            finally:
                gc.unfreeze()
            # The detector collected every image it attempted; the dropped ones were lost on
            # the way, which a writer can then report as missing.
            collected = stats.images_sent + stats.images_dropped
            end_frame = encode(self.source.end_message(collected))
            self._ending = True
            end_wait_started_s = time.monotonic()
            deliveries = sockets.send_end(
                end_frame,
                config.end_timeout_s,
                give_up=self._give_up_end,
                on_wait=self._end_wait_progress(stats),
            )
            end_wait_s = time.monotonic() - end_wait_started_s
            if self._metadata is not None:
                self._metadata.flush()
            for publisher in (self._preview, self._metadata):
                if publisher is not None:
                    publisher.publish(end_frame)
            end_given_up_by = None
            if not all(delivery.delivered for delivery in deliveries):
                end_given_up_by = self._give_up_reason or "end-timeout"
            summary = stats.summary(
                endpoints=tuple(config.endpoints),
                target_rate_hz=config.rate_hz,
                pool_size=len(pool),
                repeated_images=self.frame_reuse.repeated_images,
                end_delivered=tuple(delivery.delivered for delivery in deliveries),
                images_lost_in_queue=sum(delivery.images_lost for delivery in deliveries),
                writer_disconnects=tuple(sockets.writer_disconnects),
                images_lost_on_disconnect=sum(sockets.images_lost_on_disconnect),
                end_wait_s=end_wait_s,
                end_given_up_by=end_given_up_by,
                stopped_by=self._stop_reason,
                preview_messages=self._preview.messages_sent if self._preview else 0,
                metadata_messages=self._metadata.messages_sent if self._metadata else 0,
            )
        finally:
            delivered = any(delivery.delivered for delivery in deliveries)
            self._close(linger_s=config.end_timeout_s if delivered else 0.0)
        return summary

    def _end_wait_progress(self, stats: StreamStats) -> Callable[[int], None] | None:
        """While the end waits for the writers: progress with the images still queued, at
        the progress interval."""
        on_progress = self.on_progress
        if on_progress is None:
            return None
        interval_s = self.config.progress_interval_s
        next_progress_s = [time.perf_counter()]

        def report(images_queued: int) -> None:
            now = time.perf_counter()
            if now >= next_progress_s[0]:
                next_progress_s[0] = now + interval_s
                progress = stats.progress(now)
                on_progress(dataclasses.replace(progress, images_queued_at_end=images_queued))

        return report

    def _send_images(self, assembler: Assembler, stats: StreamStats) -> None:
        assert self._sockets is not None
        sockets, preview, metadata = self._sockets, self._preview, self._metadata
        on_image_sent = self.on_image_sent
        n_sockets = len(sockets)
        images_per_file = self.source.images_per_file()
        pool_size = len(assembler)
        image_fields = self.source.image_fields
        clock = time.perf_counter
        pacer = Pacer(self.config.rate_hz, clock=clock, stop=self._stop)
        paced = self.config.rate_hz is not None
        on_slow, max_lag_s = self.config.on_slow, self.config.max_lag_s
        send_timeout_s = self.config.effective_send_timeout_s
        progress_interval = self.config.progress_interval_s
        next_progress = pacer.start() + progress_interval
        for image_id in range(self.number_of_images):
            pacer.wait_for(image_id)
            if self._stop.is_set():
                break
            fields = image_fields(image_id)
            socket_index = image_socket_index(image_id, images_per_file, n_sockets)
            wait_s = None
            if paced:
                wait_s = schedule_wait_s(
                    on_slow,
                    due_s=pacer.deadline(image_id),
                    next_due_s=pacer.deadline(image_id + 1),
                    now_s=clock(),
                    max_lag_s=max_lag_s,
                    send_timeout_s=send_timeout_s,
                )
            outcome, tracker, buffer = sockets.send_image(
                socket_index,
                partial(assembler.assemble, fields, image_id % pool_size),
                schedule_wait_s=wait_s,
            )
            assembler.sent(tracker)
            if outcome is SendOutcome.CANCELLED:
                break
            now = clock()
            if image_id == 0:
                pacer.start(now)  # the first send warms up ZeroMQ's zero-copy machinery
            if outcome is SendOutcome.DROPPED or buffer is None:
                stats.record_dropped()
            else:
                lag_s = now - pacer.deadline(image_id) if paced else 0.0
                stats.record_sent(now, len(buffer), socket_index, lag_s)
                if outcome is SendOutcome.SENT_AFTER_WAIT:
                    stats.record_blocked()
                if preview is not None:
                    preview.offer_image(now, buffer)
                if metadata is not None:
                    metadata.add_image(now, assembler.last_image_map())
                if on_image_sent is not None:
                    on_image_sent(image_id)
            if self.on_progress is not None and now >= next_progress:
                next_progress = now + progress_interval
                self.on_progress(stats.progress(now))
