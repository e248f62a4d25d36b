"""One data collection: the experiment a ``/start`` describes, streamed and accounted for.

A collection runs in its own thread: render (or reuse) the frame pool, bind the image
sockets, send start, images and end with ``jfsim.stream.Streamer`` (as a library), then
wait for the writers to announce their files. It moves the broker's state: Busy while it
prepares, Measuring from the first image sent, then Idle (with a warning if images were
dropped or files are missing) or Error (with the reason, e.g. no writer connected).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from jfjoch_client.models import MeasurementStatistics

from jfsim.errors import JfsimError
from jfsim.experiment import Experiment, RotationScan
from jfsim.serve.image_buffer import ImageBuffer
from jfsim.serve.plots import FrameMetrics, SeriesView
from jfsim.serve.source import BrokerSource
from jfsim.serve.state import BrokerState, StateMachine
from jfsim.stream import OnSlow, StreamConfig, Streamer, StreamError, StreamProgress, StreamSummary
from jfsim.units import rad_to_deg

__all__ = ["Collection", "StreamOptions"]

log = logging.getLogger(__name__)

CANCELLED = "cancelled"
SHUTDOWN = "shutdown"
#: Waits for the writers are cut into slices so that a shutdown is seen promptly.
WAIT_SLICE_S = 0.1


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How the service streams every series (``jfsim serve`` options).

    ``rate_hz`` None paces each series at its own frame time (``image_time_us``), as a
    detector would; ``unpaced`` sends as fast as the transport takes it.
    """

    endpoints: tuple[str, ...] = ("tcp://127.0.0.1:5500",)
    rate_hz: float | None = None
    unpaced: bool = False
    pool_size: int = 32
    sndhwm: int = 100
    on_slow: OnSlow = OnSlow.DROP
    start_timeout_s: float = 5.0
    end_timeout_s: float = 5.0
    writer_timeout_s: float = 30.0
    device: str = "auto"
    seed: int = 1

    def stream_config(self, **per_series: Any) -> StreamConfig:
        """The streamer's settings from these options, with ``per_series`` (a series'
        rate, its preview and metadata sockets) added or replacing them; the streamer's
        own checks raise ``JfsimError``."""
        options: dict[str, Any] = {
            "endpoints": self.endpoints,
            "rate_hz": self.rate_hz,
            "pool_size": self.pool_size,
            "sndhwm": self.sndhwm,
            "on_slow": self.on_slow,
            "start_timeout_s": self.start_timeout_s,
            "end_timeout_s": self.end_timeout_s,
        }
        return StreamConfig(**(options | per_series))


