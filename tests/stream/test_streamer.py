"""The streaming engine against real PULL/SUB sockets on loopback."""

from __future__ import annotations

import threading
import time

import pytest
import zmq

from jfsim.protocol import Message, decode
from jfsim.stream import (
    MessageListSource,
    NoWriterError,
    OnSlow,
    StreamConfig,
    Streamer,
    StreamOptionError,
)


def test_series_arrives_complete_and_in_order(synthetic_source, start_stream, connect):
    stream, (endpoint,) = start_stream(synthetic_source(6), number_of_images=15, pool_size=4)
    receiver = connect(endpoint)
    messages = receiver.receive_series()
    summary = stream.result()

    assert [m["type"] for m in messages] == ["start"] + ["image"] * 15 + ["end"]
    assert [m["image_id"] for m in messages[1:-1]] == list(range(15))
    assert messages[0]["number_of_images"] == 15
    assert messages[-1]["images_collected"] == 15
    assert summary.images_sent == 15 and summary.images_dropped == 0
    assert summary.end_delivered == (True,)
    assert summary.pool_size == 4


def test_repeated_pixels_keep_their_own_id_timing_and_analysis(
    synthetic_source, start_stream, connect
):
    stream, (endpoint,) = start_stream(synthetic_source(3), number_of_images=7, pool_size=3)
    images = connect(endpoint).receive_series()[1:-1]
    stream.result()

    # image 4 reuses pool frame 1: same pixels and spots, its own id and times
    assert images[4]["data"]["default"].payload == images[1]["data"]["default"].payload
    assert images[4]["spots"] == images[1]["spots"]
    assert images[4]["image_id"] == 4
    assert images[4]["start_time"] == [4 * 25000, 50_000_000]
    assert images[4]["stop_time"] == [4 * 25000 + 20000, 50_000_000]
    assert images[1]["start_time"] == [25000, 50_000_000]


def test_every_image_decodes_to_the_message_the_assembler_claims(
    synthetic_source, start_stream, connect
):
    source = synthetic_source(4)
    stream, (endpoint,) = start_stream(source, number_of_images=9, pool_size=2)
    receiver = connect(endpoint)
    frames = [receiver.receive() for _ in range(11)]
    stream.result()

    pool = stream.streamer.prepare()
    for image_id, frame in enumerate(frames[1:-1]):
        message = decode(frame)
        assert message["image_id"] == image_id
        assert message["data"]["default"] == pool[image_id % 2].pixels
        assert message.fields == {
            **source.image_fields(image_id),
            **pool[image_id % 2].pixel_fields,
            "data": {"default": pool[image_id % 2].pixels},
        }


def test_two_endpoints_get_whole_data_files_and_both_get_start_and_end(
    synthetic_source, start_stream, connect
):
    stream, endpoints = start_stream(
        synthetic_source(5, images_per_file=4),
        endpoints=("tcp://127.0.0.1:*", "tcp://127.0.0.1:*"),
        number_of_images=18,
    )
    first, second = (connect(endpoint) for endpoint in endpoints)
    series = [first.receive_series(), second.receive_series()]
    summary = stream.result()

    ids = [[m["image_id"] for m in messages[1:-1]] for messages in series]
    assert ids[0] == [0, 1, 2, 3, 8, 9, 10, 11, 16, 17]
    assert ids[1] == [4, 5, 6, 7, 12, 13, 14, 15]
    for messages in series:
        assert messages[0]["type"] == "start" and messages[-1]["type"] == "end"
    # only the first socket's writer writes the master file
    assert [messages[0]["write_master_file"] for messages in series] == [True, False]
    assert summary.images_per_socket == (10, 8)
    assert summary.end_delivered == (True, True)


def test_no_writer_gives_a_clear_error_quickly(synthetic_source, start_stream):
    stream, (endpoint,) = start_stream(synthetic_source(2), start_timeout_s=0.3)
    began = time.monotonic()
    with pytest.raises(NoWriterError) as caught:
        stream.result()

    assert time.monotonic() - began < 5.0
    text = str(caught.value)
    assert f"no writer connected to {endpoint.rsplit(':', 1)[0]}" in text
    assert "within 0.3 s" in text and "--start-timeout" in text and "jfsim write" in text


def test_no_writer_error_names_and_suggests_the_idle_endpoint(
    synthetic_source, start_stream, connect
):
    stream, (first, second) = start_stream(
        synthetic_source(2),
        endpoints=("tcp://127.0.0.1:*", "tcp://127.0.0.1:*"),
        start_timeout_s=0.5,
    )
    connect(first)  # a writer on the first socket only
    with pytest.raises(NoWriterError) as caught:
        stream.result()
    text = str(caught.value)
    second_port = second.rsplit(":", 1)[1]
    assert f"jfsim write tcp://127.0.0.1:{second_port}" in text
    assert first.rsplit(":", 1)[1] not in text.split("within")[1]


