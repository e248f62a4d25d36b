"""``jfsim simulate`` as a user runs it: a real subprocess writing real files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jfsim.experiment import experiment_preset, experiment_to_dict
from jfsim.recording import read_recording
from jfsim.truth import read_truth

JFSIM = Path(sys.executable).with_name("jfsim")


def _jfsim(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(JFSIM), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_simulate_writes_recording_and_truth(tmp_path: Path) -> None:
    result = _jfsim(
        "simulate",
        "--preset",
        "small-jf1m",
        "--images",
        "2",
        "-o",
        "out/small",
        "--device",
        "cpu",
        "--seed",
        "5",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["images"] == 2 and summary["engine"] == "cpu"
    assert summary["reflections"] > 100 and summary["mean_spots_per_image"] > 10
    recording = tmp_path / "out" / "small.cbors"
    truth_file = tmp_path / "out" / "small_truth.h5"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "small.cbors",
        "small_truth.h5",
    ]
    messages = list(read_recording(recording))
    assert [m.type for m in messages] == ["start", "image", "image", "end"]
    assert messages[0]["number_of_images"] == 2
    assert messages[-1]["images_collected"] == 2
    truth = read_truth(truth_file)
    assert truth.seed == 5
    for image_id, message in enumerate(messages[1:3]):
        assert message["image_id"] == image_id
        pixels = message["data"]["default"]
        assert pixels.compression.value == "bslz4"
        frame = pixels.to_numpy()
        assert frame.shape == (1064, 1030) and frame.dtype == np.int16
        assert np.all(frame[514:550] == -32768)  # the gap between the two modules
        assert message["analysis_source"] == "jfsim-truth"
        spots = message["spots"]
        assert len(spots) > 10
        table = truth.image_reflections(image_id)
        brightest = int(np.argmax(np.where(table.masked, -1.0, table.intensity_photons)))
        assert spots[0]["x"] == pytest.approx(table.x_pxl[brightest] - 0.5)
        assert spots[0]["y"] == pytest.approx(table.y_pxl[brightest] - 0.5)
        assert (spots[0]["h"], spots[0]["k"], spots[0]["l"]) == tuple(table.hkl[brightest])
        assert len(message["indexing_lattice"]) == 9
        # the truth's content checksum: SHA-256 of the recorded pixels as little-endian int16
        digest = hashlib.sha256(frame.astype("<i2").tobytes()).digest()
        assert truth.pixel_sha256 is not None and bytes(truth.pixel_sha256[image_id]) == digest


def test_simulate_from_an_experiment_file_reports_progress_and_a_summary_table(
    tmp_path: Path,
) -> None:
    document = experiment_to_dict(experiment_preset("small-jf1m"))
    document["scan"] = {"type": "stills", "hit_rate": 1.0, "lattices_per_hit": 1}
    (tmp_path / "stills.json").write_text(json.dumps(document))
    result = _jfsim(
        "simulate",
        "--experiment",
        "stills.json",
        "--images",
        "2",
        "-o",
        "st",
        "--device",
        "auto",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "simulate: 2/2 images" in result.stderr
    assert "frames_per_s" in result.stdout and "mean_spots_per_image" in result.stdout
    truth = read_truth(tmp_path / "st_truth.h5")
    assert truth.scan_type == "stills" and list(truth.n_lattices) == [1, 1]


def test_gpu_without_cuda_is_a_clear_error(tmp_path: Path) -> None:
    from numba import cuda

    if cuda.is_available():
        pytest.skip("a CUDA device is present: --device gpu would work here")
    result = _jfsim(
        "simulate",
        "--preset",
        "small-jf1m",
        "--images",
        "1",
        "-o",
        "x",
        "--device",
        "gpu",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device found" in lines[0] and "--device cpu" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[crystal]\nunit_cell = [1, 2]\n")
    result = _jfsim("simulate", "--experiment", str(bad), "-o", "x", cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "bad.toml" in result.stderr
    result = _jfsim("simulate", "--preset", "no-such", "-o", "x", cwd=tmp_path)
    assert result.returncode == 2 and "small-jf1m" in result.stderr
    result = _jfsim("simulate", "--preset", "small-jf1m", "--images", "0", "-o", "x", cwd=tmp_path)
    assert result.returncode == 2 and "--images" in result.stderr
    assert not (tmp_path / "x.cbors").exists()


def test_help_teaches_with_an_example(tmp_path: Path) -> None:
    result = _jfsim("simulate", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "jfsim simulate --preset small-jf1m" in result.stdout
    assert "--device" in result.stdout and "--noise-bank" in result.stdout