class Collection:
    """One series from ``/start`` to Idle or Error; ``start()`` runs it in a thread."""

    def __init__(
        self,
        source: BrokerSource,
        stream_config: StreamConfig,
        *,
        state: StateMachine,
        buffer: ImageBuffer,
        writes_files: bool,
        writer_timeout_s: float | None,
        tokens: tuple[str, ...] = (),
    ) -> None:
        self.source = source
        self.experiment: Experiment = source.experiment
        self.n_images = source.default_number_of_images()
        self.tokens = tokens
        self.first_image_at_s: float | None = None
        self.summary: StreamSummary | None = None
        self.error: str | None = None
        self.outcome: str | None = None  # the message left beside Idle or Error
        self.outcome_state: BrokerState | None = None  # Idle or Error once finished
        self.metrics: FrameMetrics | None = None
        self.images_sent = 0
        self.images_dropped = 0
        self.max_image_sent = -1
        self._state = state
        self._buffer = buffer
        self._sent = np.zeros(self.n_images, dtype=bool)
        self._writes_files = writes_files
        self._writer_timeout_s = writer_timeout_s
        self._files: dict[int, int] = {}  # file number -> images, as the writers announced
        self._files_changed = threading.Condition()
        self._stop_reason: str | None = None
        self.streamer = Streamer(
            stream_config, source, on_progress=self._progress, on_image_sent=self._image_sent
        )
        self._thread = threading.Thread(target=self._run, name="jfsim-serve-collection")

    # ---------------------------------------------------------------- control
    def start(self) -> None:
        self._thread.start()

    def stop(self, reason: str = CANCELLED) -> None:
        """End early (``/cancel``, shutdown): no more images, then the end message.

        Only sets flags (no lock taken), so a signal handler may call it. A series that
        has already finished is left as it is."""
        if self.outcome_state is not None:
            return
        if self._stop_reason is None:
            self._stop_reason = reason
        self.streamer.request_stop(reason)

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the thread; True when it has finished."""
        if self._thread.ident is not None:
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def cancelled(self) -> bool:
        return self._stop_reason is not None

    # ---------------------------------------------------------------- hooks
    def _image_sent(self, image_id: int) -> None:
        """The streamer queued image ``image_id``: a few microseconds, on the sending path."""
        self._sent[image_id] = True
        self.images_sent += 1
        self.max_image_sent = image_id
        self._buffer.record(image_id)
        if self.first_image_at_s is None:
            self.first_image_at_s = time.monotonic()
            self._state.move(BrokerState.MEASURING)

    def _progress(self, progress: StreamProgress) -> None:
        self.images_dropped = progress.images_dropped

    def file_written(self, notification: dict[str, Any]) -> None:
        """A writer announced a closed file; kept when it belongs to this series."""
        dataset = self.experiment.dataset
        if notification.get("run_number") != dataset.series_id:
            return
        if notification.get("run_name") != dataset.run_name:
            return
        number, images = notification.get("file_number"), notification.get("nimages")
        if isinstance(number, int) and isinstance(images, int):
            with self._files_changed:
                self._files[number] = images
                self._files_changed.notify_all()

    # ---------------------------------------------------------------- the thread
    def _run(self) -> None:
        try:
            pool = self.streamer.prepare()
            self.metrics = self.source.metrics
            self._buffer.begin(
                self.source.start_message(self.n_images), pool, self.source.image_fields
            )
            self.streamer.bind()
            self.summary = self.streamer.run()
        except StreamError as error:
            if self.cancelled:  # stopped before the start message went out
                self._finish(BrokerState.IDLE, f"{self._stop_reason} before the first image")
            else:
                self._finish(BrokerState.ERROR, str(error))
            return
        except JfsimError as error:
            self._finish(BrokerState.ERROR, str(error))
            return
        except Exception as error:  # a bug: keep the service alive and say so
            log.exception("collection failed")
            self._finish(BrokerState.ERROR, f"internal error in jfsim: {error!r}")
            return
        self.images_dropped = self.summary.images_dropped
        announced, expected = self._await_writer_files()
        if expected and not announced and self._stop_reason != SHUTDOWN:
            self._finish(
                BrokerState.ERROR,
                f"the writers announced none of the {expected} data files within "
                f"{self._writer_timeout_s:g} s: nothing was written; see the writer's log (a "
                "file of this prefix may exist already)",
            )
            return
        missing_files = None
        if announced < expected:
            waited = (
                "before the shutdown"
                if self._stop_reason == SHUTDOWN
                else f"within {self._writer_timeout_s:g} s"
            )
            missing_files = f"the writers announced {announced} of {expected} data files {waited}"
        message, problems = self._warnings(missing_files)
        self._finish(BrokerState.IDLE, message, "warning" if problems else "info")

    def _expected_files(self) -> set[int]:
        images_per_file = max(1, self.source.images_per_file())
        if self.experiment.dataset.file_format == "integrated":
            return {0} if self.images_sent else set()
        return set((np.flatnonzero(self._sent) // images_per_file).tolist())

    def _await_writer_files(self) -> tuple[int, int]:
        """Wait until the writers announced every file with images: (announced, expected)
        data files; (0, 0) when the writers' files are not followed."""
        if not self._writes_files or self._writer_timeout_s is None:
            return 0, 0
        expected = self._expected_files()
        deadline = time.monotonic() + self._writer_timeout_s
        with self._files_changed:
            while not expected <= set(self._files) and time.monotonic() < deadline:
                if self._stop_reason == SHUTDOWN:
                    break
                self._files_changed.wait(min(WAIT_SLICE_S, deadline - time.monotonic()))
            announced = len(expected & set(self._files))
        return announced, len(expected)

    def _warnings(self, missing_files: str | None) -> tuple[str | None, bool]:
        """The series' notes, and whether any is a problem (a cancel alone is not)."""
        summary = self.summary
        assert summary is not None
        notes = []
        if summary.images_dropped:
            notes.append(f"{summary.images_dropped} images dropped (a writer did not keep up)")
        if summary.images_lost_in_queue:
            notes.append(
                f"{summary.images_lost_in_queue} images lost in the send queue (a writer took "
                "nothing for --end-timeout)"
            )
        if any(summary.writer_disconnects):
            notes.append(
                f"a writer disconnected during the series (about "
                f"{summary.images_lost_on_disconnect} images lost with it)"
            )
        if not all(summary.end_delivered):
            notes.append("the end message did not reach every writer")
        if missing_files:
            notes.append(missing_files)
        problems = bool(notes)
        if self.cancelled:
            notes.insert(
                0, f"{self._stop_reason} after {summary.images_sent} of {self.n_images} images"
            )
        return "; ".join(notes) or None, problems

    def _finish(self, state: BrokerState, message: str | None, severity: str = "info") -> None:
        self.outcome, self.outcome_state = message, state
        if state is BrokerState.ERROR:
            self.error = message
            log.error("series %r: %s", self.experiment.dataset.run_name, message)
            self._state.move(state, message, "error")
            return
        log.info(
            "series %r: %d of %d images sent, %d dropped%s",
            self.experiment.dataset.run_name,
            self.images_sent,
            self.n_images,
            self.images_dropped,
            f" ({message})" if message else "",
        )
        self._state.move(state, message, severity)

    # ---------------------------------------------------------------- reports
    @property
    def images_written(self) -> int | None:
        """Images in the files the writers announced (None without writer notifications)."""
        if not self._writes_files or self._writer_timeout_s is None:
            return None
        with self._files_changed:
            return sum(self._files.values())

    def progress(self) -> float:
        return min(1.0, self.images_sent / self.n_images) if self.n_images else 1.0

    def view(self) -> SeriesView:
        """The images sent so far and their frame metrics (for ``/preview/plot``)."""
        if self.metrics is None:
            raise JfsimError("the frame pool is still being rendered")
        scan = self.experiment.scan
        rotation = scan if isinstance(scan, RotationScan) else None
        return SeriesView(
            sent=self._sent[: self.max_image_sent + 1].copy(),
            metrics=self.metrics,
            rotation_start_deg=rad_to_deg(rotation.start_rad) if rotation else None,
            rotation_step_deg=rad_to_deg(rotation.step_rad) if rotation else None,
        )

    def statistics(self) -> MeasurementStatistics:
        """``/statistics/data_collection``: what this series did so far."""
        dataset = self.experiment.dataset
        detector = self.experiment.detector
        cell = self.experiment.crystal.unit_cell
        sent = self.images_sent
        values: dict[str, Any] = {
            "file_prefix": dataset.file_prefix,
            "run_number": dataset.series_id,
            "experiment_group": dataset.experiment_group or None,
            "images_expected": self.n_images,
            "images_collected": sent + self.images_dropped,
            "images_sent": sent,
            "images_written": self.images_written,
            "max_image_number_sent": max(self.max_image_sent, 0),
            "collection_efficiency": min(1.0, sent / self.n_images) if self.n_images else 1.0,
            "cancelled": self.cancelled,
            "detector_width": detector.width_pxl,
            "detector_height": detector.height_pxl,
            "detector_pixel_depth": detector.image_dtype.itemsize,
            "unit_cell": " ".join(f"{v:.2f}" for v in cell.as_tuple()),
        }
        if self.metrics is not None:
            view = self.view()
            values["compression_ratio"] = self.metrics.compression_ratio
            if view.sent.any():
                values["indexing_rate"] = float(np.nanmean(view.per_image(self.metrics.indexed)))
                background = self.metrics.pixel_metrics()["bkg_estimate"]
                values["bkg_estimate"] = float(np.nanmean(view.per_image(background)))
        return MeasurementStatistics(**values)

    def row(self) -> dict[str, Any]:
        """One line of the service's summary table."""
        dataset = self.experiment.dataset
        return {
            "run_number": dataset.series_id,
            "file_prefix": dataset.file_prefix,
            "images_expected": self.n_images,
            "images_sent": self.images_sent,
            "images_dropped": self.images_dropped,
            "images_written": self.images_written,
            "state": "error" if self.error else (self._stop_reason or "completed"),
            "message": self.outcome,
        }
