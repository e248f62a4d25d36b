"""Issue 9: the default ``catch-up`` policy against writers that pause, on real loopback sockets.

A writer that stops reading for a while (scheduling jitter, a page-cache flush) must cost no
image at default settings: the images wait, then go back to back until the stream is on
schedule again. Only a writer that stays behind for longer than the lag budget loses images,
and then they are counted and the end message says how many the detector collected.

The writers here read a start message and one image, then stop reading for ``pause_s`` (the
behaviour under test, hence a plain sleep), then read everything. Their sockets keep little
in flight (receive queue 2, a 64 kB kernel buffer) and the frames are 512 × 512 (~100 kB), so
a pause outlasts what the sockets hold and the policy decides what happens.
"""

from __future__ import annotations

import time

import pytest

from jfsim.protocol import decode
from jfsim.stream import DEFAULT_MAX_LAG_S, OnSlow, StreamConfig
from jfsim.stream.streamer import schedule_wait_s

LARGE_FRAME = (512, 512)
RATE_HZ = 1000.0
#: How much later than its budget an image may still go out: the budget bounds the waits for
#: a writer, but the sending thread itself can be scheduled late on a loaded machine (a late
#: image that finds room is sent, not dropped). Far below the pauses the tests make.
SCHEDULING_SLACK_MS = 400.0
SCHEDULING_SLACK_S = SCHEDULING_SLACK_MS / 1e3


def _paused_writer(connect, endpoint: str, pause_s: float) -> list[int]:
    """Read start and one image, stop reading for ``pause_s``, then read up to the end message;
    returns the image ids in arrival order (the end message's ``images_collected`` last)."""
    receiver = connect(endpoint, rcvhwm=2, rcvbuf_bytes=65536)
    frames = [receiver.receive(timeout_s=60.0), receiver.receive(timeout_s=60.0)]
    time.sleep(pause_s)  # the stall under test, not a wait for an event
    while b"\x64type\x63end" not in frames[-1][:32]:
        frames.append(receiver.receive(timeout_s=60.0))
    messages = [decode(frame) for frame in frames]
    assert messages[0].type == "start" and messages[-1].type == "end"
    return [m["image_id"] for m in messages[1:-1]] + [messages[-1]["images_collected"]]


def _stream_into_paused_writer(
    synthetic_source, start_stream, connect, *, n_images: int, pause_s: float, **config
):
    """Stream ``n_images`` large frames at 1 kHz through a 2-image send queue into a writer
    that pauses for ``pause_s``; returns the summary and what the writer received."""
    stream, (endpoint,) = start_stream(
        synthetic_source(3, shape=LARGE_FRAME),
        number_of_images=n_images,
        rate_hz=RATE_HZ,
        sndhwm=2,
        **config,
    )
    received = _paused_writer(connect, endpoint, pause_s=pause_s)
    return stream.result(timeout_s=120.0), received


def test_defaults_are_catch_up_with_a_one_second_budget():
    config = StreamConfig()
    assert config.on_slow is OnSlow.CATCH_UP
    assert config.max_lag_s == DEFAULT_MAX_LAG_S == 1.0
    assert config.sndhwm == 250


@pytest.mark.parametrize(
    ("on_slow", "now_s", "expected"),
    [
        (OnSlow.CATCH_UP, 10.0, 1.0),  # on time: may wait the whole budget
        (OnSlow.CATCH_UP, 10.75, 0.25),  # late: what is left of the budget
        (OnSlow.CATCH_UP, 11.5, -0.5),  # beyond the budget: no wait at all
        (OnSlow.DROP, 10.0, 0.0005),  # until the next image is due
        (OnSlow.BLOCK, 10.0, None),  # the send timeout
    ],
)
def test_schedule_wait_per_policy(on_slow, now_s, expected):
    wait = schedule_wait_s(
        on_slow, due_s=10.0, next_due_s=10.0005, now_s=now_s, max_lag_s=1.0, send_timeout_s=1.0
    )
    assert wait == (None if expected is None else pytest.approx(expected))


def test_drop_waits_the_send_timeout_when_the_next_image_is_further_away():
    """At 0.5 Hz the next image is 2 s away: ``drop`` waits the 1 s send timeout instead."""
    wait = schedule_wait_s(
        OnSlow.DROP, due_s=10.0, next_due_s=12.0, now_s=10.0, max_lag_s=1.0, send_timeout_s=1.0
    )
    assert wait is None


