"""When to send image k: an absolute schedule, t_k = t0 + k / rate, so lateness never adds up.

A late image is sent at once and the next one keeps its own slot in the schedule, so a hiccup
shows up as one long gap followed by short ones, not as a permanent shift of the rate. Waiting
sleeps coarsely and spins only for the last ``spin_s`` (default 50 µs): ``time.sleep``
overshoots by 50-100 µs on Linux, and a longer spin would burn a core that the ZeroMQ I/O
thread and the receivers need on a small machine; the schedule keeps the mean rate exact
whatever the jitter.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from jfsim.stream.errors import StreamOptionError

__all__ = ["Pacer", "parse_duration_s", "parse_rate_hz"]

_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(hz|khz|mhz)?\s*$", re.IGNORECASE)
_RATE_UNIT = {None: 1.0, "hz": 1.0, "khz": 1e3, "mhz": 1e6}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|ms|us|µs|min)?\s*$")
_DURATION_UNIT = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "min": 60.0}

#: The last stretch before a deadline is spun rather than slept.
SPIN_S = 0.00005
#: Sleeps are cut into slices of at most this so a stop request is seen quickly at low rates.
MAX_SLEEP_SLICE_S = 0.05


def parse_rate_hz(text: str) -> float | None:
    """Parse ``2kHz``, ``500Hz``, ``2000``, ``1.5kHz`` or ``max``; ``max`` gives ``None``."""
    if text.strip().lower() == "max":
        return None
    match = _RATE.match(text)
    if match is None:
        raise StreamOptionError(
            f"rate {text!r}: not understood; give a number with an optional unit "
            "(2000, 500Hz, 2kHz, 1.5kHz) or 'max'"
        )
    rate_hz = float(match.group(1)) * _RATE_UNIT[(match.group(2) or "").lower() or None]
    if not rate_hz > 0:
        raise StreamOptionError(f"rate {text!r}: must be > 0 (or 'max' for no pacing)")
    return rate_hz


def parse_duration_s(text: str, *, what: str = "duration") -> float:
    """Parse ``1s``, ``500ms``, ``0.25`` (seconds), ``2min`` into seconds (>= 0)."""
    match = _DURATION.match(text)
    if match is None:
        raise StreamOptionError(
            f"{what} {text!r}: not understood; give seconds with an optional unit "
            "(1, 0.5s, 500ms, 2min)"
        )
    return float(match.group(1)) * _DURATION_UNIT[match.group(2)]


class Pacer:
    """Waits for the deadlines t_k = t0 + k / rate_hz (no pacing when ``rate_hz`` is None)."""

    def __init__(
        self,
        rate_hz: float | None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        stop: threading.Event | None = None,
        spin_s: float = SPIN_S,
    ) -> None:
        self.rate_hz = rate_hz
        self.spin_s = spin_s
        self._period_s = 0.0 if rate_hz is None else 1.0 / rate_hz
        self._clock = clock
        self._stop = stop
        self._t0 = 0.0

    def start(self, t0: float | None = None) -> float:
        """Fix t0 (now by default); image 0 is due at t0."""
        self._t0 = self._clock() if t0 is None else t0
        return self._t0

    def deadline(self, k: int) -> float:
        return self._t0 + k * self._period_s

    def wait_for(self, k: int) -> float:
        """Return when image ``k`` is due (at once if late); returns the lateness in seconds."""
        if self.rate_hz is None:
            return 0.0
        due = self._t0 + k * self._period_s
        clock = self._clock
        now = clock()
        while due - now > self.spin_s:
            if self._stop is not None and self._stop.is_set():
                return 0.0
            time.sleep(min(due - now - self.spin_s, MAX_SLEEP_SLICE_S))
            now = clock()
        while now < due:
            now = clock()
        return now - due
