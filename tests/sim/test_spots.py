"""Rendered spots: where they land, what they hold, what they never touch."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest

from jfsim.experiment import Background, Experiment, StillsScan
from jfsim.sim import Renderer

NO_BACKGROUND = Background(
    constant_photons=0.0, water_ring_photons=0.0, air_scatter_photons=0.0, poisson_noise=True
)


def _isolated_strong(renderer: Renderer, image_id: int, min_photons: float) -> list[int]:
    """Rows of strong reflections whose ±4 px window is all sensor and holds no other spot."""
    table = renderer.truth(image_id).reflections
    sensitive = renderer.plan.pixel_class == 0
    height, width = sensitive.shape
    rows = []
    for i in np.nonzero(table.intensity_photons >= min_photons)[0]:
        x, y = table.x_pxl[i], table.y_pxl[i]
        col, row = int(x), int(y)
        if not (4 <= col < width - 4 and 4 <= row < height - 4):
            continue
        if not sensitive[row - 4 : row + 5, col - 4 : col + 5].all():
            continue
        others = np.hypot(table.x_pxl - x, table.y_pxl - y)
        if np.sum(others < 8.0) > 1:
            continue
        rows.append(int(i))
    return rows


def _centroid(image: np.ndarray, x_pxl: float, y_pxl: float) -> tuple[float, float]:
    col, row = int(x_pxl), int(y_pxl)
    window = image[row - 4 : row + 5, col - 4 : col + 5].astype(np.float64)
    ys, xs = np.mgrid[row - 4 : row + 5, col - 4 : col + 5] + 0.5  # pixel centres
    total = window.sum()
    return float((window * xs).sum() / total), float((window * ys).sum() / total)


@pytest.mark.parametrize("scan_kind", ["rotation", "stills"])
def test_strong_spot_centroids_within_0_3_px_of_prediction(scan_kind: str, make_experiment) -> None:
    if scan_kind == "stills":  # a sharp crystal, so that few spots overlap on the small panel
        experiment = make_experiment(
            scan=StillsScan(hit_rate=1.0),
            background=NO_BACKGROUND,
            mosaicity_deg=0.01,
            bandwidth_fraction=2e-4,
            domain_size_A=20000.0,
        )
    else:
        experiment = make_experiment(background=NO_BACKGROUND)
    renderer = Renderer(experiment, device="cpu")
    checked = 0
    for image_id in range(2):
        expected = renderer.expectation(image_id)
        noisy = renderer.render(image_id).pixels
        table = renderer.truth(image_id).reflections
        for i in _isolated_strong(renderer, image_id, min_photons=2000.0):
            for image in (expected, noisy):
                cx, cy = _centroid(image, table.x_pxl[i], table.y_pxl[i])
                assert math.hypot(cx - table.x_pxl[i], cy - table.y_pxl[i]) < 0.3, (image_id, i)
            checked += 1
    assert checked >= 5


def test_expected_counts_of_a_spot_are_conserved(make_experiment) -> None:
    experiment = make_experiment(background=NO_BACKGROUND)
    renderer = Renderer(experiment, device="cpu")
    expected = renderer.expectation(0)
    table = renderer.truth(0).reflections
    for i in _isolated_strong(renderer, 0, min_photons=500.0)[:10]:
        col, row = int(table.x_pxl[i]), int(table.y_pxl[i])
        total = expected[row - 4 : row + 5, col - 4 : col + 5].sum()
        assert total == pytest.approx(table.intensity_photons[i], rel=2e-3)


def test_no_photons_in_gaps_and_gaps_read_the_error_value(make_experiment) -> None:
    experiment = make_experiment(intensity_scale_photons=1e5)
    renderer = Renderer(experiment, device="cpu")
    gap = renderer.plan.pixel_class == 1
    assert gap.sum() == 12 * 160
    for image_id in range(3):
        expected = renderer.expectation(image_id)
        np.testing.assert_array_equal(expected[gap], renderer.plan.background_photons[gap])
        pixels = renderer.render(image_id).pixels
        assert np.all(pixels[gap] == experiment.detector.error_value)
        assert np.all(pixels[~gap] != experiment.detector.error_value)


def test_truth_has_no_systematic_absences_and_flags_masked_spots(
    stills_experiment: Experiment,
) -> None:
    renderer = Renderer(stills_experiment, device="cpu")
    operations = gemmi.find_spacegroup_by_number(96).operations()
    masked_seen = 0
    for image_id in range(4):
        table = renderer.truth(image_id).reflections
        assert len(table) > 20
        assert not any(operations.is_systematically_absent(list(map(int, h))) for h in table.hkl)
        rows = np.floor(table.y_pxl).astype(int)
        cols = np.floor(table.x_pxl).astype(int)
        np.testing.assert_array_equal(table.masked, renderer.plan.pixel_class[rows, cols] != 0)
        masked_seen += int(table.masked.sum())
    assert masked_seen > 0


def test_saturated_pixels_read_the_saturation_value(make_experiment) -> None:
    experiment = make_experiment(intensity_scale_photons=3e6)
    pixels = Renderer(experiment, device="cpu").render(0).pixels
    assert pixels.max() == experiment.detector.saturation_value == 32767
    assert np.count_nonzero(pixels == 32767) > 0


def test_eiger2_unsigned_sentinels(make_experiment) -> None:
    experiment = make_experiment(image_dtype="uint32", intensity_scale_photons=1e4)
    image = Renderer(experiment, device="cpu").render(1).pixels
    assert image.dtype == np.dtype("<u4")
    gap = image[80:92]
    assert np.all(gap == np.iinfo(np.uint32).max)
    assert experiment.detector.saturation_value == np.iinfo(np.uint32).max - 1


def test_same_seed_same_image_in_any_order_other_seed_other_noise(make_experiment) -> None:
    first = Renderer(make_experiment(seed=5), device="cpu")
    a2 = first.render(2).pixels
    second = Renderer(make_experiment(seed=5), device="cpu")
    second.render(0)
    np.testing.assert_array_equal(second.render(2).pixels, a2)
    other = Renderer(make_experiment(seed=6), device="cpu").render(2).pixels
    assert np.count_nonzero(other != a2) > 1000
