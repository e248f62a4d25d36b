"""Per-image pixel statistics (seed 001 §4.5) and the background estimate (§4.1 bkgEstimate).

Definitions, over the *sensitive* pixels (pixel mask clear, virtual pixels included):

* ``error_pixels``: pixels holding the error value (dead, missed packets); the gaps of
  the pixel mask are not counted — they are not pixels;
* ``saturated_pixels``: pixels at or above the saturation value;
* viable pixels = the others: ``min_value``/``max_value`` are their extremes and
  ``pixel_sum`` their sum;
* ``bkg_estimate``: the mean viable value in the 3–5 Å resolution band (photons).

The per-pixel classification is shared by every analysis: error and saturated pixels are
never signal. Engines visit only pixels with a non-zero value (most pixels of a photon-
counting frame are 0): counts of viable pixels follow from the run's static counts minus the
pixels an image loses, and a zero pixel can only lower the maximum or raise the minimum to 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from jfsim.analysis.geometry import PixelMaps
from jfsim.analysis.primitives import Primitives

__all__ = [
    "BACKGROUND_BAND_A",
    "BKG_BAND",
    "N_STATS",
    "SENSITIVE",
    "PixelStatistics",
    "build_pixel_statistics_functions",
    "new_statistics_accumulator",
    "pixel_classes",
    "pixel_statistics_from",
    "statistics_from_counts",
]

#: Bits of the per-run pixel-class map.
SENSITIVE = 1
BKG_BAND = 2
#: Resolution band of the background estimate (Å), as Jungfraujoch's bkgEstimate.
BACKGROUND_BAND_A = (3.0, 5.0)

#: Slots of the int64 statistics accumulator (extremes and counts of non-zero pixels).
(
    STAT_ERROR,
    STAT_SATURATED,
    STAT_MIN,
    STAT_MAX,
    STAT_SUM,
    STAT_BAND_SUM,
    STAT_BAND_LOST,
    STAT_NONZERO,
) = range(8)
N_STATS = 8
_INT64 = np.iinfo(np.int64)


def pixel_classes(valid_pixels: npt.NDArray[np.bool_], maps: PixelMaps) -> npt.NDArray[np.uint8]:
    """uint8 ``[H, W]``: ``SENSITIVE`` for unmasked pixels, ``BKG_BAND`` for those in the
    3–5 Å band as well."""
    classes: npt.NDArray[np.uint8] = np.where(valid_pixels, SENSITIVE, 0).astype(np.uint8)
    with np.errstate(invalid="ignore", divide="ignore"):
        d_A = maps.d_A
        band = (d_A >= BACKGROUND_BAND_A[0]) & (d_A <= BACKGROUND_BAND_A[1]) & valid_pixels
    classes[band] |= np.uint8(BKG_BAND)
    return classes


def new_statistics_accumulator() -> npt.NDArray[np.int64]:
    stats = np.zeros(N_STATS, dtype=np.int64)
    stats[STAT_MIN] = _INT64.max
    stats[STAT_MAX] = _INT64.min
    return stats


def build_pixel_statistics_functions(primitives: Primitives) -> Any:
    """``classify_pixel(stats, value, pixel_class, error, saturation) -> viable`` compiled
    for one engine, for a pixel with a non-zero value: counts error and saturated pixels
    (and those the background band loses), accumulates the viable ones."""
    add, minimum, maximum = primitives.add, primitives.minimum, primitives.maximum

    def classify_pixel(stats, value, pixel_class, error, saturation):  # type: ignore[no-untyped-def]
        if (pixel_class & SENSITIVE) == 0:
            return False
        if value == error or value >= saturation:
            add(stats, STAT_ERROR if value == error else STAT_SATURATED, 1)
            if (pixel_class & BKG_BAND) != 0:
                add(stats, STAT_BAND_LOST, 1)
            return False
        count = np.int64(value)
        minimum(stats, STAT_MIN, count)
        maximum(stats, STAT_MAX, count)
        add(stats, STAT_SUM, count)
        add(stats, STAT_NONZERO, 1)
        if (pixel_class & BKG_BAND) != 0:
            add(stats, STAT_BAND_SUM, count)
        return True

    return primitives.compile(classify_pixel)


@dataclass(frozen=True, slots=True)
class PixelStatistics:
    """One image's pixel statistics (see the module docstring); extremes are ``None`` and
    the background NaN when no pixel qualifies."""

    max_value: int | None
    min_value: int | None
    error_pixels: int
    saturated_pixels: int
    pixel_sum: int
    bkg_estimate: float


def pixel_statistics_from(
    stats: npt.NDArray[np.int64], pixel_class: npt.NDArray[np.uint8]
) -> PixelStatistics:
    """Final statistics from an accumulator (``pixel_class``: the run's static counts)."""
    sensitive = int(np.count_nonzero(pixel_class & SENSITIVE))
    band_total = int(np.count_nonzero(pixel_class & BKG_BAND))
    return statistics_from_counts(stats, sensitive, band_total)


def statistics_from_counts(
    stats: npt.NDArray[np.int64], sensitive_pixels: int, band_pixels: int
) -> PixelStatistics:
    """Final statistics from an accumulator and the run's sensitive and band pixel counts."""
    viable = sensitive_pixels - int(stats[STAT_ERROR]) - int(stats[STAT_SATURATED])
    zeros = viable - int(stats[STAT_NONZERO])
    low = [int(stats[STAT_MIN])] if stats[STAT_NONZERO] else []
    high = [int(stats[STAT_MAX])] if stats[STAT_NONZERO] else []
    if zeros > 0:
        low.append(0)
        high.append(0)
    band = band_pixels - int(stats[STAT_BAND_LOST])
    return PixelStatistics(
        max_value=max(high) if high else None,
        min_value=min(low) if low else None,
        error_pixels=int(stats[STAT_ERROR]),
        saturated_pixels=int(stats[STAT_SATURATED]),
        pixel_sum=int(stats[STAT_SUM]),
        bkg_estimate=float(stats[STAT_BAND_SUM]) / band if band > 0 else math.nan,
    )
