"""Counting what a stream did: images sent, dropped and blocked, bytes, and the gaps between sends.

Gaps go into a logarithmic histogram (0.5 % wide bins from 1 µs to 1000 s) so that a stream
of any length has a p99 in constant memory, and recording a send costs a few arithmetic
operations in the send loop.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["GapHistogram", "StreamProgress", "StreamStats", "StreamSummary"]


class GapHistogram:
    """Gaps between consecutive sends; exact mean and max, percentiles to 0.5 %."""

    MIN_GAP_S = 1e-6
    BINS_PER_DECADE = 460  # 10 ** (1 / 460) = 1.005
    DECADES = 9

    def __init__(self) -> None:
        self._counts = np.zeros(self.BINS_PER_DECADE * self.DECADES + 2, dtype=np.int64)
        self._scale = self.BINS_PER_DECADE / math.log(10.0)
        self._log_min = math.log(self.MIN_GAP_S)
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0

    def add(self, gap_s: float) -> None:
        self.count += 1
        self.total_s += gap_s
        if gap_s > self.max_s:
            self.max_s = gap_s
        if gap_s <= self.MIN_GAP_S:
            self._counts[0] += 1
            return
        index = int((math.log(gap_s) - self._log_min) * self._scale) + 1
        self._counts[min(index, len(self._counts) - 1)] += 1

    @property
    def mean_s(self) -> float:
        return self.total_s / self.count if self.count else 0.0

    def percentile_s(self, percent: float) -> float:
        """Upper edge of the bin holding the given percentile (0 when there are no gaps)."""
        if self.count == 0:
            return 0.0
        rank = math.ceil(self.count * percent / 100.0)
        index = int(np.searchsorted(np.cumsum(self._counts), max(rank, 1)))
        if index == 0:
            return self.MIN_GAP_S
        if index >= len(self._counts) - 1:
            return self.max_s
        upper = math.exp(self._log_min + index / self._scale)
        return min(upper, self.max_s)


@dataclass(frozen=True, slots=True)
class StreamProgress:
    """A snapshot for a live progress line."""

    images_done: int
    images_total: int
    images_sent: int
    images_dropped: int
    elapsed_s: float
    rate_hz: float
    bytes_per_s: float
    #: After the last image: images that ZeroMQ still holds for the writers (None before).
    images_queued_at_end: int | None = None


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """What a finished (or stopped) stream did; ``to_dict`` is the ``--json`` output."""

    endpoints: tuple[str, ...]
    images_requested: int
    images_sent: int
    images_dropped: int
    sends_blocked: int
    bytes_sent: int
    duration_s: float
    target_rate_hz: float | None
    achieved_rate_hz: float
    mean_gap_ms: float
    p99_gap_ms: float
    max_gap_ms: float
    gbytes_per_s: float
    pool_size: int
    images_per_socket: tuple[int, ...]
    end_delivered: tuple[bool, ...]
    stopped_by: str | None = None
    preview_messages: int = 0
    metadata_messages: int = 0
    repeated_images: int = 0
    max_lag_ms: float = 0.0
    #: Images still queued for a writer when the end wait gave up: ZeroMQ discarded them.
    images_lost_in_queue: int = 0
    #: Per socket: writers that disconnected during the series (their queue is discarded).
    writer_disconnects: tuple[int, ...] = ()
    #: Images still queued for those writers when they left (ZeroMQ discards them): an
    #: estimate (``jfsim.stream.pusher``).
    images_lost_on_disconnect: int = 0
    #: From the last image until the end message and the images before it had left (or the
    #: wait gave up).
    end_wait_s: float = 0.0
    #: Why the end wait gave up: "end-timeout" (a writer took nothing for --end-timeout), a
    #: stop request ("SIGINT"), or None when every socket delivered.
    end_given_up_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["endpoints"] = list(self.endpoints)
        document["images_per_socket"] = list(self.images_per_socket)
        document["end_delivered"] = list(self.end_delivered)
        document["writer_disconnects"] = list(self.writer_disconnects)
        return document


class StreamStats:
    """Mutable counters filled by the send loop; ``summary`` freezes them."""

    def __init__(self, n_sockets: int, images_total: int) -> None:
        self.images_total = images_total
        self.images_sent = 0
        self.images_dropped = 0
        self.sends_blocked = 0
        self.bytes_sent = 0
        self.images_per_socket = [0] * n_sockets
        self.gaps = GapHistogram()
        self.first_send_s: float | None = None
        self.last_send_s: float | None = None
        self.max_lag_s = 0.0

    def record_sent(
        self, now_s: float, n_bytes: int, socket_index: int, lag_s: float = 0.0
    ) -> None:
        """One image queued at ``now_s``, ``lag_s`` behind its slot in the schedule."""
        if self.last_send_s is None:
            self.first_send_s = now_s
        else:
            self.gaps.add(now_s - self.last_send_s)
        self.last_send_s = now_s
        self.images_sent += 1
        self.bytes_sent += n_bytes
        self.images_per_socket[socket_index] += 1
        if lag_s > self.max_lag_s:
            self.max_lag_s = lag_s

    def record_dropped(self) -> None:
        self.images_dropped += 1

    def record_blocked(self) -> None:
        self.sends_blocked += 1

    @property
    def duration_s(self) -> float:
        if self.first_send_s is None or self.last_send_s is None:
            return 0.0
        return self.last_send_s - self.first_send_s

    @property
    def achieved_rate_hz(self) -> float:
        """Sends per second between the first and the last send ((n - 1) intervals)."""
        duration = self.duration_s
        return (self.images_sent - 1) / duration if duration > 0 else 0.0

    def progress(self, now_s: float) -> StreamProgress:
        elapsed = now_s - self.first_send_s if self.first_send_s is not None else 0.0
        return StreamProgress(
            images_done=self.images_sent + self.images_dropped,
            images_total=self.images_total,
            images_sent=self.images_sent,
            images_dropped=self.images_dropped,
            elapsed_s=elapsed,
            rate_hz=self.images_sent / elapsed if elapsed > 0 else 0.0,
            bytes_per_s=self.bytes_sent / elapsed if elapsed > 0 else 0.0,
        )

    def summary(self, **context: Any) -> StreamSummary:
        duration = self.duration_s
        return StreamSummary(
            images_requested=self.images_total,
            images_sent=self.images_sent,
            images_dropped=self.images_dropped,
            sends_blocked=self.sends_blocked,
            bytes_sent=self.bytes_sent,
            duration_s=duration,
            achieved_rate_hz=self.achieved_rate_hz,
            mean_gap_ms=self.gaps.mean_s * 1e3,
            p99_gap_ms=self.gaps.percentile_s(99.0) * 1e3,
            max_gap_ms=self.gaps.max_s * 1e3,
            gbytes_per_s=self.bytes_sent / duration / 1e9 if duration > 0 else 0.0,
            images_per_socket=tuple(self.images_per_socket),
            max_lag_ms=self.max_lag_s * 1e3,
            **context,
        )
