"""Spot finding: Jungfraujoch's rule against a plain numpy/scipy oracle, and its filters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jfsim.analysis.analyse import ImageAnalyser
from jfsim.analysis.settings import ProcessSettings
from jfsim.analysis.spot_finding import ICE_RING_Q_RECIPA, group_strong_pixels
from tests.analysis.oracle import reference_spots
from tests.analysis.synthetic import ERROR, SATURATION, add_spot, synthetic_plan


def _settings(**spot: object) -> ProcessSettings:
    return ProcessSettings.from_mapping(
        {
            "spot_finding": {
                "high_resolution_limit": None,
                "min_pix_per_spot": 1,
                **spot,
            },
            "max_spots": 1000,
        }
    )


def _noisy_frame(seed: int, shape: tuple[int, int] = (120, 160)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = rng.poisson(1.5, size=shape).astype(np.int16)
    for _ in range(12):
        add_spot(
            frame,
            rng.uniform(5, shape[1] - 5),
            rng.uniform(5, shape[0] - 5),
            rng.uniform(30, 3000),
            rng.uniform(0.6, 1.5),
        )
    frame[rng.random(shape) < 0.002] = ERROR  # dead pixels, missed packets
    frame[40:42, 20:23] = SATURATION
    return frame


@pytest.mark.parametrize(
    ("threshold", "nsigma", "seed"), [(3, 3.0, 1), (10, 3.0, 2), (0, 4.0, 3), (5, 2.5, 4)]
)
def test_cpu_engine_finds_the_oracles_strong_pixels_and_spots(
    threshold: int, nsigma: float, seed: int
) -> None:
    valid = np.ones((120, 160), dtype=bool)
    valid[60:64, :] = False  # a module gap
    plan = synthetic_plan(
        _settings(photon_count_threshold=threshold, signal_to_noise_threshold=nsigma),
        valid=valid,
    )
    frame = _noisy_frame(seed)
    result = ImageAnalyser(plan, device="cpu").analyse(0, frame)
    expected = reference_spots(
        frame,
        valid,
        error=ERROR,
        saturation=SATURATION,
        threshold=threshold,
        nsigma=nsigma,
        half=plan.spots.window_half_pxl,
    )
    assert result.spots.strong_pixels == int(expected.strong.sum())
    assert len(result.spots) == len(expected.x) > 5
    found = sorted(zip(result.spots.y, result.spots.x, result.spots.intensity, strict=True))
    wanted = sorted(zip(expected.y, expected.x, expected.intensity, strict=True))
    np.testing.assert_allclose(np.array(found), np.array(wanted), rtol=1e-9)
    assert result.engine == "cpu"


def test_a_spot_sits_at_its_centroid_in_index_coordinates() -> None:
    plan = synthetic_plan(_settings(photon_count_threshold=2))
    frame = np.zeros((120, 160), dtype=np.int16)
    add_spot(frame, 40.3, 70.8, 5000.0, sigma_pxl=1.0)  # continuous coordinates
    spots = ImageAnalyser(plan, device="cpu").analyse(0, frame).spots
    assert len(spots) == 1
    # strong pixels only: the cut wings pull the centroid a little towards the peak pixel
    assert spots.x[0] == pytest.approx(40.3 - 0.5, abs=0.15)
    assert spots.y[0] == pytest.approx(70.8 - 0.5, abs=0.15)
    # the strong pixels hold most, not all, of the photons
    assert 0.6 * 5000.0 < spots.intensity[0] < 5000.0


def test_the_photon_threshold_is_exclusive_and_the_pixel_is_left_out_of_its_window() -> None:
    plan = synthetic_plan(_settings(photon_count_threshold=5, signal_to_noise_threshold=1.0))
    frame = np.zeros((120, 160), dtype=np.int16)
    frame[30, 30] = 5  # at the threshold: not strong
    frame[30, 90] = 6  # above it; its window is all zeros (σ = 0) when it is left out
    spots = ImageAnalyser(plan, device="cpu").analyse(0, frame).spots
    assert spots.strong_pixels == 1
    assert (spots.x[0], spots.y[0]) == (90.0, 30.0)


def test_error_saturated_and_masked_pixels_are_never_signal() -> None:
    valid = np.ones((120, 160), dtype=bool)
    valid[10:20, 10:20] = False
    plan = synthetic_plan(_settings(photon_count_threshold=2), valid=valid)
    frame = np.zeros((120, 160), dtype=np.int16)
    frame[50:53, 50:53] = SATURATION
    frame[15, 15] = 1000  # masked
    frame[80, 80] = ERROR
    result = ImageAnalyser(plan, device="cpu").analyse(0, frame)
    assert result.spots.strong_pixels == 0
    assert result.pixels.saturated_pixels == 9
    assert result.pixels.error_pixels == 1


def test_spot_size_limits() -> None:
    frame = np.zeros((120, 160), dtype=np.int16)
    frame[20, 20] = 100  # 1 pixel
    frame[60, 60:63] = 100  # 3 pixels
    frame[90:95, 100:105] = 100  # 25 pixels
    for low, high, expected in ((1, 50, 3), (2, 50, 2), (2, 10, 1), (30, 50, 0)):
        plan = synthetic_plan(_settings(min_pix_per_spot=low, max_pix_per_spot=high))
        assert len(ImageAnalyser(plan, device="cpu").analyse(0, frame).spots) == expected


def test_resolution_limits_ice_rings_and_max_spots() -> None:
    settings = _settings(
        photon_count_threshold=2,
        high_resolution_limit=2.5,
        ice_ring_width_q_recipA=0.02,
    )
    plan = synthetic_plan(settings)
    q = plan.maps.q_recipA
    frame = np.zeros((120, 160), dtype=np.int16)
    ice_q = ICE_RING_Q_RECIPA[2]  # 3.44 Å
    rows, cols = np.nonzero(np.abs(q - ice_q) < 0.004)
    frame[rows[0], cols[0]] = 300  # on the ring
    beyond = np.argwhere(2.0 * math.pi / q < 2.4)[0]
    frame[beyond[0], beyond[1]] = 300  # d < 2.5 Å: dropped
    inner = np.argwhere((2.0 * math.pi / q > 6.0) & (2.0 * math.pi / q < 8.0))[0]
    frame[inner[0], inner[1]] = 500
    spots = ImageAnalyser(plan, device="cpu").analyse(0, frame).spots
    assert spots.unfiltered == 3
    assert len(spots) == 2
    assert list(spots.ice_ring) == [False, True]  # strongest first
    assert spots.in_ice_rings == 1
    assert spots.d_A.min() >= 2.5
    one = synthetic_plan(ProcessSettings.from_mapping({**settings.as_dict(), "max_spots": 1}))
    kept = ImageAnalyser(one, device="cpu").analyse(0, frame).spots
    assert len(kept) == 1 and kept.intensity[0] == pytest.approx(500.0)


def test_grouping_follows_eight_connectivity() -> None:
    # rows/cols in row-major order: a diagonal pair, an L, and a lone pixel
    pixels = [(0, 0), (0, 5), (1, 1), (1, 5), (1, 6), (3, 9)]
    rows = np.array([p[0] for p in pixels], dtype=np.int64)
    cols = np.array([p[1] for p in pixels], dtype=np.int64)
    size, weight, _x, _y = group_strong_pixels(rows, cols, np.ones(len(pixels)))
    assert sorted(size.tolist()) == [1, 2, 3]
    assert weight.sum() == len(pixels)


@pytest.mark.parametrize("threshold", [0, 3, 30])
def test_both_window_sum_methods_of_the_cpu_engine_agree(threshold: int) -> None:
    """Few candidates: a window per candidate; many: running column sums. Same integers."""
    from jfsim.analysis.engines import cpu

    valid = np.ones((120, 160), dtype=bool)
    valid[:, 70:74] = False
    plan = synthetic_plan(_settings(photon_count_threshold=threshold), valid=valid)
    prepared = cpu.prepare(plan)
    frame = _noisy_frame(11)
    n = cpu.pixel_pass(prepared, frame.reshape(-1)).candidates
    assert n > 20
    outputs = []
    for test in (cpu._test_candidates, cpu._test_candidates_by_columns):
        rows, cols, excess = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n)
        found = test(
            frame, prepared.pixel_class_2d, prepared.candidates, n, plan.spots.window_half_pxl,
            ERROR, SATURATION, 3.0, plan.spots.min_window_pixels, rows, cols, excess,
        )  # fmt: skip
        outputs.append((rows[:found], cols[:found], excess[:found]))
    for first, second in zip(*outputs, strict=True):
        np.testing.assert_array_equal(first, second)
    assert len(outputs[0][0]) > 10
