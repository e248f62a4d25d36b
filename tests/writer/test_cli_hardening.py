"""Issue 9 through the real ``jfsim write`` / ``jfsim stream`` / ``jfconform`` processes: busy
ports, hostile start messages, --format precedence, lost images and their exit statuses."""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from writer_helpers import (
    PROCESS_TIMEOUT_S,
    finish,
    jfsim_command,
    make_series,
    run_process,
    start_writer,
    tiny_experiment,
    tree,
)

from jfsim.protocol import encode

#: The log line that ends a series (one per series, whatever its outcome).
SUMMARY_LINE = re.compile(r"jfsim write: series \S+ '.*' (completed|refused|failed|cancelled)")


@pytest.fixture
def busy_port():
    """A loopback TCP port held by a listening socket for the whole test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize(
    ("option", "name"),
    [("-H", "-H/--http_port"), ("-r", "-r/--zmq_repub_port"), ("-f", "-f/--zmq_file_port")],
)
def test_a_busy_port_is_one_line_naming_the_option_and_exit_2(tmp_path, busy_port, option, name):
    """Used to hang forever (-r, -f: the failed socket blocked the context) or blame the
    detector address (-H); --timeout is not needed for it to return."""
    command = [*jfsim_command(), "write", "-R", str(tmp_path), option, str(busy_port)]
    result = run_process([*command, "tcp://127.0.0.1:1"], timeout_s=PROCESS_TIMEOUT_S)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"jfsim write: error: {name} {busy_port}: cannot listen")
    assert "Address already in use" in lines[0]


def test_stream_reports_a_busy_endpoint_before_rendering(busy_port):
    command = [*jfsim_command(), "stream", "--preset", "small-jf1m"]
    endpoint = ["--endpoint", f"tcp://127.0.0.1:{busy_port}"]
    result = run_process([*command, *endpoint], timeout_s=PROCESS_TIMEOUT_S)
    assert result.returncode == 2
    assert "rendering pool" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"jfsim stream: error: --endpoint tcp://127.0.0.1:{busy_port}: cannot bind (Address "
        "already in use); use tcp://HOST:PORT with a free port on this machine, e.g. "
        "tcp://127.0.0.1:5500 (tcp://0.0.0.0:5500 for writers on other machines)"
    ]


def test_hostile_starts_are_refused_and_the_service_writes_the_next_series(tmp_path, sender):
    """The issue's start messages, in one writer process: each is refused with one log line
    naming its field (no traceback, no file), and a good series after them is written."""
    hostile = {
        "frame_time": math.inf,
        "bit_depth_readout": 2**31,
        "summation": 2**63,
        "image_size_x": 2**31,
        "sample_name": "lyso\x00zyme",
        "goniometer": {"omega": {"start": "ten", "increment": 0.1}},
        "number_of_images": 10**8,
    }
    process = start_writer("-R", str(tmp_path), "--json", "--timeout", "60", sender.endpoint)
    for series_id, (field, value) in enumerate(hostile.items(), start=1):
        bad = make_series(tiny_experiment(series_id=series_id, number_of_images=1), extras=False)
        bad.start.fields[field] = value
        sender.send_all(bad.encoded())
    good = make_series(tiny_experiment(series_id=99, number_of_images=2), extras=False)
    sender.send_all(good.encoded())
    sender.send(encode(good.start))  # a second start of the same prefix: refused (exists)
    code, out, err = finish_after_series(process, expected=len(hostile) + 2)
    summaries = json.loads(out)
    assert [s["state"] for s in summaries] == ["refused"] * len(hostile) + [
        "completed",
        "refused",
    ]
    for summary, field in zip(summaries, hostile, strict=False):
        assert f"field '{field}'" in summary["errors"][0]
    assert "Traceback" not in err
    assert code == 1  # refused series: not every series completed
    assert tree(tmp_path) == ["run/tiny_data_000001.h5", "run/tiny_master.h5"]


def test_an_empty_prefix_streams_without_files_in_every_layout(tmp_path, sender):
    """An empty ``file_prefix`` (jfjoch's "write nothing", what ``jfsim serve`` sends for a
    /start without one) is received and counted in every layout, no file is written, and
    the same writer process then writes a series with a prefix."""
    process = start_writer("-R", str(tmp_path), "--json", "--timeout", "60", sender.endpoint)
    layouts = ("legacy", "vds", "integrated", "nofile")
    for series_id, layout in enumerate(layouts, start=1):
        empty = tiny_experiment(
            file_prefix="", file_format=layout, series_id=series_id, number_of_images=2
        )
        sender.send_all(make_series(empty, extras=False).encoded())
    good = make_series(tiny_experiment(series_id=99, number_of_images=2), extras=False)
    sender.send_all(good.encoded())
    code, out, err = finish_after_series(process, expected=len(layouts) + 1)
    summaries = json.loads(out)
    assert "Traceback" not in err
    assert [(s["state"], s["images_received"], s["files"]) for s in summaries[:-1]] == [
        ("completed", 2, [])
    ] * len(layouts)
    assert summaries[-1]["state"] == "completed" and summaries[-1]["images_written"] == 2
    assert tree(tmp_path) == ["run/tiny_data_000001.h5", "run/tiny_master.h5"]
    assert code == 0, err


def finish_after_series(process: subprocess.Popen, expected: int):
    """Stop a service-mode writer with SIGTERM once it logged ``expected`` series."""
    assert process.stderr is not None
    seen, finished = [], 0
    for line in process.stderr:
        seen.append(line)
        finished += bool(SUMMARY_LINE.match(line))
        if finished >= expected:
            break
    process.terminate()
    code, out, err = finish(process)
    return code, out, "".join(seen) + err


def test_format_on_the_command_line_wins_and_says_so(tmp_path, sender):
    series = make_series(tiny_experiment(file_format="vds", number_of_images=2), extras=False)
    process = start_writer(
        "-R", str(tmp_path), "--format", "integrated", "--once", "--json", sender.endpoint
    )
    sender.send_all(series.encoded())
    code, out, err = finish(process)
    assert code == 0, err
    assert "layout integrated (--format; the start message asked for vds)" in err
    assert json.loads(out)["file_format"] == "integrated"
    assert tree(tmp_path) == ["run/tiny_master.h5"]


def test_lost_images_exit_3_and_fail_jfconform_with_fail_on_missing(tmp_path, sender):
    series = make_series(tiny_experiment(file_format="vds", number_of_images=7), extras=False)
    frames = series.encoded()
    process = start_writer("-R", str(tmp_path), "--once", "--json", sender.endpoint)
    sender.send_all([frames[0], *frames[1:3], frames[4], *frames[6:]])  # images 2, 4 lost
    code, out, err = finish(process)
    summary = json.loads(out)
    assert code == 3, err
    assert summary["state"] == "completed"
    assert summary["images_expected"] == 7 and summary["images_written"] == 5
    assert summary["images_missing"] == 2 and summary["missing"] == [[2, 2], [4, 4]]
    assert "2 MISSING (image ids 2, 4)" in err
    master = tmp_path / "run/tiny_master.h5"
    jfconform = [str(Path(sys.executable).with_name("jfconform")), "check", str(master)]
    lenient = run_process([*jfconform, "--json"], timeout_s=PROCESS_TIMEOUT_S)
    strict = run_process([*jfconform, "--json", "--fail-on-missing"], timeout_s=PROCESS_TIMEOUT_S)
    assert lenient.returncode == 0, lenient.stdout
    assert strict.returncode == 1
    errors = [f for f in json.loads(strict.stdout)["findings"] if f["severity"] == "error"]
    assert {f["rule"] for f in errors} == {"H5-012"}


def test_the_table_lists_missing_ranges(tmp_path, sender):
    series = make_series(tiny_experiment(number_of_images=4), extras=False)
    frames = series.encoded()
    process = start_writer("-R", str(tmp_path), "--once", sender.endpoint)
    sender.send_all([frames[0], frames[1], frames[-1]])
    code, out, _err = finish(process)
    assert code == 3
    assert out.splitlines()[0].split() == [
        "series",
        "state",
        "written",
        "expected",
        "missing",
        "rate/s",
        "prefix",
    ]
    assert "series 1: missing image ids 1-3" in out
    with h5py.File(tmp_path / "run/tiny_master.h5", "r") as h5:
        received = h5["entry/instrument/detector/detectorSpecific/image_received"]
        assert list(received) == [1, 0, 0, 0]
