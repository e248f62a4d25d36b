"""Rate and duration parsing, and the absolute schedule of the pacer."""

from __future__ import annotations

import time

import pytest

from jfsim.stream import Pacer, StreamOptionError, parse_duration_s, parse_rate_hz


@pytest.mark.parametrize(
    ("text", "rate_hz"),
    [("2kHz", 2000.0), ("500Hz", 500.0), ("2000", 2000.0), ("1.5kHz", 1500.0),
     ("1.5 khz", 1500.0), ("0.5MHz", 500_000.0), ("max", None), ("MAX", None)],
)  # fmt: skip
def test_rates_are_parsed(text, rate_hz):
    assert parse_rate_hz(text) == rate_hz


@pytest.mark.parametrize("text", ["fast", "2 kHz/s", "-5Hz", "0", "kHz", ""])
def test_bad_rates_are_refused_with_the_input_named(text):
    with pytest.raises(StreamOptionError, match="rate"):
        parse_rate_hz(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("500ms", 0.5), ("0.25", 0.25), ("2min", 120.0), ("250us", 250e-6)],
)
def test_durations_are_parsed(text, seconds):
    assert parse_duration_s(text) == pytest.approx(seconds)


def test_bad_duration_names_the_option():
    with pytest.raises(StreamOptionError, match="--start-timeout 'soon'"):
        parse_duration_s("soon", what="--start-timeout")


class FakeClock:
    """A clock that advances by ``step_s`` at every reading (a spinning loop sees time pass)."""

    def __init__(self, step_s: float) -> None:
        self.now_s = 100.0
        self.step_s = step_s

    def __call__(self) -> float:
        self.now_s += self.step_s
        return self.now_s


def test_deadlines_are_absolute_and_lateness_does_not_accumulate():
    clock = FakeClock(step_s=1e-5)
    pacer = Pacer(1000.0, clock=clock, spin_s=1.0)  # spin everything: no real sleeping
    t0 = pacer.start()
    assert pacer.wait_for(0) == pytest.approx(0.0, abs=2e-5)
    clock.now_s += 0.0105  # a hiccup: 10.5 ms lost after image 0
    late = pacer.wait_for(1)
    assert late == pytest.approx(0.0095, abs=2e-5)
    # images 2..10 were due during the hiccup: sent at once, and 11 is due at t0 + 11 ms
    for k in range(2, 11):
        assert pacer.wait_for(k) >= 0.0
    pacer.wait_for(11)
    assert clock.now_s == pytest.approx(t0 + 0.011, abs=2e-5)
    assert pacer.deadline(2000) == pytest.approx(t0 + 2.0)


def test_max_rate_never_waits():
    clock = FakeClock(step_s=1e-6)
    pacer = Pacer(None, clock=clock)
    pacer.start()
    before = clock.now_s
    for k in range(100):
        assert pacer.wait_for(k) == 0.0
    assert clock.now_s == before


def test_real_clock_keeps_the_mean_rate():
    pacer = Pacer(2000.0)
    t0 = pacer.start()
    for k in range(200):
        assert pacer.wait_for(k) >= 0.0
    elapsed = time.perf_counter() - t0
    assert elapsed >= 199 / 2000.0
