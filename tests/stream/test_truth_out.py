"""The truth of a stream whose images reuse frames: image k = frame k mod K, seen at k."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jfsim.experiment import StillsScan, experiment_preset
from jfsim.geometry import rotation_matrix
from jfsim.sim import Scene
from jfsim.stream.truth_out import FrameTruth, reused_truth, write_streamed_truth
from jfsim.truth import read_truth


@pytest.fixture(scope="module")
def rotation():
    experiment = experiment_preset("small-jf1m")
    scene = Scene(experiment)
    return experiment, [scene.image(frame)[0] for frame in range(3)]


def test_a_streamed_truth_maps_every_image_to_the_frame_it_sends(tmp_path, rotation):
    experiment, truths = rotation
    frames = [FrameTruth(truth, bytes([frame + 1]) * 32) for frame, truth in enumerate(truths)]
    path = write_streamed_truth(tmp_path / "s_truth.h5", experiment, frames, 8, max_lattices=1)

    written = read_truth(path)
    assert list(written.image_id) == list(range(8))
    assert written.experiment["dataset"]["number_of_images"] == 8
    for image_id in range(8):
        frame = image_id % 3
        assert bytes(written.pixel_sha256[image_id]) == bytes([frame + 1]) * 32
        sent = truths[frame].reflections
        table = written.image_reflections(image_id)
        np.testing.assert_array_equal(table.x_pxl, sent.x_pxl)
        np.testing.assert_array_equal(table.intensity_photons, sent.intensity_photons)


def test_a_repeated_rotation_frame_keeps_its_lattice_as_seen_at_its_own_angle(rotation):
    experiment, truths = rotation
    scan = experiment.scan
    frame, image_id = truths[1], 7

    reused = reused_truth(frame, image_id, experiment)

    def at_middle(ub: np.ndarray, image: int) -> np.ndarray:
        angle = scan.start_rad + (image + 0.5) * scan.step_rad
        return rotation_matrix(scan.axis_vector, angle) @ ub

    assert reused.image_id == image_id
    np.testing.assert_allclose(
        at_middle(reused.ub_matrices[0], image_id), at_middle(frame.ub_matrices[0], 1), atol=1e-12
    )
    shift_deg = np.degrees(6 * scan.step_rad)
    np.testing.assert_allclose(
        reused.reflections.phi_deg, frame.reflections.phi_deg + shift_deg, atol=1e-9
    )


def test_a_repeated_still_is_the_same_truth_under_another_id(rotation):
    experiment, truths = rotation
    stills = dataclasses.replace(experiment, scan=StillsScan())
    reused = reused_truth(truths[0], 5, stills)
    assert reused.image_id == 5
    np.testing.assert_array_equal(reused.ub_matrices, truths[0].ub_matrices)
    assert reused.reflections is truths[0].reflections
