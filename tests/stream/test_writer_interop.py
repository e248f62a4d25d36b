"""``jfsim stream`` into the reference writer ``jfsim write``: both real subprocesses."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from jfsim.experiment import experiment_preset
from jfsim.protocol import Compression, PixelArray
from jfsim.recording import RecordingWriter
from jfsim.series import end_message, image_message, start_message

JFSIM = Path(sys.executable).with_name("jfsim")


def test_two_writers_store_every_image_the_streamer_sends(tmp_path, start_streamer):
    experiment = experiment_preset("small-jf1m")
    dataset = dataclasses.replace(
        experiment.dataset, file_prefix="run/tiny", images_per_file=3, file_format="legacy"
    )
    experiment = dataclasses.replace(experiment, dataset=dataset)
    rng = np.random.default_rng(1)
    recording = tmp_path / "tiny.cbors"
    with RecordingWriter(recording) as writer:
        writer.write(start_message(experiment))
        for image_id in range(4):
            pixels = rng.poisson(0.5, experiment.detector.shape).astype(np.int16)
            writer.write(
                image_message(
                    experiment, image_id, PixelArray.from_numpy(pixels, Compression.BSLZ4)
                )
            )
        writer.write(end_message(experiment, 4))

    stream = start_streamer(
        "--recording", str(recording), "--images", "10",
        "--rate", "500Hz", "--start-timeout", "60s", "--json",
        sockets=2,
    )  # fmt: skip
    roots = [tmp_path / "writer0", tmp_path / "writer1"]
    writers = []
    for endpoint, root in zip(stream.endpoints, roots, strict=True):
        root.mkdir()
        command = [str(JFSIM), "write", "-R", str(root), "--once", "--json", "--timeout", "60"]
        writers.append(
            subprocess.Popen(
                [*command, endpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    stream_code, stream_stdout, stream_stderr = stream.finish(120)
    results = []
    for writer in writers:
        stdout, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
        results.append(json.loads(stdout))

    assert stream_code == 0, stream_stderr
    assert json.loads(stream_stdout)["images_per_socket"] == [6, 4]  # files 0, 2 | 1, 3
    for result in results:
        assert result["state"] == "completed"
        assert result["images_expected"] == 10
    assert [result["images_written"] for result in results] == [6, 4]
    masters = [
        [name for name in result["files"] if name.endswith("_master.h5")] for result in results
    ]
    assert masters == [["run/tiny_master.h5"], []]