def test_start_waits_for_a_writer_that_connects_late(synthetic_source, start_stream, connect):
    stream, (endpoint,) = start_stream(synthetic_source(2), start_timeout_s=20.0)
    stream.join(timeout_s=0.5)  # it is waiting for a writer, and has not given up
    assert stream.summary is None and stream.error is None
    messages = connect(endpoint).receive_series()
    assert len(messages) == 4
    assert stream.result().images_sent == 2


@pytest.mark.parametrize("on_slow", [OnSlow.DROP, OnSlow.CATCH_UP])
def test_vanished_writer_with_drop_or_catch_up_counts_drops_and_finishes(
    synthetic_source, start_stream, connect, stream_v2_check, on_slow
):
    """With catch-up every later image waits out its 0.1 s budget and is dropped, so the
    stream ends about that late, not one send timeout per image."""
    stream, (endpoint,) = start_stream(
        synthetic_source(2),
        number_of_images=2000,
        rate_hz=2000.0,
        on_slow=on_slow,
        max_lag_s=0.1,
        sndhwm=4,
        send_timeout_s=0.2,
        end_timeout_s=0.3,
    )
    receiver = connect(endpoint)
    assert stream_v2_check(receiver.receive())["type"] == "start"
    receiver.receive()  # the first image: the writer is alive, then it vanishes
    receiver.close()
    summary = stream.result(timeout_s=30.0)

    assert summary.images_dropped > 0
    assert summary.images_sent + summary.images_dropped == 2000
    assert summary.end_delivered == (False,)


def test_vanished_writer_with_block_stops_with_a_reason(synthetic_source, start_stream, connect):
    stream, (endpoint,) = start_stream(
        synthetic_source(2),
        number_of_images=5000,
        on_slow=OnSlow.BLOCK,
        sndhwm=4,
        send_timeout_s=0.3,
        end_timeout_s=0.3,
    )
    receiver = connect(endpoint)
    receiver.receive()
    receiver.close()
    summary = stream.result(timeout_s=30.0)

    assert summary.images_dropped == 0
    assert summary.images_sent < 5000
    assert summary.stopped_by is not None and "took no image for 0.3 s" in summary.stopped_by


def test_slow_writer_with_block_loses_nothing(
    synthetic_source, start_stream, connect, stream_v2_check
):
    stream, (endpoint,) = start_stream(
        synthetic_source(3), number_of_images=40, on_slow=OnSlow.BLOCK, sndhwm=2
    )
    receiver = connect(endpoint, rcvhwm=2)
    messages = []
    while not messages or messages[-1]["type"] != "end":
        zmq.Poller().poll(5)  # simulated work of a slow writer: ~5 ms per image
        messages.append(stream_v2_check(receiver.receive()))
    summary = stream.result()

    assert [m["image_id"] for m in messages[1:-1]] == list(range(40))
    assert summary.images_dropped == 0 and summary.images_sent == 40


def test_slow_writer_with_drop_loses_images_but_not_the_schedule(
    synthetic_source, start_stream, connect, stream_v2_check
):
    # The writer stalls (reads nothing) until the streamer has dealt with every image, with
    # a small kernel receive buffer: whatever the machine's speed, images must be dropped.
    all_images_handled = threading.Event()

    def on_progress(progress) -> None:
        if progress.images_done >= progress.images_total:
            all_images_handled.set()

    stream, (endpoint,) = start_stream(
        synthetic_source(3, shape=(512, 512)),
        number_of_images=200,
        rate_hz=2000.0,
        on_slow=OnSlow.DROP,
        sndhwm=2,
        progress_interval_s=0.0,
        end_timeout_s=30.0,
        on_progress=on_progress,
    )
    receiver = connect(endpoint, rcvhwm=2, rcvbuf_bytes=65536)
    messages = [stream_v2_check(receiver.receive(timeout_s=30.0))]
    assert all_images_handled.wait(timeout=60.0), "the streamer did not finish its images"
    while messages[-1]["type"] != "end":
        messages.append(stream_v2_check(receiver.receive()))
    summary = stream.result()

    ids = [m["image_id"] for m in messages[1:-1]]
    assert summary.images_dropped > 0
    assert summary.images_sent + summary.images_dropped == 200
    assert len(ids) == summary.images_sent and ids == sorted(ids)
    # the detector collected all 200; the dropped ones are lost on the way (a writer sees them
    # as missing)
    assert messages[-1]["images_collected"] == 200


def test_stop_while_blocked_on_a_stalled_writer_returns_promptly(
    synthetic_source, start_stream, connect
):
    stream, (endpoint,) = start_stream(
        synthetic_source(2),
        number_of_images=1_000_000,
        on_slow=OnSlow.BLOCK,
        sndhwm=2,
        send_timeout_s=120.0,
        end_timeout_s=0.2,
    )
    receiver = connect(endpoint, rcvhwm=2)
    for _ in range(3):
        receiver.receive()  # then the writer stalls: queues fill and the streamer blocks
    stream.streamer.request_stop("SIGINT")
    summary = stream.result(timeout_s=30.0)  # far less than the 120 s send timeout

    assert summary.stopped_by == "SIGINT"
    assert summary.images_dropped == 0
    assert summary.images_sent < 1_000_000


