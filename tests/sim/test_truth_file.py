"""The ground-truth file: exact layout, round trip, atomic write, refusal of other files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from jfsim.experiment import Experiment, StillsScan
from jfsim.sim import Renderer
from jfsim.truth import TruthError, TruthWriter, read_truth, truth_path

REFLECTION_COLUMNS = {
    "image_id": "int64",
    "lattice": "int32",
    "h": "int32",
    "k": "int32",
    "l": "int32",
    "x_pxl": "float64",
    "y_pxl": "float64",
    "phi_deg": "float64",
    "excitation_error_invA": "float64",
    "partiality": "float64",
    "intensity_photons": "float64",
    "d_A": "float64",
    "masked": "bool",
}


def _write(experiment: Experiment, path: Path, n_images: int) -> list:
    renderer = Renderer(experiment, device="cpu")
    truths = [renderer.truth(i) for i in range(n_images)]
    with TruthWriter(path, experiment, max_lattices=renderer.scene.max_lattices) as writer:
        for truth in truths:
            writer.write(truth)
    return truths


def test_rotation_truth_file_layout_with_plain_h5py(
    tmp_path: Path, rotation_experiment: Experiment
) -> None:
    path = truth_path(tmp_path / "run")
    assert path.name == "run_truth.h5"
    truths = _write(rotation_experiment, path, 3)
    assert not path.with_name(path.name + ".tmp").exists()
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "jfsim-truth"
        assert f.attrs["format_version"] == 1
        assert f.attrs["seed"] == rotation_experiment.seed
        assert "i + 0.5" in f.attrs["pixel_convention"]
        assert isinstance(f.attrs["jfsim_version"], str)
        e = f["experiment"]
        assert json.loads(e.attrs["json"])["seed"] == rotation_experiment.seed
        assert e["wavelength_A"][()] == pytest.approx(rotation_experiment.beam.wavelength_A)
        assert e["distance_mm"][()] == 60.0
        assert e["beam_x_pxl"][()] == 80.5 and e["beam_y_pxl"][()] == 86.0
        assert e["pixel_size_mm"][()] == pytest.approx(0.3)
        assert list(e["image_size_pxl"][()]) == [160, 172]
        np.testing.assert_allclose(e["unit_cell"][()], [79.1, 79.1, 37.9, 90, 90, 90])
        assert e["space_group_number"][()] == 96
        assert e["scan_type"][()].decode() == "rotation"
        np.testing.assert_allclose(e["rotation_axis"][()], [-1, 0, 0])
        assert e["rotation_start_deg"][()] == 0.0
        assert e["rotation_step_deg"][()] == pytest.approx(0.5)
        images = f["images"]
        assert images["ub_matrix"].shape == (3, 1, 3, 3)
        assert images["ub_matrix"].dtype == np.float64
        assert list(images["n_lattices"][()]) == [1, 1, 1]
        assert images["n_lattices"].dtype == np.int32
        np.testing.assert_allclose(images["ub_matrix"][1, 0], truths[1].ub_matrices[0])
        # no pixels were given: the checksum rows say "not recorded" (zeros)
        assert images["pixel_sha256"].shape == (3, 32) and images["pixel_sha256"].dtype == np.uint8
        assert not images["pixel_sha256"][()].any()
        assert images["pixel_sha256"].attrs["dtype"] == "<i2"
        assert "SHA-256" in images["pixel_sha256"].attrs["definition"]
        lengths = set()
        for name, dtype in REFLECTION_COLUMNS.items():
            dataset = f["reflections"][name]
            assert dataset.dtype == np.dtype(dtype), name
            assert "units" in dataset.attrs, name
            lengths.add(dataset.shape[0])
        assert lengths == {sum(len(t.reflections) for t in truths)}
        assert np.all(np.isnan(f["reflections/excitation_error_invA"][()]))
        assert not np.any(np.isnan(f["reflections/phi_deg"][()]))
        for group in (f["experiment"], f["images"]):
            for name, dataset in group.items():
                assert "units" in dataset.attrs, name


def test_stills_truth_round_trip_and_absent_lattices(tmp_path: Path, make_experiment) -> None:
    experiment = make_experiment(scan=StillsScan(hit_rate=0.5, lattices_per_hit=2), seed=4)
    path = tmp_path / "stills_truth.h5"
    truths = _write(experiment, path, 8)
    back = read_truth(path)
    assert back.scan_type == "stills"
    assert back.ub_matrix.shape == (8, 2, 3, 3)
    hits = [t.n_lattices for t in truths]
    assert set(hits) == {0, 2}  # with hit rate 0.5 both happen in 8 images for this seed
    assert list(back.n_lattices) == hits
    for row, truth in enumerate(truths):
        if truth.n_lattices == 0:
            assert np.all(np.isnan(back.ub_matrix[row]))
            assert len(back.image_reflections(truth.image_id)) == 0
            continue
        np.testing.assert_allclose(back.ub_matrix[row], truth.ub_matrices)
        table = back.image_reflections(truth.image_id)
        np.testing.assert_array_equal(table.hkl, truth.reflections.hkl)
        np.testing.assert_allclose(table.x_pxl, truth.reflections.x_pxl)
        assert set(np.unique(table.lattice)) == {0, 1}
        assert np.all(np.isnan(table.phi_deg))
        assert np.all(np.abs(table.excitation_error_invA) < 0.05)
    assert math.isnan(h5py.File(path, "r")["experiment/rotation_start_deg"][()])


def test_failed_write_leaves_no_file(tmp_path: Path, rotation_experiment: Experiment) -> None:
    path = tmp_path / "broken_truth.h5"
    with pytest.raises(RuntimeError), TruthWriter(path, rotation_experiment, max_lattices=1):
        raise RuntimeError("renderer died")
    assert list(tmp_path.iterdir()) == []


def test_read_truth_rejects_other_files(tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(TruthError, match="not a jfsim-truth file"):
        read_truth(other)
    garbage = tmp_path / "garbage_truth.h5"
    garbage.write_bytes(b"not hdf5 at all")
    with pytest.raises(TruthError, match="cannot read"):
        read_truth(garbage)