def test_a_writer_pausing_200ms_loses_nothing_at_default_settings(
    synthetic_source, start_stream, connect
):
    """Every option at its default (2 kHz, catch-up, 1 s budget, a queue of 250)."""
    defaults = StreamConfig()
    stream, (endpoint,) = start_stream(
        synthetic_source(8), number_of_images=1000, rate_hz=defaults.rate_hz
    )
    received = _paused_writer(connect, endpoint, pause_s=0.2)
    summary = stream.result(timeout_s=120.0)

    assert summary.images_dropped == 0 and summary.images_sent == 1000
    assert received == [*range(1000), 1000]
    assert summary.max_lag_ms <= defaults.max_lag_s * 1e3 + SCHEDULING_SLACK_MS


@pytest.mark.parametrize("on_slow", [OnSlow.CATCH_UP, OnSlow.DROP])
def test_a_pause_longer_than_the_sockets_hold_costs_no_image_with_catch_up(
    synthetic_source, start_stream, connect, on_slow
):
    """200 ms of pause is ~200 images at 1 kHz where the sockets hold a few dozen: catch-up
    (default) makes them wait and sends them late, the old ``drop`` loses them."""
    n_images = 600
    summary, received = _stream_into_paused_writer(
        synthetic_source, start_stream, connect, n_images=n_images, pause_s=0.2, on_slow=on_slow
    )

    assert received[-1] == n_images  # the detector collected every image
    assert summary.images_sent + summary.images_dropped == n_images
    assert received[:-1] == sorted(received[:-1]) and len(received) - 1 == summary.images_sent
    if on_slow is OnSlow.DROP:
        assert summary.images_dropped > 0
        return
    assert summary.images_dropped == 0
    assert summary.sends_blocked > 0
    # the pause really made images late (the queue could not absorb it) ...
    assert summary.max_lag_ms > 50.0
    # ... and no image went out later than the budget allows (plus scheduling slack)
    assert summary.max_lag_ms <= DEFAULT_MAX_LAG_S * 1e3 + SCHEDULING_SLACK_MS
    on_time_s = (n_images - 1) / RATE_HZ
    assert summary.duration_s <= on_time_s + DEFAULT_MAX_LAG_S + SCHEDULING_SLACK_S


def test_a_writer_stalled_beyond_the_budget_loses_images_counted_and_the_stream_ends_on_time(
    synthetic_source, start_stream, connect
):
    n_images, max_lag_s = 1500, 0.1
    summary, received = _stream_into_paused_writer(
        synthetic_source, start_stream, connect, n_images=n_images, pause_s=0.8, max_lag_s=max_lag_s
    )

    assert summary.images_dropped > 0
    assert summary.images_sent + summary.images_dropped == n_images
    assert received[-1] == n_images  # images_collected: the dropped ones were collected
    ids = received[:-1]
    assert len(ids) == summary.images_sent and ids == sorted(ids)
    assert ids[-1] == n_images - 1  # caught up: the stream's last image arrived
    # images are never sent more than the budget late, so the stream ends on time
    assert summary.max_lag_ms <= max_lag_s * 1e3 + SCHEDULING_SLACK_MS
    assert summary.duration_s <= (n_images - 1) / RATE_HZ + max_lag_s + SCHEDULING_SLACK_S


def test_catch_up_at_rate_max_drops_after_the_send_timeout(synthetic_source, start_stream, connect):
    """Unpaced there is no schedule to catch up: a vanished writer costs one send timeout."""
    stream, (endpoint,) = start_stream(
        synthetic_source(2, shape=LARGE_FRAME),
        number_of_images=3000,
        sndhwm=2,
        send_timeout_s=0.2,
        end_timeout_s=0.3,
    )
    receiver = connect(endpoint, rcvhwm=2, rcvbuf_bytes=65536)
    receiver.receive()
    receiver.receive()
    receiver.close()
    summary = stream.result(timeout_s=60.0)

    assert summary.images_dropped > 0
    assert summary.images_sent + summary.images_dropped == 3000
    assert summary.max_lag_ms == 0.0  # unpaced: no schedule to be behind
