"""The CPU engine: numba, one frame per call, ``nogil`` so ``-N`` threads run frames in
parallel.

Why not ``parallel=True`` inside a frame: images are independent, so threads over images
scale without any reduction, and numba's default threading layer cannot be entered from
several Python threads at once.

The work is split into simple passes over the frame, each of which the compiler turns
into tight (mostly vectorised) code, instead of one branchy per-pixel function: pixel
statistics (reductions), the azimuthal histogram (four interleaved sub-histograms, so
that neighbouring pixels of one bin do not wait for each other), spot candidates (pixels
above the photon threshold, in row-major order), ROIs (only where ROIs are defined) and,
only for frames that have them, the pixels lost to error or saturation. The candidates'
windows are then tested with :func:`jfsim.analysis.spot_finding.build_spot_functions`'s
``strong_mean``, the function the GPU engine uses. Accumulators are integers, so the
results equal the GPU engine's exactly.

Kernels that use nothing from other modules are cached on disk; the others compile once per
process (numba checks only a kernel's own file for changes, so a cached kernel using another
module's constants could outlive a change to them).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from jfsim.analysis.azimuthal import AZ_LOST, AZ_SUM, AZ_SUM_SQ
from jfsim.analysis.engines import EngineOutput
from jfsim.analysis.pixel_statistics import (
    N_STATS,
    STAT_BAND_LOST,
    STAT_BAND_SUM,
    STAT_ERROR,
    STAT_MAX,
    STAT_MIN,
    STAT_NONZERO,
    STAT_SATURATED,
    STAT_SUM,
)
from jfsim.analysis.plan import AnalysisPlan
from jfsim.analysis.primitives import cpu_primitives
from jfsim.analysis.roi import (
    ROI_LOST,
    ROI_MAX,
    ROI_NONZERO,
    ROI_SUM,
    ROI_SUM_SQ,
    ROI_SUM_X,
    ROI_SUM_Y,
    new_roi_accumulator,
)
from jfsim.analysis.spot_finding import build_spot_functions

__all__ = ["NAME", "CpuOptions", "PreparedCpu", "prepare", "probe", "run"]

NAME = "cpu"

_strong_mean = build_spot_functions(cpu_primitives()).strong_mean
_INT64_MAX = np.int64(np.iinfo(np.int64).max)
_INT64_MIN = np.int64(np.iinfo(np.int64).min)
#: Interleaved sub-histograms of the azimuthal pass (pixel i adds to copy i mod 4).
_SUB_HISTOGRAMS = 4
#: Windows of more pixels than this many times the frame's are summed by running column
#: sums (cost ~ frame) instead of one by one (cost ~ candidates × window).
_COLUMN_SUMS_FACTOR = 4


@dataclass(frozen=True, slots=True)
class CpuOptions:
    """``max_candidates``: length of the spot-candidate list (None = the plan's)."""

    max_candidates: int | None = None


def probe() -> str | None:
    """The CPU engine always runs."""
    return None


@numba.njit(nogil=True)
def _statistics(frame, pixel_class, error, saturation, stats):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Reductions over the sensitive pixels; returns the number of error/saturated ones."""
    total = np.int64(0)
    band = np.int64(0)
    low = _INT64_MAX
    high = _INT64_MIN
    n_error = np.int64(0)
    n_saturated = np.int64(0)
    viable_count = np.int64(0)
    for i in range(frame.shape[0]):
        value = np.int64(frame[i])
        klass = np.int64(pixel_class[i])
        sensitive = klass & 1
        is_error = np.int64(value == error)
        is_saturated = np.int64(value >= saturation) & (1 - is_error)
        viable = sensitive & (1 - is_error) & (1 - is_saturated)
        kept = value & -viable
        total += kept
        band += kept & -((klass >> 1) & 1)
        low = min(low, value if viable else _INT64_MAX)
        high = max(high, value if viable else _INT64_MIN)
        n_error += sensitive & is_error
        n_saturated += sensitive & is_saturated
        viable_count += viable
    stats[STAT_ERROR] = n_error
    stats[STAT_SATURATED] = n_saturated
    stats[STAT_MIN] = low
    stats[STAT_MAX] = high
    stats[STAT_SUM] = total
    stats[STAT_BAND_SUM] = band
    stats[STAT_NONZERO] = viable_count  # every viable pixel took part in the extremes
    return n_error + n_saturated


@numba.njit(nogil=True, cache=True)
def _histogram(frame, bin_map, stride, sums):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Σ I and Σ I² of every pixel with a bin (``bin_map`` holds n_bins for "none"), in
    four interleaved sub-histograms of (Σ I, Σ I²) pairs; lost pixels are taken out
    afterwards by ``_lost_pixels``."""
    for i in range(frame.shape[0]):
        value = np.int64(frame[i])
        slot = 2 * ((i & 3) * stride + bin_map[i])
        sums[slot] += value
        sums[slot + 1] += value * value


@numba.njit(nogil=True, cache=True)
def _candidates(frame, pixel_class, error, saturation, threshold, candidates):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Viable pixels above the photon threshold, in row-major order; returns their count."""
    found = 0
    capacity = candidates.shape[0]
    for i in range(frame.shape[0]):
        value = frame[i]
        if value > threshold:
            if (pixel_class[i] & 1) and value != error and value < saturation:
                if found < capacity:
                    candidates[found] = i
                found += 1
    return found


@numba.njit(nogil=True)
def _rois(frame, pixel_class, roi_map, width, error, saturation, rois):  # type: ignore[no-untyped-def]  # pragma: no cover
    for i in range(frame.shape[0]):
        bits = roi_map[i]
        if bits == 0 or (pixel_class[i] & 1) == 0:
            continue
        value = np.int64(frame[i])
        if value == error or value >= saturation:
            continue
        row = i // width
        col = i % width
        for k in range(rois.shape[0]):
            if (bits >> k) & 1:
                rois[k, ROI_SUM] += value
                rois[k, ROI_SUM_SQ] += value * value
                rois[k, ROI_MAX] = max(rois[k, ROI_MAX], value)
                rois[k, ROI_NONZERO] += 1
                rois[k, ROI_SUM_X] += value * col
                rois[k, ROI_SUM_Y] += value * row


@numba.njit(nogil=True)
def _lost_pixels(  # type: ignore[no-untyped-def]  # pragma: no cover
    frame,
    pixel_class,
    bin_map,
    correction,
    roi_map,
    error,
    saturation,
    stats,
    azimuthal,
    lost_correction,
    rois,
):
    """Sensitive pixels this frame lost (error, saturated): out of the bins (which
    ``_histogram`` filled without looking), the background band and the ROIs."""
    for i in range(frame.shape[0]):
        value = frame[i]
        klass = pixel_class[i]
        if (klass & 1) == 0 or (value != error and value < saturation):
            continue
        if klass & 2:
            stats[STAT_BAND_LOST] += 1
        b = bin_map[i]
        if b >= 0:
            count = np.int64(value)
            azimuthal[b, AZ_SUM] -= count
            azimuthal[b, AZ_SUM_SQ] -= count * count
            azimuthal[b, AZ_LOST] += 1
            lost_correction[b] += correction[i]
        bits = roi_map[i]
        for k in range(rois.shape[0]):
            if (bits >> k) & 1:
                rois[k, ROI_LOST] += 1


@numba.njit(nogil=True)
def _test_candidates(  # type: ignore[no-untyped-def]  # pragma: no cover
    frame,
    pixel_class,
    candidates,
    n_candidates,
    half,
    error,
    saturation,
    nsigma,
    min_count,
    rows,
    cols,
    excess,
):
    width = frame.shape[1]
    found = 0
    for k in range(n_candidates):
        index = candidates[k]
        row = index // width
        col = index % width
        mean = _strong_mean(
            frame, pixel_class, row, col, half, error, saturation, nsigma, min_count
        )
        if not math.isnan(mean):
            rows[found] = row
            cols[found] = col
            excess[found] = frame[row, col] - mean
            found += 1
    return found


@numba.njit(nogil=True, cache=True)
def _test_candidates_by_columns(  # type: ignore[no-untyped-def]  # pragma: no cover
    frame,
    pixel_class,
    candidates,
    n_candidates,
    half,
    error,
    saturation,
    nsigma,
    min_count,
    rows,
    cols,
    excess,
):
    """The same test as ``strong_mean`` for many candidates at once: running column sums of
    the viable pixels over the window's rows (two rows in, two rows out per image row), so a
    window costs 2h + 1 column sums instead of (2h + 1)² pixels. Integer sums: the same
    numbers as the per-candidate windows."""
    height, width = frame.shape
    count = np.zeros(width, dtype=np.int64)
    total = np.zeros(width, dtype=np.int64)
    squares = np.zeros(width, dtype=np.int64)

    def update(row: int, sign: int) -> None:
        for c in range(width):
            value = np.int64(frame[row, c])
            viable = (
                (np.int64(pixel_class[row, c]) & 1)
                & np.int64(value != error)
                & np.int64(value < saturation)
            )
            kept = value & -viable
            count[c] += sign * viable
            total[c] += sign * kept
            squares[c] += sign * kept * kept

    for row in range(min(half, height)):
        update(row, 1)
    found = 0
    k = 0
    for row in range(height):
        if row + half < height:
            update(row + half, 1)
        if row - half - 1 >= 0:
            update(row - half - 1, -1)
        while k < n_candidates and candidates[k] // width == row:
            col = candidates[k] % width
            k += 1
            n = np.int64(0)
            s = np.int64(0)
            s2 = np.int64(0)
            for c in range(max(col - half, 0), min(col + half + 1, width)):
                n += count[c]
                s += total[c]
                s2 += squares[c]
            value = np.int64(frame[row, col])  # a candidate is viable: take it out
            n -= 1
            s -= value
            s2 -= value * value
            if n < min_count:
                continue
            mean = s / n
            variance = s2 / n - mean * mean
            difference = np.float64(value) - mean
            if difference > 0.0 and difference * difference > nsigma * nsigma * variance:
                rows[found] = row
                cols[found] = col
                excess[found] = difference
                found += 1
    return found


class PreparedCpu:
    """Flat views of the plan's maps and the candidate buffer (one per thread)."""

    def __init__(self, plan: AnalysisPlan, options: CpuOptions) -> None:
        self.plan = plan
        self.pixel_class_2d = np.ascontiguousarray(plan.pixel_class)
        self.pixel_class = self.pixel_class_2d.reshape(-1)
        bin_map = np.ascontiguousarray(plan.azimuthal.bin_map).reshape(-1)
        self.bin_map = bin_map
        n_bins = plan.azimuthal.n_bins
        #: bins + one "no bin" column; uint16 when it fits (half the memory traffic)
        self.stride = n_bins + 1
        histogram_dtype = np.uint16 if self.stride <= np.iinfo(np.uint16).max else np.int32
        self.histogram_bins = np.where(bin_map < 0, n_bins, bin_map).astype(histogram_dtype)
        self.correction = np.ascontiguousarray(plan.azimuthal.correction).reshape(-1)
        self.roi_map = np.ascontiguousarray(plan.rois.roi_map).reshape(-1)
        capacity = options.max_candidates or plan.spots.max_candidates
        self.candidates = np.empty(capacity, dtype=np.int64)
        self.width = plan.image_shape[1]


def strong_pixels(
    prepared: PreparedCpu, frame: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], int]:
    """The spot-finding share of a frame: candidates above the photon threshold, then
    Jungfraujoch's test of their windows. Returns (rows, cols, I − μ) of the strong pixels in
    row-major order and the number of candidates."""
    plan = prepared.plan
    spot = plan.spots
    flat = frame.reshape(-1)
    n_found = int(
        _candidates(
            flat,
            prepared.pixel_class,
            plan.error_value,
            plan.saturation_value,
            spot.photon_count_threshold,
            prepared.candidates,
        )
    )
    n_candidates = min(n_found, prepared.candidates.shape[0])
    rows = np.empty(n_candidates, dtype=np.int64)
    cols = np.empty(n_candidates, dtype=np.int64)
    excess = np.empty(n_candidates, dtype=np.float64)
    many = n_candidates * (2 * spot.window_half_pxl + 1) ** 2 > _COLUMN_SUMS_FACTOR * flat.size
    test = _test_candidates_by_columns if many else _test_candidates
    strong = test(
        frame,
        prepared.pixel_class_2d,
        prepared.candidates,
        n_candidates,
        spot.window_half_pxl,
        plan.error_value,
        plan.saturation_value,
        spot.signal_to_noise_threshold,
        spot.min_window_pixels,
        rows,
        cols,
        excess,
    )
    return rows[:strong], cols[:strong], excess[:strong], n_found


