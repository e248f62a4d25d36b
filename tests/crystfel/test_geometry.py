"""CrystFEL geometry files: panels tile the image and skip the gaps, and place the pixels
where jfsim's renderer puts them."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from jfsim.crystfel import FRAME_KEYS, GeometryTarget, crystfel_geometry
from jfsim.crystfel.geometry import BAD_MASK_BITS, MASK_FILE_DATASET
from jfsim.detectors import DETECTOR_PRESETS, MASK_GAP
from jfsim.experiment import detector_panel, experiment_preset

JFSIM = Path(sys.executable).with_name("jfsim")


def parse_geometry(text: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """CrystFEL's ``key = value`` lines: global keys, and ``panel/key`` per panel."""
    globals_: dict[str, str] = {}
    panels: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        line = line.split(";", 1)[0].strip()
        if not line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if "/" in key:
            panel, field = key.split("/", 1)
            panels.setdefault(panel, {})[field] = value
        else:
            assert key not in globals_, f"global {key} given twice"
            globals_[key] = value
    return globals_, panels


def _vector(text: str) -> np.ndarray:
    parts = text.replace("x", " x").replace("y", " y").replace("z", " z").split()
    vector = dict.fromkeys("xyz", 0.0)
    for number, axis in zip(parts[::2], parts[1::2], strict=True):
        vector[axis] = float(number)
    return np.array([vector["x"], vector["y"], vector["z"]])


def _experiment(detector: str):
    experiment = experiment_preset("small-jf1m")
    return replace(experiment, detector=DETECTOR_PRESETS[detector])


@pytest.mark.parametrize("detector", sorted(DETECTOR_PRESETS))
def test_panels_tile_the_image_and_skip_the_gaps(detector: str) -> None:
    experiment = _experiment(detector)
    _globals, panels = parse_geometry(crystfel_geometry(experiment))
    height, width = experiment.detector.shape
    covered = np.zeros((height, width), dtype=np.int32)
    for fields in panels.values():
        ss = slice(int(fields["min_ss"]), int(fields["max_ss"]) + 1)
        fs = slice(int(fields["min_fs"]), int(fields["max_fs"]) + 1)
        covered[ss, fs] += 1
    sensor = (experiment.detector.pixel_mask() & MASK_GAP) == 0
    assert len(panels) == len(experiment.detector.modules)
    assert covered.max() == 1, "panels overlap"
    np.testing.assert_array_equal(covered == 1, sensor)


@pytest.mark.parametrize("tilted", [False, True], ids=["untilted", "tilted"])
def test_panel_corners_and_axes_reproduce_jfsim_pixel_positions(tilted: bool) -> None:
    experiment = experiment_preset("lysozyme-stills-jf4m")
    if tilted:
        position = replace(
            experiment.position, poni_rot1_rad=0.02, poni_rot2_rad=-0.015, poni_rot3_rad=0.01
        )
        experiment = replace(experiment, position=position)
    position = experiment.position
    panel = detector_panel(experiment)
    globals_, panels = parse_geometry(crystfel_geometry(experiment))
    pixel_m = 1.0 / float(globals_["res"])
    clen_m = position.distance_mm * 1e-3  # the stream's detector_distance key carries it
    rng = np.random.default_rng(5)
    for name, fields in panels.items():
        corner = np.array([float(fields["corner_x"]), float(fields["corner_y"]), 0.0]) * pixel_m
        corner[2] = clen_m + float(fields["coffset"])
        fs, ss = _vector(fields["fs"]), _vector(fields["ss"])
        for _ in range(5):
            # CrystFEL: a peak at (fs, ss) px from the panel corner sits at corner + fs·f̂ + ss·ŝ
            local_fs = rng.uniform(0, int(fields["max_fs"]) - int(fields["min_fs"]) + 1)
            local_ss = rng.uniform(0, int(fields["max_ss"]) - int(fields["min_ss"]) + 1)
            crystfel_m = corner + (local_fs * fs + local_ss * ss) * pixel_m
            jfsim_mm = panel.pixel_to_lab_mm(
                local_fs + int(fields["min_fs"]), local_ss + int(fields["min_ss"])
            )
            np.testing.assert_allclose(crystfel_m * 1e3, jfsim_mm, atol=1e-6, err_msg=name)


def test_stream_geometry_reads_the_frame_keys() -> None:
    globals_, _panels = parse_geometry(crystfel_geometry(experiment_preset("small-jf1m")))
    assert globals_["data"] in FRAME_KEYS
    assert globals_["photon_energy"] == "beam_energy eV"
    assert globals_["clen"] == "detector_distance mm"
    assert globals_["peak_list"] == "peak_list"
    assert globals_["adu_per_photon"] == "1"
    assert float(globals_["res"]) == pytest.approx(1 / 75e-6)
    assert globals_["flag_lessthan"] == "-32767"  # JUNGFRAU error pixels read -32768
    assert not any(key.startswith("dim") for key in globals_), "MessagePack takes no dims"


def test_hdf5_geometry_reads_jfsim_files() -> None:
    globals_, _panels = parse_geometry(
        crystfel_geometry(_experiment("EIGER2_4M"), GeometryTarget.HDF5)
    )
    assert globals_["data"] == "/entry/data/data"
    assert (globals_["dim0"], globals_["dim1"], globals_["dim2"]) == ("%", "ss", "fs")
    assert globals_["peak_list"] == "/entry/MX"
    assert globals_["peak_list_type"] == "cxi"
    assert globals_["wavelength"] == "/entry/instrument/beam/incident_wavelength A"
    assert globals_["clen"] == "/entry/instrument/detector/distance m"
    assert globals_["mask0_data"] == "/entry/instrument/detector/pixel_mask"
    assert int(globals_["mask0_badbits"], 16) == BAD_MASK_BITS
    assert globals_["flag_morethan"] == str(2**32 - 2)  # EIGER error pixels read 2^32 - 1


def test_mask_file_only_for_the_stream_target() -> None:
    with pytest.raises(ValueError, match="stream target"):
        crystfel_geometry(experiment_preset("small-jf1m"), "hdf5", mask_file="m.h5")


def test_cli_writes_geometry_and_mask_and_refuses_to_overwrite(tmp_path: Path) -> None:
    geom, mask = tmp_path / "run.geom", tmp_path / "run_mask.h5"
    command = [str(JFSIM), "geometry", "--crystfel", "small-jf1m", "-o", str(geom)]
    done = subprocess.run(
        [*command, "--mask-file", str(mask), "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    globals_, panels = parse_geometry(geom.read_text())
    assert globals_["mask0_file"] == str(mask)
    assert globals_["mask0_data"] == MASK_FILE_DATASET
    assert len(panels) == 2
    with h5py.File(mask, "r") as h5:
        np.testing.assert_array_equal(
            h5[MASK_FILE_DATASET][()], DETECTOR_PRESETS["JF1M"].pixel_mask()
        )
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2
    assert "exists" in again.stderr and "--overwrite" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.geom", "run_mask.h5"]


def test_cli_unknown_experiment_is_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(JFSIM), "geometry", "--crystfel", "no-such-thing", "-o", str(tmp_path / "g.geom")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no-such-thing" in done.stderr
    assert not any(tmp_path.iterdir())
