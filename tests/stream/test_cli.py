"""``jfsim stream`` as a real subprocess: a recording in, PULL receivers out, signals."""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from jfsim.cli import main
from jfsim.protocol import decode
from jfsim.recording import RecordingWriter

JFSIM = Path(sys.executable).with_name("jfsim")
PROCESS_TIMEOUT_S = 180


@pytest.fixture
def recording(tmp_path, synthetic_messages_list):
    path = tmp_path / "series.cbors"
    with RecordingWriter(path) as writer:
        for message in synthetic_messages_list:
            writer.write(message)
    return path


def test_cli_streams_a_recording_and_prints_a_json_summary(recording, start_streamer, connect):
    streamer = start_streamer(
        "--start-timeout", "120s", "--recording", str(recording),
        "--rate", "1kHz", "--images", "25", "--pool", "3", "--json",
    )  # fmt: skip
    messages = connect(streamer.endpoints[0]).receive_series(timeout_s=120.0)
    code, stdout, stderr = streamer.finish(PROCESS_TIMEOUT_S)
    assert code == 0, stderr
    assert [m["image_id"] for m in messages[1:-1]] == list(range(25))
    summary = json.loads(stdout)
    assert summary["images_sent"] == 25
    assert summary["pool_size"] == 3
    assert summary["target_rate_hz"] == 1000.0
    assert summary["end_delivered"] == [True]
    assert summary["achieved_rate_hz"] > 0.0


def test_sigterm_still_sends_the_end_message_and_prints_the_summary(
    recording, start_streamer, connect, stream_v2_check
):
    streamer = start_streamer(
        "--start-timeout", "120s", "--recording", str(recording),
        "--rate", "200Hz", "--images", "1000000",
    )  # fmt: skip
    receiver = connect(streamer.endpoints[0])
    assert stream_v2_check(receiver.receive(timeout_s=120.0))["type"] == "start"
    for _ in range(3):
        assert stream_v2_check(receiver.receive())["type"] == "image"
    streamer.process.send_signal(signal.SIGTERM)
    messages = receiver.receive_series()
    code, stdout, stderr = streamer.finish(PROCESS_TIMEOUT_S)
    assert code == 0, stderr
    assert messages[-1]["type"] == "end"
    assert "stopped by" in stdout and "SIGTERM" in stdout
    assert "images sent" in stdout and "of 1000000" in stdout


def test_no_writer_is_a_one_line_error_with_exit_status_2(recording, start_streamer):
    streamer = start_streamer("--recording", str(recording), "--start-timeout", "200ms")
    code, _stdout, stderr = streamer.finish(PROCESS_TIMEOUT_S)
    assert code == 2
    assert (
        stderr.strip()
        .splitlines()[-1]
        .startswith("jfsim stream: error: no writer connected to tcp://127.0.0.1:* within 0.2 s")
    )


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--rate", "fast", "rate 'fast': not understood"),
        ("--rate", "0Hz", "must be > 0"),
        ("--start-timeout", "soon", "--start-timeout 'soon': not understood"),
        ("--sndhwm", "1", "sndhwm: must be in 2..16384"),
        ("--max-lag", "soon", "--max-lag 'soon': not understood"),
        ("--on-slow", "wait", "argument --on-slow: invalid choice: 'wait'"),
        ("--endpoint", "nowhere", "--endpoint nowhere: cannot bind"),
        ("--recording", "absent.cbors", "absent.cbors: no such file"),
        ("--recording", ".", "recording .: is a directory"),
        ("--rate", "2", "unrecognized arguments: kHz (see 'jfsim stream --help')"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(recording, option, value, expected, capsys):
    # in-process: the same dispatcher as the console script, without paying start-up again
    arguments = ["stream", "--recording", str(recording), option, value]
    if option == "--recording":
        arguments = ["stream", option, value]
    if value == "2":  # '--rate 2 kHz': a space in the value leaves a stray word
        arguments.append("kHz")
    assert main(arguments) == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert error_lines[-1].startswith("jfsim stream: error: ")
    assert expected in error_lines[-1]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--truth-out", "t_truth.h5"], "--truth-out: only with --preset/--experiment"),
        (["--pool", "0"], "pool: must be >= 1 frame"),
    ],
)
def test_recording_only_options_are_checked(recording, arguments, expected, capsys):
    assert main(["stream", "--recording", str(recording), *arguments]) == 2
    assert expected in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--keep-arm-date"], "--keep-arm-date: only with --recording"),
        (["--truth-out", "no/such/folder/t_truth.h5"], "folder no/such/folder does not exist"),
    ],
)
def test_experiment_only_options_are_checked(arguments, expected, capsys):
    assert main(["stream", "--preset", "small-jf1m", *arguments]) == 2
    assert expected in capsys.readouterr().err.strip().splitlines()[-1]


