"""jfsim's own streams pass ``jfconform stream``: every preset on two image sockets, through
the real command-line tools over loopback TCP (the preview and metadata sockets are judged in
tests/stream/test_stream_judge.py, where the subscription can be awaited).

The judge connects first (ZeroMQ retries until the streamer binds), the streamer then waits
for it as for a writer; the judge stops once the series has ended on every socket.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jfsim.experiment import experiment_preset_names

BIN = Path(sys.executable).parent
TIMEOUT_S = 300
N_IMAGES = 5


def _endpoints(count: int) -> list[str]:
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [f"tcp://127.0.0.1:{probe.getsockname()[1]}" for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _judge(*arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "jfconform"), "stream", "--json", "--timeout", "240s", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    finally:
        process.kill()
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("preset", experiment_preset_names())
def test_jfsim_streams_of_every_preset_pass_on_two_sockets(preset: str) -> None:
    image_a, image_b = _endpoints(2)
    judge = _judge("--decompress", image_a, image_b)
    stream = subprocess.run(
        [
            str(BIN / "jfsim"), "stream", "--preset", preset, "--images", str(N_IMAGES),
            "--pool", "2", "--rate", "max", "--endpoint", image_a, "--endpoint", image_b,
            "--start-timeout", "120s", "--json",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )  # fmt: skip
    code, stdout, stderr = _finish(judge)
    assert stream.returncode == 0, stream.stderr
    assert code == 0, stdout + stderr
    report = json.loads(stdout)
    assert report["summary"]["errors"] == report["summary"]["warnings"] == 0, report["findings"]
    assert report["stream"]["by_type"] == {"start": 2, "image": N_IMAGES, "end": 2}
    assert report["stream"]["stopped_by"] == "series ended"
    assert [len(r) for r in (report["files"], report["stream"]["per_socket"])] == [2, 2]
