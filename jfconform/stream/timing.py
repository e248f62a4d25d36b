"""When messages arrived: counts, rates and pauses, in constant memory.

Pauses between consecutive messages go into a fixed logarithmic histogram (1 µs … 1000 s,
about 1 % wide bins), so a stream of any length keeps a p99 without storing every gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["ArrivalTimes", "PauseHistogram"]


class PauseHistogram:
    """Pauses in seconds; exact count, mean and max, percentiles to about 1 %."""

    SMALLEST_S = 1e-6
    BINS_PER_DECADE = 230
    DECADES = 9

    def __init__(self) -> None:
        self._bins = [0] * (self.BINS_PER_DECADE * self.DECADES + 2)
        self.count = 0
        self.total_s = 0.0
        self.longest_s = 0.0

    def add(self, pause_s: float) -> None:
        self.count += 1
        self.total_s += pause_s
        self.longest_s = max(self.longest_s, pause_s)
        if pause_s <= self.SMALLEST_S:
            index = 0
        else:
            index = 1 + int(math.log10(pause_s / self.SMALLEST_S) * self.BINS_PER_DECADE)
        self._bins[min(index, len(self._bins) - 1)] += 1

    def percentile_s(self, percent: float) -> float:
        if not self.count:
            return 0.0
        wanted = max(1, math.ceil(self.count * percent / 100.0))
        seen = 0
        for index, n in enumerate(self._bins):
            seen += n
            if seen >= wanted:
                if index == 0:
                    return self.SMALLEST_S
                upper = self.SMALLEST_S * 10 ** (index / self.BINS_PER_DECADE)
                return min(upper, self.longest_s)
        return self.longest_s


@dataclass(slots=True)
class ArrivalTimes:
    """Arrival times (seconds, any monotonic clock) of all messages and of images."""

    pauses: PauseHistogram = field(default_factory=PauseHistogram)
    first_s: float | None = None
    last_s: float | None = None
    first_image_s: float | None = None
    last_image_s: float | None = None
    images: int = 0

    def add(self, now_s: float, is_image: bool) -> float | None:
        """Record one arrival; returns the pause since the previous message (None first)."""
        pause = None
        if self.last_s is not None:
            pause = now_s - self.last_s
            self.pauses.add(pause)
        if self.first_s is None:
            self.first_s = now_s
        self.last_s = now_s
        if is_image:
            if self.first_image_s is None:
                self.first_image_s = now_s
            self.last_image_s = now_s
            self.images += 1
        return pause

    @property
    def image_rate_hz(self) -> float | None:
        """Images per second between the first and the last image (None below 2 images)."""
        if self.images < 2 or self.first_image_s is None or self.last_image_s is None:
            return None
        span = self.last_image_s - self.first_image_s
        return (self.images - 1) / span if span > 0 else math.inf
