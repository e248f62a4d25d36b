"""The whole pipeline through the real command-line tools, as a beamline would run it.

jfsim simulate (ground truth) → jfsim stream (PUSH, real TCP on loopback) → jfsim write
(PULL, NXmx files) → jfconform check --truth: the files must conform and their analysis
arrays must agree with what the simulated data really contains.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 - registers the bitshuffle filter for reading
import numpy as np
import pytest

from jfsim.experiment import experiment_preset, experiment_to_dict
from jfsim.recording import read_recording

BIN = Path(sys.executable).parent
N_IMAGES = 6


def run(*args: object, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One experiment per layout (same seed, so the same pixels) and the simulated truth."""
    folder = tmp_path_factory.mktemp("pipeline")
    document = experiment_to_dict(experiment_preset("small-jf1m"))
    document["dataset"] |= {"number_of_images": N_IMAGES, "images_per_file": 4}
    paths = {}
    for layout in ("legacy", "vds", "integrated"):
        document["dataset"] |= {"file_format": layout, "file_prefix": f"{layout}/run"}
        paths[layout] = folder / f"{layout}.json"
        paths[layout].write_text(json.dumps(document), encoding="utf-8")
    result = run(
        BIN / "jfsim",
        "simulate",
        "--experiment",
        paths["vds"],
        "--images",
        N_IMAGES,
        "-o",
        folder / "truth_run",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    paths["truth"] = folder / "truth_run_truth.h5"
    paths["recording"] = folder / "truth_run.cbors"
    paths["folder"] = folder
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["legacy", "vds", "integrated"])
def test_stream_write_check(simulated: dict[str, Path], layout: str, start_streamer):
    root = simulated["folder"] / f"files_{layout}"
    root.mkdir()
    stream = start_streamer(
        "--experiment", str(simulated[layout]), "--images", str(N_IMAGES),
        "--pool", str(N_IMAGES), "--rate", "200Hz", "--on-slow", "block",
        "--start-timeout", "60s", "--json",
    )  # fmt: skip
    writer = subprocess.Popen(
        [
            str(BIN / "jfsim"),
            "write",
            "-R",
            str(root),
            "--once",
            "--json",
            "--timeout",
            "120",
            stream.endpoints[0],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        streamed_code, streamed_out, streamed_err = stream.finish(180)
        assert streamed_code == 0, streamed_err
        assert json.loads(streamed_out)["images_sent"] == N_IMAGES
        out, err = writer.communicate(timeout=120)
    finally:
        writer.kill()
    assert writer.returncode == 0, err
    summary = json.loads(out)
    series = summary[0] if isinstance(summary, list) else summary
    assert (series["state"], series["images_written"], series["file_format"]) == (
        "completed",
        N_IMAGES,
        layout,
    )

    master = root / layout / "run_master.h5"
    assert master.is_file(), sorted(p.name for p in root.rglob("*"))
    assert not list(root.rglob("*.tmp")), "temporary files left behind"

    # Every image read back through the master equals the simulated image.
    simulated_frames = [
        m["data"]["default"].to_numpy()
        for m in read_recording(simulated["recording"])
        if m.type == "image"
    ]
    with h5py.File(master, "r") as f:
        data = f["/entry/data/data"] if "/entry/data/data" in f else None
        frames = (
            [data[i] for i in range(data.shape[0])]
            if data is not None
            else [
                f[f"/entry/data/{name}"][j]
                for name in sorted(f["/entry/data"])
                if name.startswith("data_")
                for j in range(f[f"/entry/data/{name}"].shape[0])
            ]
        )
    assert len(frames) == N_IMAGES
    for sent, stored in zip(simulated_frames, frames, strict=True):
        np.testing.assert_array_equal(sent, stored)

    checked = run(
        BIN / "jfconform", "check", master, "--truth", simulated["truth"], "--format", "json"
    )
    report = json.loads(checked.stdout)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert checked.returncode == 0, errors or checked.stderr
    assert report["truth"] is not None


@pytest.mark.slow
def test_pooled_stream_is_scored_against_the_truth_of_what_it_sent(
    simulated: dict[str, Path], start_streamer
):
    """Six images from a pool of three: image k sends frame k mod 3. ``--truth-out`` writes
    that truth, and the written files score perfectly against it; against the simulation's
    truth (six different images) frames 3-5 are caught as substitutions (TRUTH-009)."""
    root = simulated["folder"] / "pooled"
    root.mkdir()
    truth_out = simulated["folder"] / "pooled_truth.h5"
    stream = start_streamer(
        "--experiment", str(simulated["integrated"]), "--images", str(N_IMAGES),
        "--pool", "3", "--rate", "200Hz", "--on-slow", "block", "--start-timeout", "60s",
        "--truth-out", str(truth_out), "--json",
    )  # fmt: skip
    writer = subprocess.Popen(
        [str(BIN / "jfsim"), "write", "-R", str(root), "--once", "--json", "--timeout", "120",
         stream.endpoints[0]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        streamed_code, streamed_out, streamed_err = stream.finish(180)
        assert streamed_code == 0, streamed_err
        assert "images 3–5 repeat rendered frames 0–2" in streamed_err
        assert json.loads(streamed_out)["truth_file"] == str(truth_out)
        _out, err = writer.communicate(timeout=120)
    finally:
        writer.kill()
    assert writer.returncode == 0, err
    master = root / "integrated" / "run_master.h5"

    own = run(BIN / "jfconform", "check", master, "--truth", truth_out, "--format", "json")
    report = json.loads(own.stdout)
    assert own.returncode == 0, [f for f in report["findings"] if f["severity"] == "error"]
    assert report["truth"]["frames"]["frames_matching"] == N_IMAGES
    assert report["truth"]["scores"]["spot_recall"]["value"] == 1.0
    assert report["truth"]["scores"]["misorientation_deg"]["value"] < 1e-3

    simulation = run(
        BIN / "jfconform", "check", master, "--truth", simulated["truth"], "--format", "json"
    )
    errors = [f for f in json.loads(simulation.stdout)["findings"] if f["severity"] == "error"]
    assert simulation.returncode == 1
    assert [f["rule"] for f in errors] == ["TRUTH-009"]
    assert "frames 3–5" in errors[0]["message"] and "frame 3 = image 0" in errors[0]["message"]
