"""Scan modes, engine selection and scene-level options."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from jfsim.errors import ConfigError
from jfsim.experiment import GridScan, StillsScan
from jfsim.sim import Renderer, Scene, select_engine, simulate
from jfsim.truth_analysis import analysis_from_truth


def test_unknown_device_and_bad_bank_are_config_errors(rotation_experiment) -> None:
    with pytest.raises(ConfigError, match="cpu, gpu, auto"):
        select_engine("tpu")
    with pytest.raises(ConfigError, match="noise_bank_frames"):
        Renderer(rotation_experiment, device="cpu", noise_bank_frames=-1)


def test_grid_scan_has_hits_and_misses_with_at_most_one_lattice(make_experiment) -> None:
    experiment = make_experiment(scan=GridScan(n_fast=4, n_slow=3, hit_rate=0.5), seed=2)
    scene = Scene(experiment)
    lattices = [scene.image(i)[0].n_lattices for i in range(12)]
    assert set(lattices) == {0, 1}
    miss = lattices.index(0)
    truth, spots = scene.image(miss)
    assert len(truth.reflections) == 0 and len(spots) == 0
    assert analysis_from_truth(truth, experiment).indexed is False


def test_stills_with_two_lattices_index_both(make_experiment) -> None:
    experiment = make_experiment(scan=StillsScan(hit_rate=1.0, lattices_per_hit=2))
    truth = Scene(experiment).image(0)[0]
    assert truth.n_lattices == 2
    assert set(np.unique(truth.reflections.lattice)) == {0, 1}
    u0, u1 = (ub @ np.linalg.inv(Scene(experiment).b_matrix) for ub in truth.ub_matrices)
    assert not np.allclose(u0, u1)


def test_rotation_lattice_in_analysis_follows_the_goniometer(rotation_experiment) -> None:
    scene = Scene(rotation_experiment)
    first = analysis_from_truth(scene.image(0)[0], rotation_experiment).lattice_A
    later = analysis_from_truth(scene.image(3)[0], rotation_experiment).lattice_A
    # a turns by 3 images × 0.5° about the axis; its length stays the cell's a
    assert np.linalg.norm(first[0]) == pytest.approx(79.1)
    angle = math.degrees(math.acos(np.dot(first[0], later[0]) / 79.1**2))
    assert 0 < angle <= 1.5 + 1e-9


def test_transmission_scales_spots_and_background(rotation_experiment) -> None:
    dimmed = replace(rotation_experiment, beam=replace(rotation_experiment.beam, transmission=0.25))
    full_scene, dim_scene = Scene(rotation_experiment), Scene(dimmed)
    full_truth, dim_truth = full_scene.image(1)[0], dim_scene.image(1)[0]
    np.testing.assert_allclose(
        dim_truth.reflections.intensity_photons, 0.25 * full_truth.reflections.intensity_photons
    )
    np.testing.assert_allclose(
        dim_scene.frame_plan().background_photons,
        0.25 * full_scene.frame_plan().background_photons,
        rtol=1e-6,
    )


def test_simulate_yields_requested_images_in_order(rotation_experiment) -> None:
    images = list(simulate(rotation_experiment, device="cpu", image_ids=[2, 0]))
    assert [image.image_id for image in images] == [2, 0]
    assert all(image.engine == "cpu" for image in images)
    assert images[0].pixels.shape == rotation_experiment.detector.shape


def test_write_simulation_of_a_grid_scan(tmp_path, make_experiment) -> None:
    from jfsim.recording import read_recording
    from jfsim.simulate import write_simulation
    from jfsim.truth import read_truth

    experiment = make_experiment(scan=GridScan(n_fast=2, n_slow=2, hit_rate=0.5))
    with pytest.raises(ConfigError, match="grid positions"):
        write_simulation(experiment, tmp_path / "too_many", n_images=5, device="cpu")
    assert list(tmp_path.iterdir()) == []
    seen: list[tuple[int, int]] = []
    summary = write_simulation(
        experiment,
        tmp_path / "grid" / "run",
        n_images=4,
        device="cpu",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert summary.images == 4 and summary.engine == "cpu"
    truth = read_truth(summary.truth_path)
    assert truth.scan_type == "grid" and len(truth.n_lattices) == 4
    assert summary.reflections == len(truth.reflections["h"])
    messages = list(read_recording(summary.recording_path))
    assert [m.type for m in messages] == ["start"] + ["image"] * 4 + ["end"]
    for message, lattices in zip(messages[1:5], truth.n_lattices, strict=True):
        assert message["indexing_result"] is bool(lattices)
