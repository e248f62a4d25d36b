"""``jfsim dump`` as a real subprocess: files, recordings, PULL and SUB sockets, bad input."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from jfsim.protocol import Compression, Message, PixelArray, encode
from jfsim.recording import RecordingWriter

SOCKET_WAIT_S = 30.0


def _series(make_image_message) -> list[Message]:
    start = Message(
        "start",
        {
            "series_id": 7,
            "series_unique_id": "7:sample",
            "image_size_x": 21,
            "image_size_y": 13,
            "number_of_images": 2,
            "incident_energy": 12400.0,
            "pixel_mask": {"default": PixelArray.from_numpy(np.zeros((13, 21), "<u4"))},
        },
    )
    images = [make_image_message(image_id=i, seed=i) for i in range(2)]
    end = Message("end", {"series_id": 7, "series_unique_id": "7:sample", "images_collected": 2})
    return [start, *images, end]


@pytest.fixture
def recording(tmp_path: Path, make_image_message) -> Path:
    path = tmp_path / "run.cbors"
    with RecordingWriter(path) as writer:
        for message in _series(make_image_message):
            writer.write(message)
    return path


def test_text_output_has_one_aligned_line_per_message_and_a_summary(
    recording: Path, run_jfsim
) -> None:
    result = run_jfsim("dump", str(recording))
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert [line.split()[1] for line in lines[:4]] == ["start", "image", "image", "end"]
    assert "default=13x21 uint32 bslz4" in lines[0] and "number_of_images=2" in lines[0]
    assert "default=13x21 uint16 bslz4" in lines[1] and "image 1" in lines[2]
    assert lines[1].index("image 0") == lines[2].index("image 1"), "columns must align"
    summary = "\n".join(lines[4:])
    assert "image" in summary and "total" in summary
    assert any(line.split()[:2] == ["image", "2"] for line in lines[4:])


def test_json_output_carries_pixel_statistics(
    recording: Path, run_jfsim, make_image_message
) -> None:
    result = run_jfsim("dump", "--json", str(recording))
    assert result.returncode == 0, result.stderr.decode()
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["type"] for r in records] == ["start", "image", "image", "end"]
    pixels = make_image_message(image_id=1, seed=1)["data"]["default"].to_numpy()
    channel = records[2]["data"]["default"]
    assert channel["sum"] == int(pixels.sum()) and channel["max"] == int(pixels.max())
    assert channel["shape"] == [13, 21] and channel["dtype"] == "uint16"
    assert channel["elem_size"] == 2 and channel["compression"] == "bslz4"
    assert channel["nodata_count"] == 0
    assert "total" in result.stderr.decode(), "summary goes to stderr with --json"


def test_nodata_counts_type_max_or_signed_min(tmp_path: Path, run_jfsim) -> None:
    frame = np.zeros((4, 5), dtype="<i2")
    frame[0, :3] = np.iinfo(np.int16).min
    message = Message(
        "image",
        {
            "series_id": 1,
            "series_unique_id": "u",
            "image_id": 0,
            "data": {"default": PixelArray.from_numpy(frame, Compression.NONE)},
        },
    )
    path = tmp_path / "one.cbor"
    path.write_bytes(encode(message))
    record = json.loads(run_jfsim("dump", "--json", str(path)).stdout)
    assert record["data"]["default"]["nodata_count"] == 3


def test_truncated_file_reports_one_line_and_exits_1(
    tmp_path: Path, run_jfsim, image_message
) -> None:
    path = tmp_path / "cut.cbor"
    path.write_bytes(encode(image_message)[:-7])
    result = run_jfsim("dump", str(path))
    assert result.returncode == 1
    errors = result.stderr.decode().splitlines()
    assert len(errors) == 1
    assert str(path) in errors[0] and "message #0" in errors[0] and "truncated" in errors[0]


def test_corrupt_message_in_recording_is_reported_and_the_rest_shown(
    tmp_path: Path, run_jfsim, make_image_message
) -> None:
    good = [encode(make_image_message(image_id=i, seed=i)) for i in range(3)]
    broken = bytearray(good[1])
    payload_start = len(broken) - len(
        make_image_message(image_id=1, seed=1)["data"]["default"].payload
    )
    broken[payload_start + 16 : payload_start + 24] = b"\xff" * 8
    path = tmp_path / "mixed.cbors"
    path.write_bytes(good[0] + bytes(broken) + good[2])
    result = run_jfsim("dump", "--json", str(path))
    assert result.returncode == 1
    assert [json.loads(line)["image_id"] for line in result.stdout.decode().splitlines()] == [0, 2]
    assert f"{path}: message #1:" in result.stderr.decode()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["no/such/file.cbors"], "no such file"),
        (["http://host:1"], "unknown endpoint scheme"),
        (["x.cbor", "--count", "0"], "--count must be at least 1"),
        (["tcp://127.0.0.1:1", "x.cbor"], "not both"),
        (["tcp://nohost:99999"], "the port must be a number in 1..65535"),
        (["."], "is a directory"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], needle: str, run_jfsim) -> None:
    result = run_jfsim("dump", *args)
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jfsim dump: error:") and needle in lines[0]


@pytest.mark.parametrize("head", [b"\x89HDF\r\n\x1a\n", b"# a README\n"])
def test_a_file_that_is_no_message_is_one_line_not_a_flood(
    head: bytes, tmp_path: Path, run_jfsim
) -> None:
    path = tmp_path / "not_cbor.cbors"
    path.write_bytes(head + bytes(range(256)) * 40)
    result = run_jfsim("dump", str(path))
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "not a CBOR message or recording" in lines[0]
    assert str(path) in lines[0]


def test_help_teaches_with_examples(run_jfsim) -> None:
    result = run_jfsim("dump", "--help")
    assert result.returncode == 0
    assert b"examples:" in result.stdout and b"--json" in result.stdout


def _spawn(*args: str, **popen_options: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("jfsim")), "dump", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen_options,
    )


def test_pull_socket_counts_bad_messages_and_keeps_receiving(make_image_message) -> None:
    with zmq.Context() as context, context.socket(zmq.PUSH) as push:
        push.setsockopt(zmq.SNDTIMEO, int(SOCKET_WAIT_S * 1000))
        push.setsockopt(zmq.LINGER, 0)
        port = push.bind_to_random_port("tcp://127.0.0.1")
        process = _spawn(f"tcp://127.0.0.1:{port}", "--count", "4", "--timeout", str(SOCKET_WAIT_S))
        try:
            push.send(encode(make_image_message(image_id=0)))
            push.send(b"\xd9\xd9\xf7\x82\x01\x02")
            push.send(encode(make_image_message(image_id=1)))
            push.send(encode(Message("end", {"series_id": 7, "series_unique_id": "7:sample"})))
            stdout, stderr = process.communicate(timeout=SOCKET_WAIT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 1
    lines = stdout.decode().splitlines()
    assert [line.split()[1] for line in lines[:3]] == ["image", "image", "end"]
    assert "malformed" in stdout.decode()
    assert "message #1: message is not a CBOR map" in stderr.decode()


def test_sub_socket_receives_from_a_publisher(make_image_message) -> None:
    with zmq.Context() as context, context.socket(zmq.PUB) as publisher:
        publisher.setsockopt(zmq.LINGER, 0)
        port = publisher.bind_to_random_port("tcp://127.0.0.1")
        process = _spawn(f"tcp://127.0.0.1:{port}", "--sub", "--json", "--count", "1")
        data = encode(make_image_message(image_id=5))
        deadline = time.monotonic() + SOCKET_WAIT_S
        try:
            while process.poll() is None and time.monotonic() < deadline:
                publisher.send(data)  # a subscriber joins late: repeat until it has one
                try:
                    process.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
            stdout, _ = process.communicate(timeout=SOCKET_WAIT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0
    assert json.loads(stdout.decode().splitlines()[0])["image_id"] == 5


def test_idle_timeout_stops_a_silent_socket(silent_tcp_endpoint: str, run_jfsim) -> None:
    result = run_jfsim("dump", silent_tcp_endpoint, "--timeout", "0.3")
    assert result.returncode == 0
    assert "no message from" in result.stderr.decode()
    assert "total" in result.stdout.decode()


def _interrupted_dump(make_image_message, interrupt: Callable[[subprocess.Popen], None]) -> None:
    """Run ``jfsim dump`` on a socket, send it one image, ``interrupt`` it, and check that
    it stops with exit 0, says so, and prints its summary.

    The process starts with SIGINT at its default action, as from a terminal: a test run
    started in the background by a shell without job control has SIGINT ignored, every
    child inherits that, and a program rightly keeps an ignored SIGINT ignored."""
    with zmq.Context() as context, context.socket(zmq.PUSH) as push:
        push.setsockopt(zmq.SNDTIMEO, int(SOCKET_WAIT_S * 1000))
        push.setsockopt(zmq.LINGER, 0)
        port = push.bind_to_random_port("tcp://127.0.0.1")
        process = _spawn(
            f"tcp://127.0.0.1:{port}",
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            push.send(encode(make_image_message(image_id=9)))
            first_line = process.stdout.readline()  # handshake: it is running its loop
            interrupt(process)
            stdout, stderr = process.communicate(timeout=SOCKET_WAIT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert b"image 9" in first_line
    assert process.returncode == 0
    assert "interrupted" in stderr.decode()
    assert any(line.split()[:2] == ["total", "1"] for line in stdout.decode().splitlines())


def test_ctrl_c_stops_with_a_summary(make_image_message) -> None:
    _interrupted_dump(make_image_message, lambda process: process.send_signal(signal.SIGINT))


def _threads_taking_sigint(pid: int) -> list[int]:
    """Thread ids of ``pid``, other than its main thread, that do not block SIGINT."""
    found = []
    for name in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{name}/status") as status:
            blocked = next(line for line in status if line.startswith("SigBlk:"))
        if int(name) != pid and not int(blocked.split()[1], 16) & (1 << (signal.SIGINT - 1)):
            found.append(int(name))
    return found


def _wait_until_blocked_in_poll(pid: int) -> None:
    """Wait until the main thread of ``pid`` sleeps in the kernel's poll: a signal that
    arrives while it still runs Python is noticed anyway, and would prove nothing."""
    deadline = time.monotonic() + SOCKET_WAIT_S
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/wchan") as wchan:
            if "poll" in wchan.read():
                return
        time.sleep(0.01)


#: Linux's system call that signals one thread of a process, by machine.
TGKILL_SYSCALL = {"x86_64": 234, "aarch64": 131}


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.uname().machine not in TGKILL_SYSCALL,
    reason="needs Linux's /proc and tgkill (x86-64 or aarch64)",
)
def test_ctrl_c_delivered_to_another_thread_still_stops(make_image_message) -> None:
    """The kernel may hand a process's SIGINT to any thread that does not block it; the
    main thread, waiting on the socket, must still notice (it once waited forever)."""

    def signal_another_thread(process: subprocess.Popen) -> None:
        _wait_until_blocked_in_poll(process.pid)
        others = _threads_taking_sigint(process.pid)
        if not others:
            pytest.skip("jfsim dump runs no other thread that takes SIGINT here")
        libc = ctypes.CDLL(None, use_errno=True)
        tgkill = TGKILL_SYSCALL[os.uname().machine]
        assert libc.syscall(tgkill, process.pid, others[0], signal.SIGINT) == 0

    _interrupted_dump(make_image_message, signal_another_thread)
