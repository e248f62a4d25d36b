"""Plain numpy/scipy implementations of the analysis rules: the tests' oracle and the
benchmarks' baseline. Written from the definitions in jfsim/analysis docstrings, sharing no
code with the engines, so a bug would have to be made twice to pass unseen."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from jfsim.geometry import Panel, poni_from_panel


def _box_sums(values: np.ndarray, half: int) -> np.ndarray:
    """Exact sums over the (2h+1)² window around every pixel (zero outside the image),
    from an int64 integral image."""
    height, width = values.shape
    padded = np.zeros((height + 2 * half + 1, width + 2 * half + 1), dtype=np.int64)
    padded[half + 1 : half + 1 + height, half + 1 : half + 1 + width] = values
    integral = padded.cumsum(axis=0).cumsum(axis=1)
    size = 2 * half + 1
    return (
        integral[size:, size:]
        - integral[:-size, size:]
        - integral[size:, :-size]
        + integral[:-size, :-size]
    )


@dataclass(frozen=True)
class ReferenceSpots:
    """Spots by the rule, in label order (not sorted, not filtered by resolution)."""

    strong: np.ndarray  # bool [H, W]
    x: np.ndarray
    y: np.ndarray
    intensity: np.ndarray
    n_pixels: np.ndarray


def reference_spots(
    frame: np.ndarray,
    sensitive: np.ndarray,
    *,
    error: int,
    saturation: int,
    threshold: int,
    nsigma: float,
    half: int,
    min_fraction: float = 0.25,
    min_pixels: int = 1,
    max_pixels: int = 10**9,
) -> ReferenceSpots:
    """Jungfraujoch's rule with window sums, ndimage.label and ndimage.sum."""
    values = frame.astype(np.int64)
    viable = sensitive & (values != error) & (values < saturation)
    kept = np.where(viable, values, 0)
    count = _box_sums(viable.astype(np.int64), half) - viable
    total = _box_sums(kept, half) - kept
    squares = _box_sums(kept * kept, half) - kept * kept
    min_count = max(1, math.ceil(min_fraction * ((2 * half + 1) ** 2 - 1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        variance = squares / count - mean * mean
    excess = values - mean
    strong = (
        viable
        & (values > threshold)
        & (count >= min_count)
        & (excess > 0)
        & (excess * excess > nsigma * nsigma * variance)
    )
    labels, n = ndimage.label(strong, structure=np.ones((3, 3)))
    index = np.arange(1, n + 1)
    weights = np.where(strong, excess, 0.0)
    size = ndimage.sum(strong, labels, index)
    weight = ndimage.sum(weights, labels, index)
    rows, cols = np.indices(frame.shape)
    x = ndimage.sum(weights * cols, labels, index) / weight
    y = ndimage.sum(weights * rows, labels, index) / weight
    keep = (size >= min_pixels) & (size <= max_pixels) & (weight > 0)
    return ReferenceSpots(strong, x[keep], y[keep], weight[keep], size[keep].astype(np.int64))


def reference_profile(
    frame: np.ndarray,
    sensitive: np.ndarray,
    bin_map: np.ndarray,
    correction: np.ndarray,
    n_bins: int,
    *,
    error: int,
    saturation: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean = Σ I / Σ C, std of the values / mean C, count) per bin, with np.bincount."""
    values = frame.astype(np.float64)
    use = sensitive & (frame != error) & (frame < saturation) & (bin_map >= 0)
    bins = bin_map[use]
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    total = np.bincount(bins, weights=values[use], minlength=n_bins)
    squares = np.bincount(bins, weights=values[use] ** 2, minlength=n_bins)
    norm = np.bincount(bins, weights=correction[use].astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / norm, np.nan)
        raw = np.sqrt(np.maximum(squares / count - (total / count) ** 2, 0.0))
        std = np.where(count > 0, raw * count / norm, np.nan)
    return mean, std, count


def pyfai_integrator(panel: Panel, wavelength_A: float) -> Any:
    """pyFAI's AzimuthalIntegrator for a flat panel (its PONI from jfsim.geometry)."""
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    poni = poni_from_panel(panel)
    return AzimuthalIntegrator(
        dist=poni.dist_mm * 1e-3,
        poni1=poni.poni1_mm * 1e-3,
        poni2=poni.poni2_mm * 1e-3,
        rot1=poni.rot1_rad,
        rot2=poni.rot2_rad,
        rot3=poni.rot3_rad,
        pixel1=panel.pixel_size_mm * 1e-3,
        pixel2=panel.pixel_size_mm * 1e-3,
        wavelength=wavelength_A * 1e-10,
    )
