"""jfsim's own streams pass ``jfconform stream``: every preset on two image sockets, through
the real command-line tools over loopback TCP (the preview and metadata sockets are judged in
tests/stream/test_stream_judge.py, where the subscription can be awaited).

The streamer binds ``tcp://127.0.0.1:*`` and keeps its ports; the judge connects to the
ports it reports and stops once the series has ended on every socket.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jfsim.experiment import experiment_preset_names

JFCONFORM = Path(sys.executable).with_name("jfconform")
TIMEOUT_S = 300
N_IMAGES = 5


@pytest.mark.parametrize("preset", experiment_preset_names())
def test_jfsim_streams_of_every_preset_pass_on_two_sockets(preset: str, start_streamer) -> None:
    streamer = start_streamer(
        "--preset", preset, "--images", str(N_IMAGES), "--pool", "2", "--rate", "max",
        "--start-timeout", "120s", "--json",
        sockets=2,
    )  # fmt: skip
    judge = subprocess.run(
        [
            str(JFCONFORM),
            "stream",
            "--json",
            "--timeout",
            "240s",
            "--decompress",
            *streamer.endpoints,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    code, _stdout, stderr = streamer.finish()
    assert code == 0, stderr
    assert judge.returncode == 0, judge.stdout + judge.stderr
    report = json.loads(judge.stdout)
    assert report["summary"]["errors"] == report["summary"]["warnings"] == 0, report["findings"]
    assert report["stream"]["by_type"] == {"start": 2, "image": N_IMAGES, "end": 2}
    assert report["stream"]["stopped_by"] == "series ended"
    assert [len(r) for r in (report["files"], report["stream"]["per_socket"])] == [2, 2]