def prepare(plan: AnalysisPlan, options: CpuOptions | None = None) -> PreparedCpu:
    return PreparedCpu(plan, options or CpuOptions())


def run(prepared: PreparedCpu, pixels: npt.NDArray[Any]) -> EngineOutput:
    """The accumulators and strong pixels of one frame ``[H, W]`` of the run's type."""
    plan = prepared.plan
    frame = np.ascontiguousarray(pixels)
    flat = frame.reshape(-1)
    error, saturation = plan.error_value, plan.saturation_value
    started = time.perf_counter()
    stats = np.zeros(N_STATS, dtype=np.int64)
    lost = _statistics(flat, prepared.pixel_class, error, saturation, stats)
    sums = np.zeros(2 * _SUB_HISTOGRAMS * prepared.stride, dtype=np.int64)
    _histogram(flat, prepared.histogram_bins, prepared.stride, sums)
    n_bins = plan.azimuthal.n_bins
    azimuthal = np.zeros((n_bins, AZ_LOST + 1), dtype=np.int64)
    merged = sums.reshape(_SUB_HISTOGRAMS, prepared.stride, 2).sum(axis=0)[:n_bins]
    azimuthal[:, AZ_SUM] = merged[:, 0]
    azimuthal[:, AZ_SUM_SQ] = merged[:, 1]
    lost_correction = np.zeros(n_bins, dtype=np.float64)
    rois = new_roi_accumulator(plan.rois.n_rois)
    if plan.rois.n_rois:
        _rois(flat, prepared.pixel_class, prepared.roi_map, prepared.width, error, saturation, rois)
    if lost:
        _lost_pixels(
            flat,
            prepared.pixel_class,
            prepared.bin_map,
            prepared.correction,
            prepared.roi_map,
            error,
            saturation,
            stats,
            azimuthal,
            lost_correction,
            rois,
        )
    passed = time.perf_counter()
    rows, cols, excess, n_found = strong_pixels(prepared, frame)
    return EngineOutput(
        stats=stats,
        azimuthal=azimuthal,
        lost_correction=lost_correction,
        rois=rois[: plan.rois.n_rois],
        strong_rows=rows,
        strong_cols=cols,
        strong_excess=excess,
        candidates=n_found,
        truncated=n_found > prepared.candidates.shape[0],
        pixel_pass_s=passed - started,
        spot_finding_s=time.perf_counter() - passed,
    )
