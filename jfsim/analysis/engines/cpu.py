"""The CPU engine: numba, one frame per call, ``nogil`` so ``-N`` threads run frames in
parallel.

Why not ``parallel=True`` inside a frame: images are independent, so threads over images
scale without any reduction, and numba's default threading layer cannot be entered from
several Python threads at once. ``-N 2`` is two threads in all, each reading, decoding and
analysing its own frames.

A frame costs one pass over its pixels and then the spot candidates' windows:

* ``_pixel_pass`` reads the frame and one per-run map of *keys* (the pixel's azimuthal
  bin, whether it lies in the background band, or "not sensitive"), stored as the offset
  of the key's row of counts (uint16 where it fits), nothing else. Small values — the bulk
  of a photon-counting frame — only count how often each value occurs per key (one
  increment, no branch taken); the rest (larger and negative values, error and saturated
  pixels, pixels outside the mask) take a rarely used branch that sums them, takes lost
  pixels out of their bins and ROIs, and lists the spot candidates in row-major order.
  Small values are never candidates: they stop below the photon threshold, the error value
  and the saturation value.
* ``_fold`` turns the counts into Σ I and Σ I² per bin, the sums of the pixel statistics
  (all bins, band bins) and their extremes: ~10³ keys instead of 4·10⁶ pixels.
* ``_test_candidates`` sums each candidate's window row by row without branches (the
  compiler vectorises it); ``_test_candidates_by_columns`` takes over when the windows
  would cover the frame several times (running column sums).

The rule is Jungfraujoch's, as ``spot_finding.build_spot_functions``'s ``strong_mean``
(the GPU engine's) states it. Every accumulator is an integer, so the results equal the
GPU engine's exactly (``tests/analysis/test_engine_twins.py``). Separate passes per
analysis (statistics, histogram, candidates) cost three times the memory traffic and
twice the time; one per-pixel function shared with the GPU engine was slower still
(docs/process.md, "Performance").

The kernels use only constants of this module, so numba caches them on disk.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from jfsim.analysis.azimuthal import AZ_LOST, AZ_SUM, AZ_SUM_SQ
from jfsim.analysis.engines import EngineOutput
from jfsim.analysis.pixel_statistics import (
    BKG_BAND,
    N_STATS,
    SENSITIVE,
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

__all__ = [
    "NAME",
    "CpuOptions",
    "PixelPass",
    "PreparedCpu",
    "count_offsets",
    "pixel_keys",
    "pixel_pass",
    "prepare",
    "probe",
    "run",
    "strong_pixels",
]

NAME = "cpu"

#: Values 0 … LEVELS − 1 are counted per key rather than summed (row stride of the counts).
_LEVEL_BITS = np.uint64(3)
_LEVELS = 1 << int(_LEVEL_BITS)
#: Windows of more pixels than this many times the frame's are summed by running column
#: sums (cost ~ frame) instead of one by one (cost ~ candidates × window).
_COLUMN_SUMS_FACTOR = 4
#: Slots of the pass's tallies.
_T_ERROR, _T_SATURATED, _T_BAND_LOST, _T_VIABLE, _T_MIN, _T_MAX, _T_FOUND = range(7)
_INT64_MAX = np.iinfo(np.int64).max
#: ``count_offsets`` of the live plans, by ``id``: (the plan, its offsets, outside).
_OFFSETS: dict[int, tuple[weakref.ref[AnalysisPlan], npt.NDArray[np.unsignedinteger], int]] = {}
_OFFSETS_LOCK = threading.Lock()
_INT64_MIN = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class CpuOptions:
    """``max_candidates``: length of the spot-candidate list (None = the plan's)."""

    max_candidates: int | None = None


def probe() -> str | None:
    """The CPU engine always runs."""
    return None


@numba.njit(nogil=True, cache=True)
def _pixel_pass(  # type: ignore[no-untyped-def]  # pragma: no cover - numba
    frame,
    offsets,
    outside,
    levels,
    error,
    saturation,
    threshold,
    correction,
    counts,
    sums,
    squares,
    bin_lost,
    lost_correction,
    candidates,
    tallies,
):
    """One pass over a flat frame; see the module docstring. ``offsets[i]`` is LEVELS ×
    the key of pixel i: 2·bin + band (bin = n_bins for "no bin"), or ``outside`` for a
    pixel that is not sensitive; values 0 ≤ I < ``levels`` only count. Unsigned index
    arithmetic: numba then emits no negative-index correction, and the hot loop is an
    add and an increment. ``tallies`` (zeroed, extremes at their neutral values)
    receives the error, saturated and lost band pixels, the viable pixels summed, their
    extremes and the candidates found. The rare branch keeps its state in memory: that
    leaves the registers to the hot loop."""
    n_bins = bin_lost.shape[0]
    limit = np.uint64(levels)
    for i in range(frame.shape[0]):
        value = np.int64(frame[i])
        small = np.uint64(value)
        offset = np.uint64(offsets[i])
        if small < limit:
            counts[offset + small] += 1
            continue
        key = np.intp(offset >> _LEVEL_BITS)
        if key == outside:
            continue
        if value == error or value >= saturation:
            tallies[_T_ERROR if value == error else _T_SATURATED] += 1
            tallies[_T_BAND_LOST] += key & 1
            b = key >> 1
            if b < n_bins:
                bin_lost[b] += 1
                lost_correction[b] += correction[i]
            continue
        sums[key] += value
        squares[key] += value * value
        tallies[_T_VIABLE] += 1
        tallies[_T_MIN] = min(tallies[_T_MIN], value)
        tallies[_T_MAX] = max(tallies[_T_MAX], value)
        if value > threshold:
            found = tallies[_T_FOUND]
            if found < candidates.shape[0]:
                candidates[found] = i
            tallies[_T_FOUND] = found + 1


@numba.njit(nogil=True, cache=True)
def _fold(counts, sums, squares, levels, outside, tallies, bin_sums, bin_squares):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Counts and sums per key → Σ I and Σ I² per bin (added to ``bin_sums``,
    ``bin_squares``); returns Σ I of every sensitive pixel and of the band; completes the
    viable count and the extremes in ``tallies``."""
    n_bins = bin_sums.shape[0]
    for value in range(levels):
        present = np.int64(0)
        for key in range(outside):
            present += counts[key * _LEVELS + value]
        if present:
            tallies[_T_VIABLE] += present
            tallies[_T_MIN] = min(tallies[_T_MIN], value)
            tallies[_T_MAX] = max(tallies[_T_MAX], value)
    total = np.int64(0)
    band = np.int64(0)
    for key in range(outside):
        key_sum = sums[key]
        key_squares = squares[key]
        for value in range(1, levels):
            n = np.int64(counts[key * _LEVELS + value])
            key_sum += value * n
            key_squares += value * value * n
        total += key_sum
        band += key_sum * (key & 1)
        b = key >> 1
        if b < n_bins:
            bin_sums[b] += key_sum
            bin_squares[b] += key_squares
    return total, band


@numba.njit(nogil=True)
def _rois(frame, pixel_class, roi_map, width, error, saturation, rois):  # type: ignore[no-untyped-def]  # pragma: no cover
    """The ROIs' sums over their viable pixels, and the sensitive pixels they lost."""
    for i in range(frame.shape[0]):
        bits = roi_map[i]
        if bits == 0 or (pixel_class[i] & 1) == 0:
            continue
        value = np.int64(frame[i])
        if value == error or value >= saturation:
            for k in range(rois.shape[0]):
                if (bits >> k) & 1:
                    rois[k, ROI_LOST] += 1
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


@numba.njit(inline="always", cache=True)
def _viable(value, pixel_class, error, saturation):  # type: ignore[no-untyped-def]  # pragma: no cover
    """1 if a pixel counts towards a candidate's window (sensitive, not the error value, not
    saturated), else 0: an integer, so the window sums need no branch."""
    return (np.int64(pixel_class) & 1) & np.int64(value != error) & np.int64(value < saturation)


@numba.njit(inline="always", cache=True)
def _strong_excess(value, count, total, squares, min_count, nsigma):  # type: ignore[no-untyped-def]  # pragma: no cover
    """I − μ of a candidate of value I (viable) if it is strong, else NaN: ``count``,
    ``total``, ``squares`` sum the viable pixels of its window, the candidate included, and
    the rule (``strong_mean``'s) takes it out."""
    others = count - 1
    if others < min_count:
        return np.nan
    mean = (total - value) / others
    variance = (squares - value * value) / others - mean * mean
    difference = np.float64(value) - mean
    if difference > 0.0 and difference * difference > nsigma * nsigma * variance:
        return difference
    return np.nan


@numba.njit(nogil=True, cache=True)
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
    """Jungfraujoch's test of each candidate's window (``strong_mean``), the viable pixels
    of each window row summed without a branch; the candidate (viable) is taken out after.
    Returns the number of strong pixels written to ``rows``, ``cols``, ``excess``."""
    height, width = frame.shape
    found = 0
    for k in range(n_candidates):
        index = candidates[k]
        row = index // width
        col = index % width
        first_col = max(col - half, 0)
        last_col = min(col + half + 1, width)
        count = np.int64(0)
        total = np.int64(0)
        squares = np.int64(0)
        for r in range(max(row - half, 0), min(row + half + 1, height)):
            values = frame[r, first_col:last_col]
            classes = pixel_class[r, first_col:last_col]
            for c in range(values.shape[0]):
                value = np.int64(values[c])
                viable = _viable(value, classes[c], error, saturation)
                kept = value * viable
                count += viable
                total += kept
                squares += kept * kept
        value = np.int64(frame[row, col])
        difference = _strong_excess(value, count, total, squares, min_count, nsigma)
        if not math.isnan(difference):
            rows[found] = row
            cols[found] = col
            excess[found] = difference
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
            viable = _viable(value, pixel_class[row, c], error, saturation)
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
            value = np.int64(frame[row, col])
            difference = _strong_excess(value, n, s, s2, min_count, nsigma)
            if not math.isnan(difference):
                rows[found] = row
                cols[found] = col
                excess[found] = difference
                found += 1
    return found


def pixel_keys(plan: AnalysisPlan) -> tuple[npt.NDArray[np.unsignedinteger], int]:
    """The pass's key map, flat ``[H·W]``: 2·bin + band for a sensitive pixel (bin =
    n_bins when the pixel has none, band = 1 in the background band), and the key of the
    pixels that are not sensitive, 2·(n_bins + 1). uint16 when every key fits."""
    n_bins = plan.azimuthal.n_bins
    outside = 2 * (n_bins + 1)
    dtype = np.uint16 if outside <= np.iinfo(np.uint16).max else np.uint32
    bin_map = plan.azimuthal.bin_map.reshape(-1)
    pixel_class = plan.pixel_class.reshape(-1)
    band = (pixel_class & BKG_BAND) != 0
    keys = 2 * np.where(bin_map < 0, n_bins, bin_map).astype(np.int64) + band
    keys[(pixel_class & SENSITIVE) == 0] = outside
    return keys.astype(dtype), outside


def _count_levels(plan: AnalysisPlan, most: int) -> int:
    """How many small values (0, 1, … at most ``most``) the pass only counts: none of
    them may be a spot candidate, the error value or saturated."""
    error, saturation = plan.error_value, plan.saturation_value
    levels = min(most, plan.spots.photon_count_threshold + 1, saturation)
    if error >= 0:
        levels = min(levels, error)
    return max(levels, 0)


def count_offsets(plan: AnalysisPlan) -> tuple[npt.NDArray[np.unsignedinteger], int]:
    """LEVELS × the key of every pixel (:func:`pixel_keys`): the row of its counts, uint16
    where it fits; and the key of the pixels outside. Computed once per plan and shared,
    read-only, by every thread that prepares an engine for it: a JF4M map is 9 MB, and a
    copy per thread would crowd out of the caches the frames that the threads decode."""
    with _OFFSETS_LOCK:
        shared = _OFFSETS.get(id(plan))
        if shared is not None and shared[0]() is plan:
            return shared[1], shared[2]
        keys, outside = pixel_keys(plan)
        fits = (outside + 1) * _LEVELS <= np.iinfo(np.uint16).max + 1
        offsets: npt.NDArray[np.unsignedinteger] = (keys.astype(np.int64) * _LEVELS).astype(
            np.uint16 if fits else np.uint32
        )
        offsets.flags.writeable = False
        _OFFSETS[id(plan)] = (weakref.ref(plan), offsets, outside)
        weakref.finalize(plan, _OFFSETS.pop, id(plan), None)
        return offsets, outside


class PreparedCpu:
    """The run's count offsets, flat views of its other maps, and scratch (one per
    thread)."""

    def __init__(self, plan: AnalysisPlan, options: CpuOptions) -> None:
        self.plan = plan
        self.pixel_class_2d = np.ascontiguousarray(plan.pixel_class)
        self.pixel_class = self.pixel_class_2d.reshape(-1)
        self.offsets, self.outside = count_offsets(plan)
        n_keys = self.outside + 1
        #: counts only while their table stays small (uint16 keys: at most 2 MB)
        counted = self.outside <= np.iinfo(np.uint16).max
        self.levels = _count_levels(plan, _LEVELS if counted else 0)
        self.counts = np.zeros(n_keys * _LEVELS if counted else 0, dtype=np.int32)
        self.sums = np.zeros(n_keys, dtype=np.int64)
        self.squares = np.zeros(n_keys, dtype=np.int64)
        self.tallies = np.zeros(_T_FOUND + 1, dtype=np.int64)
        self.correction = np.ascontiguousarray(plan.azimuthal.correction).reshape(-1)
        self.roi_map = np.ascontiguousarray(plan.rois.roi_map).reshape(-1)
        capacity = options.max_candidates or plan.spots.max_candidates
        self.candidates = np.empty(capacity, dtype=np.int64)
        self.width = plan.image_shape[1]


@dataclass(frozen=True, slots=True)
class PixelPass:
    """What the pass over one frame's pixels gives: the accumulators of
    :class:`EngineOutput` and the number of spot candidates (listed, up to the list's
    length, in ``PreparedCpu.candidates``)."""

    stats: npt.NDArray[np.int64]
    azimuthal: npt.NDArray[np.int64]
    lost_correction: npt.NDArray[np.float64]
    rois: npt.NDArray[np.int64]
    candidates: int


def pixel_pass(prepared: PreparedCpu, flat: npt.NDArray[Any]) -> PixelPass:
    """Statistics, azimuthal sums, ROIs and spot candidates of one flat frame ``[H·W]``."""
    plan = prepared.plan
    n_bins = plan.azimuthal.n_bins
    azimuthal = np.zeros((n_bins, AZ_LOST + 1), dtype=np.int64)
    lost_correction = np.zeros(n_bins, dtype=np.float64)
    rois = new_roi_accumulator(plan.rois.n_rois)
    for scratch in (prepared.counts, prepared.sums, prepared.squares, prepared.tallies):
        scratch.fill(0)
    tallies = prepared.tallies
    tallies[_T_MIN] = _INT64_MAX
    tallies[_T_MAX] = _INT64_MIN
    _pixel_pass(
        flat,
        prepared.offsets,
        prepared.outside,
        prepared.levels,
        plan.error_value,
        plan.saturation_value,
        plan.spots.photon_count_threshold,
        prepared.correction,
        prepared.counts,
        prepared.sums,
        prepared.squares,
        azimuthal[:, AZ_LOST],
        lost_correction,
        prepared.candidates,
        tallies,
    )
    total, band = _fold(
        prepared.counts,
        prepared.sums,
        prepared.squares,
        prepared.levels,
        prepared.outside,
        tallies,
        azimuthal[:, AZ_SUM],
        azimuthal[:, AZ_SUM_SQ],
    )
    if plan.rois.n_rois:
        _rois(
            flat,
            prepared.pixel_class,
            prepared.roi_map,
            prepared.width,
            plan.error_value,
            plan.saturation_value,
            rois,
        )
    stats = np.zeros(N_STATS, dtype=np.int64)
    stats[STAT_ERROR] = tallies[_T_ERROR]
    stats[STAT_SATURATED] = tallies[_T_SATURATED]
    stats[STAT_MIN] = tallies[_T_MIN]
    stats[STAT_MAX] = tallies[_T_MAX]
    stats[STAT_SUM] = total
    stats[STAT_BAND_SUM] = band
    stats[STAT_BAND_LOST] = tallies[_T_BAND_LOST]
    stats[STAT_NONZERO] = tallies[_T_VIABLE]  # every viable pixel took part in the extremes
    return PixelPass(stats, azimuthal, lost_correction, rois, int(tallies[_T_FOUND]))


def strong_pixels(
    prepared: PreparedCpu, frame: npt.NDArray[Any], n_found: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Jungfraujoch's test of the windows of the ``n_found`` candidates that
    :func:`pixel_pass` listed for ``frame`` ``[H, W]``: (rows, cols, I − μ) of the strong
    pixels in row-major order."""
    plan = prepared.plan
    spot = plan.spots
    n_candidates = min(n_found, prepared.candidates.shape[0])
    rows = np.empty(n_candidates, dtype=np.int64)
    cols = np.empty(n_candidates, dtype=np.int64)
    excess = np.empty(n_candidates, dtype=np.float64)
    many = n_candidates * (2 * spot.window_half_pxl + 1) ** 2 > _COLUMN_SUMS_FACTOR * frame.size
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
    return rows[:strong], cols[:strong], excess[:strong]


def prepare(plan: AnalysisPlan, options: CpuOptions | None = None) -> PreparedCpu:
    return PreparedCpu(plan, options or CpuOptions())


def run(prepared: PreparedCpu, pixels: npt.NDArray[Any]) -> EngineOutput:
    """The accumulators and strong pixels of one frame ``[H, W]`` of the run's type."""
    frame = np.ascontiguousarray(pixels)
    started = time.perf_counter()
    passed = pixel_pass(prepared, frame.reshape(-1))
    tested = time.perf_counter()
    rows, cols, excess = strong_pixels(prepared, frame, passed.candidates)
    return EngineOutput(
        stats=passed.stats,
        azimuthal=passed.azimuthal,
        lost_correction=passed.lost_correction,
        rois=passed.rois[: prepared.plan.rois.n_rois],
        strong_rows=rows,
        strong_cols=cols,
        strong_excess=excess,
        candidates=passed.candidates,
        truncated=passed.candidates > prepared.candidates.shape[0],
        pixel_pass_s=tested - started,
        spot_finding_s=time.perf_counter() - tested,
    )
