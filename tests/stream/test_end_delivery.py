"""Issue 9: the end of a series waits for what ZeroMQ still holds, on real loopback sockets.

A slow writer with a full send queue must still get every image and the end message, however
long it takes to drain, as long as it keeps reading; a writer that stops reading for good
costs the images still queued, and the stream says how many (it used to report the end as
delivered and let ZeroMQ discard the queue when the socket's linger ran out).

The writers here keep little in flight (receive queue 2, a 64 kB kernel buffer) and the frames
are 512 × 512 (~100 kB), so the send queue, not the kernel, holds the backlog at the end.
"""

from __future__ import annotations

import threading
import time

import zmq

from jfsim.protocol import decode
from jfsim.stream import OnSlow, StreamProgress
from jfsim.stream.backlog import PRUNE_MIN, SendBacklog

LARGE_FRAME = (512, 512)
#: The slow writer's pause after each message: the behaviour under test, hence a sleep.
SLOW_WRITER_PAUSE_S = 0.02
#: Far longer than one slow-writer gap, far shorter than draining the queue at the end.
END_TIMEOUT_S = 1.0


def _read_until_end(receiver, *, pause_s: float = 0.0) -> tuple[list[int], bool]:
    """Image ids in arrival order and whether the end message came (nothing for 5 s: no)."""
    ids: list[int] = []
    while receiver.socket.poll(5000):
        message = decode(receiver.socket.recv())
        if message.type == "end":
            return ids, True
        if message.type == "image":
            ids.append(message["image_id"])
            time.sleep(pause_s)
    return ids, False


def test_a_slow_writer_gets_every_queued_image_and_the_end(synthetic_source, start_stream, connect):
    """100 queued images at 20 ms each outlast --end-timeout 1 s twice over: the wait goes
    on because the writer keeps taking them."""
    queued_at_end: list[int] = []

    def watch(progress: StreamProgress) -> None:
        if progress.images_queued_at_end is not None:
            queued_at_end.append(progress.images_queued_at_end)

    n_images = 150
    stream, (endpoint,) = start_stream(
        synthetic_source(3, shape=LARGE_FRAME),
        on_progress=watch,
        number_of_images=n_images,
        sndhwm=100,
        on_slow=OnSlow.BLOCK,
        end_timeout_s=END_TIMEOUT_S,
        progress_interval_s=0.0,
    )
    receiver = connect(endpoint, rcvhwm=2, rcvbuf_bytes=65536)
    ids, end_arrived = _read_until_end(receiver, pause_s=SLOW_WRITER_PAUSE_S)
    summary = stream.result(timeout_s=120.0)

    assert ids == list(range(n_images)) and end_arrived
    assert summary.end_delivered == (True,)
    assert summary.images_lost_in_queue == 0 and summary.end_given_up_by is None
    # the queue really held a backlog at the end, longer to drain than the timeout
    assert max(queued_at_end) >= 50
    assert summary.end_wait_s > END_TIMEOUT_S


def test_a_writer_that_stops_reading_costs_the_queued_images_counted(
    synthetic_source, start_stream, connect
):
    """The writer reads start and one image, then nothing until the stream has given up:
    exactly the images the stream did not count as lost arrive afterwards, and no end."""
    n_images = 200
    stream, (endpoint,) = start_stream(
        synthetic_source(3, shape=LARGE_FRAME),
        number_of_images=n_images,
        on_slow=OnSlow.BLOCK,
        end_timeout_s=0.5,
    )
    receiver = connect(endpoint, rcvhwm=2, rcvbuf_bytes=65536)
    assert decode(receiver.receive(timeout_s=60.0)).type == "start"
    assert decode(receiver.receive(timeout_s=60.0))["image_id"] == 0
    summary = stream.result(timeout_s=120.0)  # the writer reads nothing meanwhile

    assert summary.images_sent == n_images
    assert summary.end_delivered == (False,) and summary.end_given_up_by == "end-timeout"
    assert summary.images_lost_in_queue > 0
    # what had left ZeroMQ is in the kernel and still arrives; what had not is gone. The
    # count errs on the safe side by at most the one message that was fully written when the
    # wait gave up: ZeroMQ completes a tracker only when it asks for the next message.
    ids, end_arrived = _read_until_end(receiver)
    assert not end_arrived
    counted_delivered = n_images - summary.images_lost_in_queue
    assert [0, *ids] == list(range(len(ids) + 1))
    assert counted_delivered <= len(ids) + 1 <= counted_delivered + 1


def test_a_stop_request_during_the_end_wait_gives_it_up_counted(
    synthetic_source, start_stream, connect
):
    """Ctrl-C while a stuck writer holds the queue: no waiting out --end-timeout."""
    end_wait_began = threading.Event()

    def watch(progress: StreamProgress) -> None:
        if progress.images_queued_at_end is not None:
            end_wait_began.set()

    stream, (endpoint,) = start_stream(
        synthetic_source(3, shape=LARGE_FRAME),
        on_progress=watch,
        number_of_images=200,
        on_slow=OnSlow.BLOCK,
        end_timeout_s=600.0,
        progress_interval_s=0.0,
    )
    receiver = connect(endpoint, rcvhwm=2, rcvbuf_bytes=65536)
    receiver.receive(timeout_s=60.0)
    receiver.receive(timeout_s=60.0)
    assert end_wait_began.wait(60.0), "the image loop did not finish (all 200 fit the queue)"
    stream.streamer.request_stop("SIGINT")
    summary = stream.result(timeout_s=120.0)

    assert summary.stopped_by is None  # every image had been queued
    assert summary.end_given_up_by == "SIGINT" and summary.end_delivered == (False,)
    assert summary.images_lost_in_queue > 0


def test_backlog_counts_what_is_not_done_and_lets_go_of_the_rest():
    events = [threading.Event() for _ in range(3 * PRUNE_MIN)]
    backlog = SendBacklog()
    for event in events:
        backlog.add(zmq.MessageTracker(event))
    assert backlog.pending() == 3 * PRUNE_MIN
    for event in events[:-5]:
        event.set()
    events[7].clear()  # completed out of order (several writers on one socket)
    assert backlog.pending() == 6
    assert len(backlog._trackers) == 6