def test_default_endpoint_is_loopback_and_bound_there(recording):
    """Issue 9: nothing listens on every interface unless the user names it."""
    from jfsim.cli import build_parser
    from jfsim.cli.stream import _config, _source
    from jfsim.stream import Streamer

    args = build_parser().parse_args(["stream", "--recording", str(recording)])
    config = _config(args)
    assert config.endpoints == ("tcp://127.0.0.1:5500",)
    assert config.sndhwm == 250
    assert config.on_slow.value == "catch-up" and config.max_lag_s == 1.0
    free = Streamer(
        type(config)(endpoints=("tcp://127.0.0.1:*",), number_of_images=1), _source(args, None)
    )
    try:
        (bound,) = free.bind()
        assert bound.startswith("tcp://127.0.0.1:")
    finally:
        free.close()


def test_max_lag_is_refused_with_a_policy_that_never_sends_late(recording, capsys):
    arguments = ["stream", "--recording", str(recording), "--on-slow", "drop", "--max-lag", "2s"]
    assert main(arguments) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("jfsim stream: error: --max-lag: only with --on-slow catch-up")


def test_help_teaches_the_slow_writer_policies(capsys):
    assert main(["stream", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-lag DURATION" in text
    assert "catch-up (default) waits for room" in text
    assert "only an image more than --max-lag (1s) behind its slot is dropped" in text


@pytest.fixture
def large_recording(tmp_path, make_synthetic_messages):
    """Four 512 x 512 images (~100 kB messages): a few dozen fill the sockets' buffers."""
    path = tmp_path / "large.cbors"
    with RecordingWriter(path) as writer:
        for message in make_synthetic_messages(4, shape=(512, 512)):
            writer.write(message)
    return path


def test_a_writer_stalled_beyond_max_lag_gives_exit_1_counts_and_advice(
    large_recording, start_streamer, connect
):
    streamer = start_streamer(
        "--start-timeout", "120s", "--recording", str(large_recording), "--rate", "1kHz",
        "--images", "1500", "--sndhwm", "2", "--max-lag", "100ms", "--json",
    )  # fmt: skip
    receiver = connect(streamer.endpoints[0], rcvhwm=2, rcvbuf_bytes=65536)
    assert receiver.receive(timeout_s=120.0)[:3] == b"\xd9\xd9\xf7"  # start
    receiver.receive(timeout_s=60.0)
    time.sleep(0.8)  # the writer stalls: the behaviour under test
    messages = receiver.receive_series(timeout_s=60.0)
    code, stdout, stderr = streamer.finish(PROCESS_TIMEOUT_S)

    assert code == 1, stderr
    summary = json.loads(stdout)
    assert summary["images_dropped"] > 0
    assert summary["images_sent"] + summary["images_dropped"] == 1500
    assert summary["max_lag_ms"] <= 100.0 + 400.0  # the budget, and scheduling slack
    assert messages[-1]["images_collected"] == 1500
    advice = stderr.strip().splitlines()[-1]
    assert advice.startswith(f"stream: {summary['images_dropped']} of 1500 images dropped")
    assert "more than --max-lag 0.1 s behind the schedule" in advice
    assert "raise --max-lag or --sndhwm" in advice


def test_a_slow_writer_gets_the_whole_queue_and_the_end_with_exit_0(
    large_recording, start_streamer, connect
):
    """Issue 9: 100 queued images at 20 ms each outlast --end-timeout 1s; the stream waits
    while the writer keeps taking them (it used to discard the queue after the timeout)."""
    streamer = start_streamer(
        "--start-timeout", "120s", "--recording", str(large_recording), "--rate", "max",
        "--images", "150", "--on-slow", "block", "--sndhwm", "100", "--end-timeout", "1s",
        "--json",
    )  # fmt: skip
    receiver = connect(streamer.endpoints[0], rcvhwm=2, rcvbuf_bytes=65536)
    ids, end_arrived = [], False
    while not end_arrived and receiver.socket.poll(60_000):
        frame = receiver.socket.recv()
        end_arrived = b"\x64type\x63end" in frame[:32]
        if not end_arrived and b"\x64type\x65image" in frame[:32]:
            ids.append(decode(frame)["image_id"])
            time.sleep(0.02)  # the slow writer: the behaviour under test
    code, stdout, stderr = streamer.finish(PROCESS_TIMEOUT_S)

    assert code == 0, stderr
    assert end_arrived and ids == list(range(150))
    summary = json.loads(stdout)
    assert summary["end_delivered"] == [True] and summary["images_lost_in_queue"] == 0
    assert summary["end_given_up_by"] is None
    assert summary["end_wait_s"] > 1.0  # the queue outlasted the timeout, and was waited for


def test_a_writer_that_stops_reading_loses_the_queue_loudly_with_exit_1(
    large_recording, start_streamer, connect
):
    streamer = start_streamer(
        "--start-timeout", "120s", "--recording", str(large_recording), "--rate", "max",
        "--images", "200", "--on-slow", "block", "--end-timeout", "500ms",
    )  # fmt: skip
    receiver = connect(streamer.endpoints[0], rcvhwm=2, rcvbuf_bytes=65536)
    receiver.receive(timeout_s=120.0)  # start
    receiver.receive(timeout_s=60.0)  # one image, then nothing more: the writer is stuck
    code, stdout, stderr = streamer.finish(PROCESS_TIMEOUT_S)

    assert code == 1, stderr
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in stdout.splitlines())
    lost = int(rows["images lost in send queue"])
    assert lost > 0 and rows["images sent"] == "200 of 200"
    assert rows["end delivered"] == "NO"
    assert rows["end wait"].endswith("s (given up: end-timeout)")
    advice = stderr.strip().splitlines()[-1]
    assert advice == (
        f"stream: {lost} of 200 images and the end message are lost: they were still queued "
        f"for {streamer.endpoints[0]} when its writer took nothing for --end-timeout 0.5 s; "
        "check the writer, raise --end-timeout, or lower --sndhwm"
    )


def test_a_writer_that_leaves_with_images_queued_is_counted_with_exit_1(
    large_recording, start_streamer, connect
):
    """ZeroMQ discards what was queued for a writer that disconnects, and the trackers of
    those images then complete as if sent: the departure, and about what it lost, must be
    in the summary and the exit status (the count used to say 0)."""
    streamer = start_streamer(
        "--start-timeout", "120s", "--recording", str(large_recording), "--rate", "max",
        "--images", "120", "--on-slow", "block", "--end-timeout", "2s", "--json",
    )  # fmt: skip
    receiver = connect(streamer.endpoints[0], rcvhwm=2, rcvbuf_bytes=65536)
    receiver.receive(timeout_s=120.0)  # start
    for _ in range(5):
        receiver.receive(timeout_s=60.0)
    time.sleep(0.5)  # the stream has queued the rest, and the end
    receiver.close()
    code, stdout, stderr = streamer.finish(PROCESS_TIMEOUT_S)

    assert code == 1, stderr
    summary = json.loads(stdout)
    assert summary["writer_disconnects"] == [1]
    assert summary["end_delivered"] == [False]
    # 115 images were never taken; a few may sit in the operating system's buffers
    assert 50 <= summary["images_lost_on_disconnect"] <= 115
    assert f"a writer disconnected from {streamer.endpoints[0]} during the series" in stderr


def test_a_writer_that_takes_everything_and_leaves_at_once_is_no_loss(
    recording, start_streamer, connect
):
    streamer = start_streamer(
        "--start-timeout", "120s", "--recording", str(recording), "--rate", "max",
        "--images", "25", "--json",
    )  # fmt: skip
    receiver = connect(streamer.endpoints[0])
    receiver.receive_series(timeout_s=120.0)
    receiver.close()
    code, stdout, stderr = streamer.finish(PROCESS_TIMEOUT_S)

    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["writer_disconnects"] == [0] and summary["end_delivered"] == [True]
