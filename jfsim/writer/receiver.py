"""The writer service: a PULL socket connected to the detector, one series after another.

State machine per series: ``idle`` → start → ``acquiring`` → end → ``idle``. A new start
while acquiring closes the open series first (state ``interrupted``); an HTTP cancel closes it
as ``cancelled``; a refused start (unsafe prefix, existing files, a field out of bounds) leaves
``refused`` until the next start, and its images are ignored; a master that cannot be written
ends the series as ``failed``. Malformed messages are counted, logged and skipped: the service
never dies of bad input.

No message may cost much more than its own size: ZeroMQ drops connections that announce a
message above ``max_message_bytes`` (``ZMQ_MAXMSGSIZE``; libzmq does not reconnect after
that, so the service watches for the drop, counts it and connects again), an image message
of an open series larger than that series' uncompressed frame plus
``IMAGE_MESSAGE_SLACK_BYTES`` is refused before it is decoded, and the decoder bounds what it
allocates by the message size.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.utils.monitor

from jfsim.protocol import Message, ProtocolError, decode, message_type
from jfsim.writer import chunks, hdf5_library
from jfsim.writer.errors import WriterError
from jfsim.writer.plan import FileFormat
from jfsim.writer.series_writer import (
    ClosedFile,
    ImageOutcome,
    SeriesState,
    SeriesSummary,
    SeriesWriter,
)
from jfsim.writer.service import LOOPBACK, FileNotifier, Republisher, StatusServer

log = logging.getLogger(__name__)

POLL_INTERVAL_MS = 100
#: Largest message ZeroMQ delivers (``ZMQ_MAXMSGSIZE``): an uncompressed 32-bit frame of the
#: largest detectors (18 M pixels, 72 MB) plus a start message carrying its mask and
#: flatfield uncompressed fits with room to spare.
DEFAULT_MAX_MESSAGE_BYTES = 512 << 20
#: An image message of an open series may exceed its uncompressed frame by this much (the
#: CBOR around it: spots, reflections, profiles).
IMAGE_MESSAGE_SLACK_BYTES = 16 << 20
#: After the detector connection closes, libzmq normally starts reconnecting at once; if it
#: has not within this time (it never does after a message above ZMQ_MAXMSGSIZE), the
#: service connects again itself.
RECONNECT_GRACE_S = 1.0
#: The connection events the service watches on its PULL socket.
_CONNECTION_EVENTS = (
    zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CONNECT_DELAYED
    | zmq.EVENT_CONNECT_RETRIED
    | zmq.EVENT_CONNECTED
)
#: Lists and maps one message may decode into, whatever its size (the decoder's own budget,
#: 16 bytes per message byte, would allow 8 GiB for a 512 MiB message).
MAX_DECODED_BYTES = 256 << 20


@dataclass(frozen=True, slots=True)
class WriterConfig:
    """Options of ``jfsim write`` (jfjoch_writer's names). Port 0 = any free port.

    ``format_override`` (``--format``) wins over the layout a start message names;
    ``default_format`` is used when it names none. ``bind_host`` is where the HTTP,
    republish and notification sockets listen (loopback unless asked otherwise).

    It checks itself when built, so a library user gets the command line's refusals: a
    high-water mark below 1 (ZeroMQ would read 0 as "unlimited", and a slow disk would then
    buffer the whole series in memory), a port outside 0..65535 or a message size limit
    below 1 MiB is a ``WriterError`` naming the option.
    """

    endpoint: str
    root_dir: Path = Path(".")
    http_port: int | None = None
    repub_port: int | None = None
    file_port: int | None = None
    rcv_watermark: int = 100
    repub_watermark: int = 1000
    default_format: FileFormat = FileFormat.LEGACY
    format_override: FileFormat | None = None
    overwrite: bool = False
    bind_host: str = LOOPBACK
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def __post_init__(self) -> None:
        if not self.endpoint:
            raise WriterError("endpoint: empty; give the detector's address, tcp://HOST:PORT")
        for flag, name in (("-w", "rcv_watermark"), ("-W", "repub_watermark")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise WriterError(
                    f"{flag}/{name} {value!r}: a watermark must be at least 1 "
                    "(ZeroMQ would take 0 as unlimited)"
                )
        for flag, name in (("-H", "http_port"), ("-r", "repub_port"), ("-f", "file_port")):
            port = getattr(self, name)
            if port is not None and (
                isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
            ):
                raise WriterError(f"{flag}/{name} {port!r}: a port must be within 0..65535")
        limit = self.max_message_bytes
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1 << 20:
            raise WriterError(
                f"--max-message-size/max_message_bytes {limit!r}: at least 1 MiB (1048576 bytes)"
            )


@dataclass(slots=True)
class ServiceCounters:
    messages: int = 0
    malformed: int = 0
    ignored: int = 0  # images or ends with no open series, unknown message types
    series_written: int = 0
    series_refused: int = 0
    series_failed: int = 0
    images_missing: int = 0
    connection_drops: int = 0  # the detector connection closed (e.g. a message too large)
    errors: int = 0
    last_error: str = ""
    summaries: list[SeriesSummary] = field(default_factory=list)


class WriterService:
    """Receive, write and serve status until ``stop()`` or ``max_series`` series are done.

    Use as a context manager; ``run`` blocks (call ``stop``/``cancel`` from other threads).
    """

    def __init__(self, config: WriterConfig, context: zmq.Context | None = None) -> None:
        self.config = config
        self.root_dir = config.root_dir.resolve()
        if not self.root_dir.is_dir():
            raise WriterError(
                f"root directory {config.root_dir}: not a directory; create it or pass -R DIR"
            )
        # the compiled chunk loop is built or loaded (0.2-0.5 s) now, not as images arrive,
        # and so is the data files' HDF5 instance (a copy of the library, ~10 ms)
        chunks.probe()
        hdf5_library.probe_private()
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.counters = ServiceCounters()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._cancel_requested = threading.Event()
        self._cancel_done = threading.Condition(self._lock)
        self._cancel_generation = 0
        self._series: SeriesWriter | None = None
        self._state = "idle"
        self._refused_prefix = ""
        self._series_image_limit = 0
        self._closed = False
        self.pull = self.context.socket(zmq.PULL)
        self.pull.setsockopt(zmq.RCVHWM, config.rcv_watermark)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.setsockopt(zmq.MAXMSGSIZE, config.max_message_bytes)
        self._drops = self.pull.get_monitor_socket(_CONNECTION_EVENTS)
        self._dropped_at: float | None = None
        self._poller = zmq.Poller()
        self._poller.register(self.pull, zmq.POLLIN)
        self._poller.register(self._drops, zmq.POLLIN)
        self.notifier: FileNotifier | None = None
        self.republisher: Republisher | None = None
        self.http: StatusServer | None = None
        try:
            try:
                self.pull.connect(config.endpoint)
            except zmq.ZMQError as error:
                raise WriterError(
                    f"detector address {config.endpoint!r}: {error}; give it as "
                    "tcp://HOST:PORT, e.g. tcp://dcu-address:5500"
                ) from None
            if config.http_port is not None:
                self.http = StatusServer(
                    config.bind_host, config.http_port, self.status, self.request_cancel
                )
            if config.file_port is not None:
                self.notifier = FileNotifier(self.context, config.bind_host, config.file_port)
            if config.repub_port is not None:
                self.republisher = Republisher(
                    self.context, config.bind_host, config.repub_port, config.repub_watermark
                )
        except WriterError:
            self.close()
            raise

    def __enter__(self) -> WriterService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the open series (as cancelled) and every socket; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._series is not None:
            self._finish_series(None, SeriesState.CANCELLED)
        for part in (self.http, self.notifier, self.republisher):
            if part is not None:
                part.close()
        self.pull.disable_monitor()
        self._drops.close(linger=0)
        self.pull.close()
        if self._own_context:
            self.context.term()

    # ----------------------------------------------------------------- thread-safe controls

    def stop(self) -> None:
        """Ask ``run`` to return after closing the open series (from any thread)."""
        self._stop.set()

    def request_cancel(self, wait_s: float = 0.0) -> dict[str, Any]:
        """Ask the loop to close the open series as cancelled; wait up to ``wait_s``."""
        with self._lock:
            generation = self._cancel_generation
            had_series = self._series is not None
            self._cancel_requested.set()
            if wait_s > 0:
                self._cancel_done.wait_for(
                    lambda: self._cancel_generation > generation, timeout=wait_s
                )
            done = self._cancel_generation > generation
        return {"cancel": "done" if done else "requested", "series_was_open": had_series}

    def status(self) -> dict[str, Any]:
        """The state served at ``GET /status``."""
        with self._lock:
            series = self._series
            status: dict[str, Any] = {
                "state": self._state,
                "file_prefix": self._refused_prefix,
                "series_id": None,
                "series_unique_id": None,
                "images_expected": 0,
                "images_received": 0,
                "images_written": 0,
                "rate_hz": 0.0,
                "messages_received": self.counters.messages,
                "malformed_messages": self.counters.malformed,
                "ignored_messages": self.counters.ignored,
                "series_written": self.counters.series_written,
                "series_refused": self.counters.series_refused,
                "series_failed": self.counters.series_failed,
                "images_missing": self.counters.images_missing,
                "connection_drops": self.counters.connection_drops,
                "errors": self.counters.errors,
                "last_error": self.counters.last_error,
            }
            if series is not None:
                plan = series.plan
                status |= {
                    "file_prefix": str(plan.file_prefix or ""),
                    "series_id": plan.series_id,
                    "series_unique_id": plan.series_unique_id,
                    "file_format": plan.file_format.value,
                    "images_expected": plan.n_images,
                    "images_received": series.counters.received,
                    "images_written": series.counters.written,
                    "duplicates": series.counters.duplicates,
                    "rate_hz": series.current_rate_hz(),
                }
            elif self.counters.summaries:
                last = self.counters.summaries[-1]
                status["last_series"] = last.as_dict()
            return status

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http else None

    # ------------------------------------------------------------------------- the loop

    def run(
        self,
        *,
        max_series: int | None = None,
        timeout_s: float | None = None,
        progress_interval_s: float | None = None,
    ) -> list[SeriesSummary]:
        """Receive until ``stop()``, ``max_series`` finished series or ``timeout_s``.

        With ``progress_interval_s``, an open series logs one progress line that often.
        """
        deadline = time.monotonic() + timeout_s if timeout_s is not None else None
        next_progress_s = time.monotonic() + (progress_interval_s or 0.0)
        first_summary = len(self.counters.summaries)
        while not self._stop.is_set():
            if progress_interval_s and time.monotonic() >= next_progress_s:
                next_progress_s = time.monotonic() + progress_interval_s
                self._log_progress()
            if self._cancel_requested.is_set():
                self._handle_cancel()
            if max_series is not None and len(self.counters.summaries) - first_summary >= (
                max_series
            ):
                break
            if deadline is not None and time.monotonic() > deadline:
                if self._series is not None:
                    log.warning("timeout after %.1f s: closing the open series", timeout_s)
                else:
                    log.warning("timeout after %.1f s: no series is open; stopping", timeout_s)
                break
            ready = dict(self._poller.poll(POLL_INTERVAL_MS))
            if self._drops in ready:
                self._connection_events()
            if self._dropped_at is not None and self.pull not in ready:
                if time.monotonic() - self._dropped_at > RECONNECT_GRACE_S:
                    self._reconnect()
            if self.pull not in ready:
                if self._series is not None:  # idle: data files waiting for their last chunks
                    self._series.close_complete_files(wait=True)
                continue
            frame = self.pull.recv(copy=False).buffer
            self.handle_frame(frame)
        if self._series is not None:
            self._finish_series(None, SeriesState.CANCELLED)
        return self.counters.summaries[first_summary:]

    def _connection_events(self) -> None:
        """Note a closed detector connection; forget it once libzmq reconnects by itself."""
        while self._drops.poll(0):
            event = zmq.utils.monitor.parse_monitor_message(self._drops.recv_multipart())
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self._dropped_at = time.monotonic()
            else:
                self._dropped_at = None

    def _reconnect(self) -> None:
        """The detector connection closed and libzmq did not reconnect: it does not after a
        protocol error (a message above ``ZMQ_MAXMSGSIZE``). Connect again, so one oversized
        message costs that message, not the rest of the run. Only called when nothing is
        waiting to be read (disconnecting drops unread messages)."""
        self._dropped_at = None
        self._count_error(
            f"connection to {self.config.endpoint} dropped and not restored (a message above "
            f"--max-message-size {self.config.max_message_bytes >> 20} MiB?); connecting again"
        )
        with self._lock:
            self.counters.connection_drops += 1
        try:
            self.pull.disconnect(self.config.endpoint)
        except zmq.ZMQError:
            pass  # already gone
        self.pull.connect(self.config.endpoint)

    def _log_progress(self) -> None:
        series = self._series
        if series is not None:
            log.info(
                "series %s: %d/%d images written, %.1f images/s",
                series.plan.series_id,
                series.counters.written,
                series.plan.n_images,
                series.current_rate_hz(),
            )

    def _handle_cancel(self) -> None:
        self._cancel_requested.clear()
        if self._series is not None:
            log.warning("cancel requested over HTTP: closing series files")
            self._finish_series(None, SeriesState.CANCELLED)
        with self._lock:
            self._cancel_generation += 1
            self._cancel_done.notify_all()

    def handle_frame(self, frame: bytes | memoryview) -> None:
        """Decode one received message and act on it; bad input is counted, not raised."""
        self.counters.messages += 1
        if self._series is not None and len(frame) > self._series_image_limit:
            if message_type(frame) == "image":
                self._count_error(
                    f"image message of {len(frame)} bytes skipped undecoded: the open series "
                    f"has {self._series_image_limit}-byte images at most"
                )
                with self._lock:
                    self.counters.malformed += 1
                return
        try:
            message = decode(frame, max_decoded_bytes=MAX_DECODED_BYTES)
        except (
            ProtocolError,
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            RecursionError,
        ) as error:
            # ProtocolError is the decoder's contract; the others guard the service against a
            # decoder bug on hostile bytes (counted the same way, never fatal).
            self._count_error(f"malformed message ({len(frame)} bytes) skipped: {error}")
            with self._lock:
                self.counters.malformed += 1
            return
        if self.republisher is not None:
            self.republisher.forward(frame, control=message.type != "image")
        if message.type == "start":
            self._on_start(message)
        elif message.type == "image":
            self._on_image(message)
        elif message.type == "end":
            self._on_end(message)
        elif message.type == "calibration" and self._series is not None:
            self._series.add_calibration(message)
        else:
            with self._lock:
                self.counters.ignored += 1

    def _count_error(self, problem: str) -> None:
        log.warning("%s", problem)
        with self._lock:
            self.counters.errors += 1
            self.counters.last_error = problem

    def _on_start(self, start: Message) -> None:
        if self._series is not None:
            log.warning(
                "start of a new series while series %s is open: closing it as interrupted",
                self._series.plan.series_id,
            )
            self._finish_series(None, SeriesState.INTERRUPTED)
        try:
            series = SeriesWriter(
                start,
                self.root_dir,
                default_format=self.config.default_format,
                format_override=self.config.format_override,
                overwrite=self.config.overwrite,
                on_file_closed=self._on_file_closed,
            )
        except (WriterError, OSError, MemoryError) as error:
            self._count_error(f"series refused: {error or type(error).__name__}")
            summary = _refused_summary(start, str(error))
            with self._lock:
                self.counters.series_refused += 1
                self.counters.summaries.append(summary)
                self._state = "refused"
                self._refused_prefix = str(start.get("file_prefix", ""))
            log.info("%s", summary.log_line())
            return
        height, width = series.plan.image_shape
        frame_bytes = height * width * series.plan.image_dtype.itemsize
        with self._lock:
            self._series = series
            self._series_image_limit = frame_bytes + IMAGE_MESSAGE_SLACK_BYTES
            self._state = "acquiring"
            self._refused_prefix = ""
        log.info(
            "series %s started: prefix '%s', %d images, layout %s",
            series.plan.series_id,
            series.plan.file_prefix or "",
            series.plan.n_images,
            series.format_choice,
        )

    def _on_image(self, image: Message) -> None:
        series = self._series
        if series is None:
            with self._lock:
                self.counters.ignored += 1
            if self._state != "refused":
                self._count_error(f"image {image.get('image_id')!r} without a start: ignored")
            return
        try:
            outcome = series.add_image(image)
        except (OSError, RuntimeError, ValueError, TypeError, MemoryError) as error:  # h5py
            self._count_error(f"image {image.get('image_id')!r}: write failed: {error}")
            return
        if outcome in (ImageOutcome.REJECTED, ImageOutcome.OUT_OF_RANGE):
            with self._lock:
                self.counters.errors += 1
                self.counters.last_error = series.errors[-1] if series.errors else outcome.value

    def _on_end(self, end: Message) -> None:
        if self._series is None:
            with self._lock:
                self.counters.ignored += 1
                if self._state == "refused":
                    self._state = "idle"
            return
        open_id, end_id = self._series.plan.series_id, end.get("series_id")
        if open_id is not None and isinstance(end_id, int) and end_id != open_id:
            self._count_error(f"end of series {end_id} while series {open_id} is open: ignored")
            return
        self._finish_series(end, SeriesState.COMPLETED)

    def _finish_series(self, end: Message | None, state: SeriesState) -> None:
        series = self._series
        assert series is not None
        summary = series.finish(end, state)
        with self._lock:
            self._series = None
            self._state = "idle"
            self.counters.summaries.append(summary)
            self.counters.images_missing += summary.images_missing
            if summary.state == SeriesState.COMPLETED.value:
                self.counters.series_written += 1
            elif summary.state == SeriesState.FAILED.value:
                self.counters.series_failed += 1
                self.counters.errors += 1
                self.counters.last_error = summary.errors[-1] if summary.errors else "failed"
        if summary.complete:
            log.info("%s", summary.log_line())
        else:
            log.warning("%s", summary.log_line())

    def _on_file_closed(self, closed: ClosedFile) -> None:
        if self.notifier is not None:
            self.notifier.publish(closed)


def _refused_summary(start: Message, problem: str) -> SeriesSummary:
    series_id = start.get("series_id")
    unique_id = start.get("series_unique_id")
    n_images = start.get("number_of_images")
    return SeriesSummary(
        file_prefix=str(start.get("file_prefix", "")),
        series_id=series_id if isinstance(series_id, int) else None,
        series_unique_id=unique_id if isinstance(unique_id, str) else None,
        file_format=str(start.get("file_format", "")),
        state="refused",
        images_expected=n_images if isinstance(n_images, int) else 0,
        images_received=0,
        images_written=0,
        duplicates=0,
        out_of_range=0,
        rejected=0,
        files=(),
        elapsed_s=0.0,
        rate_hz=0.0,
        errors=(problem,),
        problems=1,
    )
