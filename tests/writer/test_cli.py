"""``jfsim write`` as a real subprocess: one series per run, crashes, refusals, help."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import urllib.request

import h5py
import hdf5plugin  # noqa: F401 - bitshuffle for reading images
import numpy as np
import pytest
from writer_helpers import (
    PROCESS_TIMEOUT_S,
    Sender,
    finish,
    jfsim_command,
    make_series,
    run_process,
    start_writer,
    tiny_experiment,
    tree,
)

from jfsim.recording import RecordingWriter

#: The writer's start-up log line names the HTTP port it bound (``-H 0``: any free port).
HTTP_PORT = re.compile(r"http port (\d+)")


def http_status(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as reply:
            return json.loads(reply.read())
    except OSError:
        return None


def wait_for(predicate, timeout_s: float = 60.0) -> None:
    event = threading.Event()
    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return
        event.wait(0.05)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize("file_format", ["legacy", "vds", "integrated"])
def test_cli_writes_one_series_and_prints_a_json_summary(tmp_path, sender, file_format):
    series = make_series(tiny_experiment(file_format=""), extras=False)
    process = start_writer(
        "-R", str(tmp_path), "--format", file_format, "--once", "--json", sender.endpoint
    )
    sender.send_all(series.encoded())
    code, out, err = finish(process)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["state"] == "completed"
    assert summary["file_format"] == file_format
    assert summary["images_written"] == 7 and summary["images_expected"] == 7
    assert summary["rate_hz"] > 0  # spelt as jfsim stream's target_rate_hz / achieved_rate_hz
    assert "series 1 'run/tiny' completed: 7/7 images written" in err
    with h5py.File(tmp_path / "run/tiny_master.h5", "r") as h5:
        data = h5["entry/data"]
        names = ["data"] if "data" in data else sorted(data)
        images = np.concatenate([data[name][()] for name in names])
    assert np.array_equal(images, np.stack(series.pixels))


def test_sigkill_mid_series_leaves_only_tmp_files_and_a_restart_works(tmp_path, sender):
    series = make_series(tiny_experiment(file_format="vds"), extras=False)
    frames = series.encoded()
    root = tmp_path / "files"
    root.mkdir()
    log = tmp_path / "writer.log"
    command = [*jfsim_command(), "write", "-R", str(root), "-H", "0", sender.endpoint]
    with log.open("w", encoding="utf-8") as stderr:  # -H 0: the writer logs the port it got
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    try:
        wait_for(lambda: HTTP_PORT.search(log.read_text(encoding="utf-8")) is not None)
        http_port = int(HTTP_PORT.search(log.read_text(encoding="utf-8")).group(1))
        sender.send_all(frames[:3])  # start + images 0 and 1: data file 1 stays open
        wait_for(lambda: (http_status(http_port) or {}).get("images_written") == 2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=PROCESS_TIMEOUT_S)
    names = tree(root)
    assert names and all(name.endswith(".tmp") for name in names), names
    # A fresh detector socket: the old one may still route to the killed writer's pipe.
    second_sender = Sender()
    try:
        restarted = start_writer("-R", str(root), "--once", "--json", second_sender.endpoint)
        second_sender.send_all(frames)  # the same series again: .tmp leftovers block nothing
        code, out, err = finish(restarted)
    finally:
        second_sender.close()
    assert code == 0, err
    assert json.loads(out)["images_written"] == 7
    finals = [name for name in tree(root) if not name.endswith(".tmp")]
    assert finals == [f"run/tiny_data_00000{k}.h5" for k in (1, 2, 3)] + ["run/tiny_master.h5"]


def test_sigterm_closes_the_open_series_consistently(tmp_path, sender):
    series = make_series(tiny_experiment(file_format="integrated"), extras=False)
    process = start_writer("-R", str(tmp_path), "--json", sender.endpoint)
    sender.send_all(series.encoded()[:3])
    wait_for(lambda: any(name.endswith(".tmp") for name in tree(tmp_path)))
    process.send_signal(signal.SIGTERM)
    code, out, _err = finish(process)
    assert code == 1  # the series did not complete
    assert json.loads(out)[0]["state"] == "cancelled"
    assert tree(tmp_path) == ["run/tiny_master.h5"]


@pytest.mark.parametrize("prefix", ["/abs/path", "a/../../b"])
def test_cli_refuses_unsafe_prefixes(tmp_path, sender, prefix):
    series = make_series(tiny_experiment(file_prefix=prefix, number_of_images=1), extras=False)
    root = tmp_path / "root"
    root.mkdir()
    process = start_writer("-R", str(root), "--once", "--json", sender.endpoint)
    sender.send_all(series.encoded())
    code, out, err = finish(process)
    assert code == 1
    summary = json.loads(out)
    assert summary["state"] == "refused" and "file_prefix" in summary["errors"][0]
    assert "series refused" in err
    assert tree(tmp_path) == []


def test_cli_refuses_existing_files_unless_overwrite(tmp_path, sender):
    series = make_series(tiny_experiment(file_format="legacy", number_of_images=2), extras=False)
    (tmp_path / "run").mkdir()
    (tmp_path / "run/tiny_master.h5").write_bytes(b"older data")
    process = start_writer("-R", str(tmp_path), "--once", "--json", sender.endpoint)
    sender.send_all(series.encoded())
    code, out, _err = finish(process)
    assert code == 1 and json.loads(out)["state"] == "refused"
    assert (tmp_path / "run/tiny_master.h5").read_bytes() == b"older data"
    assert tree(tmp_path) == ["run/tiny_master.h5"]
    second_sender = Sender()  # a fresh detector socket for the new writer
    try:
        process = start_writer("-R", str(tmp_path), "--once", "--overwrite", second_sender.endpoint)
        second_sender.send_all(series.encoded())
        code, _out, err = finish(process)
    finally:
        second_sender.close()
    assert code == 0, err
    assert h5py.is_hdf5(tmp_path / "run/tiny_master.h5")


def test_help_teaches_and_bad_options_fail_clearly(tmp_path):
    help_text = run_process([*jfsim_command(), "write", "--help"]).stdout
    assert "tcp://dcu-address:5500" in help_text and "--overwrite" in help_text
    bad = run_process([*jfsim_command(), "write", "-w", "0", "tcp://127.0.0.1:1"])
    assert bad.returncode == 2
    assert "jfsim write: error: -w/rcv_watermark 0: a watermark must be at least 1" in bad.stderr
    missing = run_process(
        [*jfsim_command(), "write", "-R", str(tmp_path / "nope"), "tcp://127.0.0.1:1"]
    )
    assert missing.returncode == 2 and "not a directory" in missing.stderr
    nonsense = run_process([*jfsim_command(), "write", "-R", str(tmp_path), "dcu:5500"])
    assert nonsense.returncode == 2 and "tcp://HOST:PORT" in nonsense.stderr


def test_jfsim_stream_to_jfsim_write(tmp_path, start_streamer):
    """The two tools end to end: a recording replayed by ``jfsim stream`` is written
    bit-identical, analysis included."""
    series = make_series(tiny_experiment(file_format="vds"))
    recording = tmp_path / "series.cbors"
    with RecordingWriter(recording) as writer:
        for frame in series.encoded():
            writer.write_encoded(frame)
    root = tmp_path / "out"
    root.mkdir()
    stream = start_streamer(
        "--recording", str(recording), "--rate", "max", "--on-slow", "block",
        "--start-timeout", "60s", "--json",
    )  # fmt: skip
    process = start_writer("-R", str(root), "--once", "--json", stream.endpoints[0])
    streamed_code, streamed_out, streamed_err = stream.finish(PROCESS_TIMEOUT_S)
    assert streamed_code == 0, streamed_err
    assert json.loads(streamed_out)["images_sent"] == 7
    code, out, err = finish(process)
    assert code == 0, err
    assert json.loads(out)["images_written"] == 7
    with h5py.File(root / "run/tiny_master.h5", "r") as h5:
        assert np.array_equal(h5["entry/data/data"][()], np.stack(series.pixels))
        n_peaks = [len(image["spots"]) for image in series.images]
        assert list(h5["entry/MX/nPeaks"][()]) == n_peaks


@pytest.mark.parametrize("file_format", ["legacy", "vds"])
def test_two_writers_on_one_root_behind_a_two_socket_stream(tmp_path, file_format, start_streamer):
    """jfjoch_broker's split (one writer per image socket, whole data files per socket):
    the first writer writes the master and its files, the second only its files; the
    master then reads every image back, whichever writer stored it."""
    series = make_series(tiny_experiment(file_format=file_format))
    recording = tmp_path / "series.cbors"
    with RecordingWriter(recording) as writer:
        for frame in series.encoded():
            writer.write_encoded(frame)
    root = tmp_path / "out"
    root.mkdir()
    stream = start_streamer(
        "--recording", str(recording), "--rate", "max", "--on-slow", "block",
        "--start-timeout", "60s", "--json",
        sockets=2,
    )  # fmt: skip
    writers = [start_writer("-R", str(root), "--once", "--json", e) for e in stream.endpoints]
    streamed_code, _out, streamed_err = stream.finish(PROCESS_TIMEOUT_S)
    results = [finish(process) for process in writers]
    assert streamed_code == 0, streamed_err
    assert [code for code, _out, _err in results] == [0, 0], "\n".join(e for *_x, e in results)
    summaries = [json.loads(out) for _code, out, _err in results]
    assert [s["images_written"] for s in summaries] == [4, 3]  # files 1 and 3 | file 2
    assert summaries[1]["files"] == ["run/tiny_data_000002.h5"]
    assert tree(root) == [
        "run/tiny_data_000001.h5",
        "run/tiny_data_000002.h5",
        "run/tiny_data_000003.h5",
        "run/tiny_master.h5",
    ]
    with h5py.File(root / "run/tiny_master.h5", "r") as h5:
        data = h5["entry/data"]
        if file_format == "vds":
            stored = data["data"][()]
        else:
            stored = np.concatenate([data[name][()] for name in sorted(data)])
    assert np.array_equal(stored, np.stack(series.pixels))


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("-H", "99999", "-H/--http_port: 99999 is outside 0..65535"),
        ("-f", "-3", "-f/--zmq_file_port: -3 is outside 0..65535"),
        ("-r", "abc", "-r/--zmq_repub_port: 'abc' is not a port number"),
    ],
)
def test_port_options_are_checked(option, value, message, capsys):
    from jfsim.cli import main

    assert main(["write", option, value, "tcp://127.0.0.1:5500"]) == 2
    assert message in capsys.readouterr().err


def test_service_ports_default_to_loopback():
    from jfsim.cli import build_parser

    args = build_parser().parse_args(["write", "-H", "0", "tcp://127.0.0.1:5500"])
    assert args.bind_host == "127.0.0.1" and args.format is None
