"""Intensities from the integration accumulators: the compiled pass must give, bit for bit,
what the module doc's formulas give in plain numpy, and drop the same reflections."""

from __future__ import annotations

import numpy as np

from jfsim.analysis import integration
from jfsim.analysis.bragg_prediction import PredictedReflections


def _accumulators(n: int, rng: np.random.Generator) -> np.ndarray:
    acc = np.zeros((n, integration.N_ACC), dtype=np.int64)
    acc[:, integration.ACC_SIGNAL_PIXELS] = rng.integers(0, 30, n)
    acc[:, integration.ACC_SIGNAL_SUM] = rng.integers(0, 5000, n)
    acc[:, integration.ACC_BACKGROUND_PIXELS] = rng.integers(0, 80, n)
    background = rng.integers(0, 40, n)
    acc[:, integration.ACC_BACKGROUND_SUM] = background * acc[:, integration.ACC_BACKGROUND_PIXELS]
    acc[:, integration.ACC_BACKGROUND_SUM_SQ] = acc[
        :, integration.ACC_BACKGROUND_SUM
    ] * background + rng.integers(0, 500, n)
    for column in (integration.ACC_SIGNAL_COLS, integration.ACC_SIGNAL_ROWS):
        acc[:, column] = rng.integers(0, 2000, n) * acc[:, integration.ACC_SIGNAL_PIXELS]
    for column in (integration.ACC_SIGNAL_VALUE_COLS, integration.ACC_SIGNAL_VALUE_ROWS):
        acc[:, column] = rng.integers(0, 2000, n) * acc[:, integration.ACC_SIGNAL_SUM]
    acc[:, integration.ACC_SIGNAL_LOST] = rng.random(n) < 0.1
    return acc


def _numpy_intensities(acc: np.ndarray) -> tuple[np.ndarray, ...]:
    """keep, I, σ(I), ⟨b⟩, observed x, y with numpy (the module doc's formulas)."""
    n_signal = acc[:, integration.ACC_SIGNAL_PIXELS]
    m_background = acc[:, integration.ACC_BACKGROUND_PIXELS]
    keep = (
        (acc[:, integration.ACC_SIGNAL_LOST] == 0)
        & (n_signal > 0)
        & (m_background >= integration.MIN_BACKGROUND_PIXELS)
    )
    acc = acc[keep]
    n = acc[:, integration.ACC_SIGNAL_PIXELS].astype(np.float64)
    m = acc[:, integration.ACC_BACKGROUND_PIXELS].astype(np.float64)
    signal = acc[:, integration.ACC_SIGNAL_SUM].astype(np.float64)
    background_sum = acc[:, integration.ACC_BACKGROUND_SUM].astype(np.float64)
    background = background_sum / m
    variance = np.maximum(
        (acc[:, integration.ACC_BACKGROUND_SUM_SQ] - background_sum * background)
        / np.maximum(m - 1.0, 1.0),
        0.0,
    )
    intensity = signal - n * background
    sigma = np.sqrt(np.maximum(signal, 0.0) + n * n * variance / m)
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = [
            np.where(
                intensity > 0,
                (acc[:, value] - background * acc[:, position]) / intensity,
                np.nan,
            )
            for value, position in (
                (integration.ACC_SIGNAL_VALUE_COLS, integration.ACC_SIGNAL_COLS),
                (integration.ACC_SIGNAL_VALUE_ROWS, integration.ACC_SIGNAL_ROWS),
            )
        ]
    return keep, intensity, sigma, background, *observed


def test_compiled_intensities_equal_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(11)
    n = 5000
    acc = _accumulators(n, rng)
    hkl = rng.integers(-40, 40, (n, 3)).astype(np.int32)
    predicted = PredictedReflections(hkl, *(rng.normal(size=n) for _ in range(8)))
    table = integration._reflections(predicted, acc, 7, 0)
    keep, intensity, sigma, background, observed_x, observed_y = _numpy_intensities(acc)
    assert 0 < len(table) < n and np.any(intensity <= 0)
    np.testing.assert_array_equal(table.hkl, hkl[keep])
    np.testing.assert_array_equal(table.predicted_x_pxl, predicted.x_pxl[keep])
    for ours, expected in (
        (table.intensity_photons, intensity),
        (table.sigma_photons, sigma),
        (table.background_photons, background),
        (table.observed_x_pxl, observed_x),
        (table.observed_y_pxl, observed_y),
    ):
        assert np.array_equal(ours, expected, equal_nan=True)
    assert np.all(table.image == 7)
