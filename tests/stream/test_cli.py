"""``jfsim stream`` as a real subprocess: a recording in, PULL receivers out, signals."""

from __future__ import annotations

import json
import signal
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
    assert config.sndhwm == 1000
    free = Streamer(
        type(config)(endpoints=("tcp://127.0.0.1:*",), number_of_images=1), _source(args, None)
    )
    try:
        (bound,) = free.bind()
        assert bound.startswith("tcp://127.0.0.1:")
    finally:
        free.close()
