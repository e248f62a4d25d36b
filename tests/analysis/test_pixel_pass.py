"""Pixel statistics, azimuthal bins and ROIs of the CPU engine against plain numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jfsim.analysis.analyse import ImageAnalyser
from jfsim.analysis.settings import ProcessSettings
from tests.analysis.oracle import reference_profile
from tests.analysis.synthetic import ERROR, SATURATION, synthetic_plan

SHAPE = (120, 160)


def _frame(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = rng.poisson(4.0, size=SHAPE).astype(np.int16) - 1  # JUNGFRAU: a few negatives
    frame[rng.random(SHAPE) < 0.003] = ERROR
    frame[rng.random(SHAPE) < 0.001] = SATURATION
    return frame


def _valid() -> np.ndarray:
    valid = np.ones(SHAPE, dtype=bool)
    valid[:, 77:80] = False
    return valid


ROIS = {
    "box": {
        "rois": [{"name": "box", "min_x_pxl": 5, "max_x_pxl": 40, "min_y_pxl": 10, "max_y_pxl": 30}]
    },
    "circle": {
        "rois": [{"name": "disc", "center_x_pxl": 100, "center_y_pxl": 70, "radius_pxl": 12.5}]
    },
    "azim": {
        "rois": [
            {"name": "ring", "q_min_recipA": 1.0, "q_max_recipA": 1.5},
            {
                "name": "sector",
                "q_min_recipA": 0.5,
                "q_max_recipA": 2.0,
                "phi_min_deg": 300,
                "phi_max_deg": 40,
            },
        ]
    },
}


@pytest.fixture(scope="module")
def analysed() -> tuple:
    settings = ProcessSettings.from_mapping(
        {"azim_int": {"q_spacing": 0.05, "azimuthal_bins": 3}, "roi": ROIS}
    )
    plan = synthetic_plan(settings, valid=_valid())
    frame = _frame(7)
    return plan, frame, ImageAnalyser(plan, device="cpu").analyse(0, frame)


def test_pixel_statistics(analysed: tuple) -> None:
    plan, frame, result = analysed
    sensitive = _valid()
    viable = sensitive & (frame != ERROR) & (frame < SATURATION)
    stats = result.pixels
    assert stats.error_pixels == int((sensitive & (frame == ERROR)).sum()) > 0
    assert stats.saturated_pixels == int((sensitive & (frame == SATURATION)).sum()) > 0
    assert stats.min_value == int(frame[viable].min()) == -1
    assert stats.max_value == int(frame[viable].max())
    assert stats.pixel_sum == int(frame[viable].astype(np.int64).sum())
    d_A = 2.0 * math.pi / plan.maps.q_recipA
    band = viable & (d_A >= 3.0) & (d_A <= 5.0)
    assert stats.bkg_estimate == pytest.approx(frame[band].mean())


def test_azimuthal_profile_equals_the_bincount_oracle(analysed: tuple) -> None:
    plan, frame, result = analysed
    azimuthal = plan.azimuthal
    mean, std, count = reference_profile(
        frame,
        _valid(),
        azimuthal.bin_map,
        azimuthal.correction,
        azimuthal.n_bins,
        error=ERROR,
        saturation=SATURATION,
    )
    assert result.azimuthal.mean.shape == (3, azimuthal.n_q)
    np.testing.assert_array_equal(result.azimuthal.count.ravel(), count)
    np.testing.assert_allclose(result.azimuthal.mean.ravel(), mean, rtol=1e-6)
    np.testing.assert_allclose(result.azimuthal.std.ravel(), std, rtol=1e-5)
    assert np.isfinite(mean).sum() > 20


def test_bins_cover_the_detector_up_to_its_corner(analysed: tuple) -> None:
    plan, _, _ = analysed
    azimuthal = plan.azimuthal
    inside = np.isfinite(plan.maps.q_recipA) & (plan.maps.q_recipA >= 0.1) & _valid()
    assert np.array_equal(azimuthal.bin_map >= 0, inside)
    assert azimuthal.bin_to_q_recipA[0, -1] + 0.025 >= np.nanmax(plan.maps.q_recipA)
    phi = azimuthal.bin_to_phi_deg[:, 0]
    np.testing.assert_allclose(phi, [60.0, 180.0, 300.0])


def test_rois_equal_numpy_masks(analysed: tuple) -> None:
    plan, frame, result = analysed
    rows, cols = np.indices(SHAPE)
    q = plan.maps.q_recipA
    phi_deg = np.degrees(plan.maps.phi_rad.astype(np.float64))
    footprints = {
        "box": (cols >= 5) & (cols <= 40) & (rows >= 10) & (rows <= 30),
        "disc": (cols - 100) ** 2 + (rows - 70) ** 2 <= 12.5**2,
        "ring": (q >= 1.0) & (q < 1.5),
        "sector": (q >= 0.5) & (q < 2.0) & ((phi_deg >= 300) | (phi_deg < 40)),
    }
    viable = _valid() & (frame != ERROR) & (frame < SATURATION)
    assert list(result.rois) == ["box", "disc", "ring", "sector"]
    for bit, (name, footprint) in enumerate(footprints.items()):
        assert np.array_equal((plan.rois.roi_map >> bit) & 1 == 1, footprint), name
        values = frame[footprint & viable].astype(np.int64)
        roi = result.rois[name]
        assert roi.npixel == values.size > 10
        assert roi.sum == values.sum()
        assert roi.sum_sq == (values * values).sum()
        assert roi.max == values.max()
        weights = np.where(footprint & viable, frame, 0).astype(np.float64)
        assert roi.x == pytest.approx((weights * cols).sum() / weights.sum())
        assert roi.y == pytest.approx((weights * rows).sum() / weights.sum())
