"""``jfsim stream`` as a real subprocess: a recording in, PULL receivers out, signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jfsim.cli import main
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


def _start(*arguments: str) -> subprocess.Popen:
    """Start ``jfsim stream``; the long start timeout covers a slow start on a loaded machine."""
    return subprocess.Popen(
        [str(JFSIM), "stream", "--start-timeout", "120s", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_streams_a_recording_and_prints_a_json_summary(recording, tcp_endpoint, connect):
    process = _start(
        "--recording", str(recording), "--endpoint", tcp_endpoint,
        "--rate", "1kHz", "--images", "25", "--pool", "3", "--json",
    )  # fmt: skip
    try:
        messages = connect(tcp_endpoint).receive_series(timeout_s=120.0)
        stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert [m["image_id"] for m in messages[1:-1]] == list(range(25))
    summary = json.loads(stdout)
    assert summary["images_sent"] == 25
    assert summary["pool_size"] == 3
    assert summary["target_rate_hz"] == 1000.0
    assert summary["end_delivered"] == [True]
    assert summary["achieved_rate_hz"] > 0.0


def test_sigterm_still_sends_the_end_message_and_prints_the_summary(
    recording, tcp_endpoint, connect, stream_v2_check
):
    process = _start(
        "--recording", str(recording), "--endpoint", tcp_endpoint,
        "--rate", "200Hz", "--images", "1000000",
    )  # fmt: skip
    try:
        receiver = connect(tcp_endpoint)
        assert stream_v2_check(receiver.receive(timeout_s=120.0))["type"] == "start"
        for _ in range(3):
            assert stream_v2_check(receiver.receive())["type"] == "image"
        process.send_signal(signal.SIGTERM)
        messages = receiver.receive_series()
        stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert messages[-1]["type"] == "end"
    assert "stopped by" in stdout and "SIGTERM" in stdout
    assert "images sent" in stdout and "of 1000000" in stdout


def test_no_writer_is_a_one_line_error_with_exit_status_2(recording, tcp_endpoint):
    process = _start(
        "--recording", str(recording), "--endpoint", tcp_endpoint, "--start-timeout", "200ms",
    )  # fmt: skip
    _, stderr = process.communicate(timeout=PROCESS_TIMEOUT_S)
    assert process.returncode == 2
    assert (
        stderr.strip()
        .splitlines()[-1]
        .startswith(f"jfsim stream: error: no writer connected to {tcp_endpoint} within 0.2 s")
    )


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--rate", "fast", "rate 'fast': not understood"),
        ("--rate", "0Hz", "must be > 0"),
        ("--start-timeout", "soon", "--start-timeout 'soon': not understood"),
        ("--sndhwm", "1", "sndhwm: must be in 2..16384"),
        ("--endpoint", "nowhere", "--endpoint nowhere: cannot bind"),
        ("--recording", "absent.cbors", "absent.cbors: no such file"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(recording, option, value, expected, capsys):
    # in-process: the same dispatcher as the console script, without paying start-up again
    arguments = ["stream", "--recording", str(recording), option, value]
    if option == "--recording":
        arguments = ["stream", option, value]
    assert main(arguments) == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert error_lines[-1].startswith("jfsim stream: error: ")
    assert expected in error_lines[-1]


def test_default_endpoint_is_loopback_and_bound_there(recording):
    """Issue 9: nothing listens on every interface unless the user names it."""
    from jfsim.cli import build_parser
    from jfsim.cli.stream import _config, _source
    from jfsim.stream import Streamer

    args = build_parser().parse_args(["stream", "--recording", str(recording)])
    config = _config(args)
    assert config.endpoints == ("tcp://127.0.0.1:5500",)
    assert config.sndhwm == 1000
    free = Streamer(
        type(config)(endpoints=("tcp://127.0.0.1:*",), number_of_images=1), _source(args)
    )
    try:
        (bound,) = free.bind()
        assert bound.startswith("tcp://127.0.0.1:")
    finally:
        free.close()