def test_stop_request_still_sends_the_end_message(
    synthetic_source, start_stream, connect, stream_v2_check
):
    stream, (endpoint,) = start_stream(synthetic_source(2), number_of_images=100_000, rate_hz=500)
    receiver = connect(endpoint)
    assert stream_v2_check(receiver.receive())["type"] == "start"
    for _ in range(5):
        assert stream_v2_check(receiver.receive())["type"] == "image"
    stream.streamer.request_stop("SIGTERM")
    messages = receiver.receive_series()
    summary = stream.result()

    assert messages[-1]["type"] == "end"
    assert messages[-1]["images_collected"] == summary.images_sent + summary.images_dropped
    assert summary.stopped_by == "SIGTERM"
    assert 5 <= summary.images_sent < 100_000


def test_preview_and_metadata_publishers(
    synthetic_source, start_stream, connect, expected_metadata_entries
):
    source = synthetic_source(3)
    stream, (endpoint,) = start_stream(
        source,
        number_of_images=30,
        rate_hz=1000.0,
        start_timeout_s=20.0,
        preview_endpoint="tcp://127.0.0.1:*",
        preview_period_s=0.0,
        metadata_endpoint="tcp://127.0.0.1:*",
        metadata_period_s=0.01,
    )
    # PUB sockets are bound before the start message waits, so subscribers are in place
    # long before the first image (the writer connects last).
    preview = connect(stream.streamer.preview_endpoint, zmq.SUB)
    metadata = connect(stream.streamer.metadata_endpoint, zmq.SUB)
    preview.wait_subscribed()
    metadata.wait_subscribed()
    connect(endpoint).receive_series()
    summary = stream.result()

    preview_series = preview.receive_series()
    assert [m["type"] for m in preview_series] == ["start"] + ["image"] * 30 + ["end"]
    batches = metadata.receive_metadata()
    entries = [entry for batch in batches for entry in batch["images"]]
    assert entries == expected_metadata_entries(source, stream.streamer.prepare(), 30)
    assert batches[0]["series_id"] == 7 and batches[0]["series_unique_id"] == "7:synthetic"
    assert summary.preview_messages == 32
    assert summary.metadata_messages == len(batches) + 2


def test_bad_options_are_refused():
    with pytest.raises(StreamOptionError, match="sndhwm"):
        StreamConfig(sndhwm=1)
    with pytest.raises(StreamOptionError, match="pool"):
        StreamConfig(pool_size=0)
    with pytest.raises(StreamOptionError, match="rate"):
        StreamConfig(rate_hz=-5.0)


def test_unbindable_endpoint_is_a_clear_error(synthetic_source):
    streamer = Streamer(
        StreamConfig(endpoints=("tcp://no-such-host.invalid:5500",)), synthetic_source(1)
    )
    with pytest.raises(StreamOptionError, match="cannot bind"):
        streamer.bind()


def test_calibration_goes_to_the_first_socket_only(start_stream, connect, make_synthetic_messages):
    start, *rest = make_synthetic_messages(4, images_per_file=2)
    calibration = Message("calibration", {"name": "pedestal_g0", "gain": 0})
    stream, endpoints = start_stream(
        MessageListSource([start, calibration, *rest]),
        endpoints=("tcp://127.0.0.1:*", "tcp://127.0.0.1:*"),
    )
    receivers = [connect(endpoint) for endpoint in endpoints]
    first, second = (receiver.receive_series() for receiver in receivers)
    stream.result()

    assert [m["type"] for m in first[:2]] == ["start", "calibration"]
    assert first[1]["name"] == "pedestal_g0"
    assert "calibration" not in [m["type"] for m in second]


def test_a_message_list_replays_every_image_unless_a_pool_is_chosen(make_synthetic_messages):
    source = MessageListSource(make_synthetic_messages(12))
    assert source.default_number_of_images() == 12 and source.default_pool_size() == 12
    assert len(source.build_pool(3, None)) == 3


def test_progress_is_reported_while_streaming(synthetic_source, connect):
    reports = []
    streamer = Streamer(
        StreamConfig(
            endpoints=("tcp://127.0.0.1:*",), rate_hz=None, number_of_images=12,
            progress_interval_s=0.0, start_timeout_s=10.0,
        ),
        synthetic_source(3),
        on_progress=reports.append,
    )  # fmt: skip
    (endpoint,) = streamer.bind()
    receiver = connect(endpoint)
    summary = streamer.run()  # the start message waits in ZeroMQ's queue for the receiver
    assert len(receiver.receive_series()) == 14
    # while sending, one report per image; then, while the end waits for the writer to take
    # what is queued, reports that say how many images it still holds
    sending = [report for report in reports if report.images_queued_at_end is None]
    assert [report.images_done for report in sending] == list(range(1, 13))
    assert reports[: len(sending)] == sending
    assert all(0 <= report.images_queued_at_end <= 12 for report in reports[len(sending) :])
    assert reports[-1].images_total == 12 and summary.images_sent == 12
