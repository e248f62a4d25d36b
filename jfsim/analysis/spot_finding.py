"""Spot finding with Jungfraujoch's rule (``SpotFindingSettings``; analysis.md §2).

A viable pixel (sensitive, not error, not saturated) with count I is *strong* when

    I > photon_count_threshold   and   (I − μ) > signal_to_noise_threshold · σ,

μ and σ² being the mean and variance of the viable pixels in the (2h+1)² window around it,
the pixel itself excluded (h = ``window_half_pxl``, default :data:`WINDOW_HALF_PXL`; at
least a quarter of the window must be viable). Engines test only the pixels above the
photon threshold (the *candidates*) and sum their windows exactly in integers, so every
engine finds the same strong pixels.

Strong pixels are grouped by 8-connectivity; a group with ``min_pix_per_spot`` ≤ n ≤
``max_pix_per_spot`` pixels is a spot at the (I − μ)-weighted centroid of its pixels (index
coordinates, pixel centre at i, as CXI peak lists and the wire use), with intensity Σ (I − μ).
Then, in this order: spots outside [``high_resolution_limit``, ``low_resolution_limit``]
(d in Å; ``None`` or 0 = no limit) are dropped; with ``high_res_gap_Q_recipA`` set, spots
beyond the first gap of at least that width in q (Å⁻¹, with 2π) are dropped; spots within
``ice_ring_width_q_recipA`` (the broker's half-width) of a hexagonal-ice ring are flagged;
the ``max_spots`` most intense are kept, strongest first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from jfjoch_client.models.spot_finding_settings import SpotFindingSettings

from jfsim.analysis.geometry import PixelMaps
from jfsim.analysis.pixel_statistics import SENSITIVE
from jfsim.analysis.primitives import Primitives
from jfsim.sim.background import ICE_RINGS

__all__ = [
    "WINDOW_HALF_PXL",
    "SpotFindingPlan",
    "Spots",
    "build_spot_functions",
    "group_strong_pixels",
    "spot_finding_plan",
    "spots_from",
]

#: Half-size of the background window: (2·10 + 1)² = 441 pixels. Wide enough that a spot
#: (σ up to ~2 px) holds a small share of it; see docs/process.md for the choice.
WINDOW_HALF_PXL = 10
#: At least this share of the window (pixel excluded) must be viable for a background.
MIN_WINDOW_FRACTION = 0.25
#: q (Å⁻¹, with 2π) of the hexagonal-ice rings (physics.md §2.7).
ICE_RING_Q_RECIPA = tuple(2.0 * math.pi / d_A for d_A, _ in ICE_RINGS)


@dataclass(frozen=True, slots=True)
class SpotFindingPlan:
    """The spot-finding rule for one run (settings resolved to numbers)."""

    photon_count_threshold: int
    signal_to_noise_threshold: float
    window_half_pxl: int
    min_window_pixels: int
    min_pix_per_spot: int
    max_pix_per_spot: int
    high_resolution_limit_A: float | None
    low_resolution_limit_A: float | None
    low_res_count_limit_A: float
    high_res_gap_q_recipA: float | None
    ice_ring_width_q_recipA: float
    max_spots: int
    max_candidates: int
    q_recipA: npt.NDArray[np.float64]


def spot_finding_plan(
    settings: SpotFindingSettings,
    maps: PixelMaps,
    *,
    max_spots: int,
    window_half_pxl: int = WINDOW_HALF_PXL,
) -> SpotFindingPlan:
    window = (2 * window_half_pxl + 1) ** 2 - 1
    height, width = maps.q_recipA.shape
    low_limit = settings.low_resolution_limit
    return SpotFindingPlan(
        photon_count_threshold=int(settings.photon_count_threshold),
        signal_to_noise_threshold=float(settings.signal_to_noise_threshold),
        window_half_pxl=window_half_pxl,
        min_window_pixels=max(1, math.ceil(MIN_WINDOW_FRACTION * window)),
        min_pix_per_spot=int(settings.min_pix_per_spot),
        max_pix_per_spot=int(settings.max_pix_per_spot),
        high_resolution_limit_A=(
            float(settings.high_resolution_limit) if settings.high_resolution_limit else None
        ),
        low_resolution_limit_A=float(low_limit) if low_limit else None,
        low_res_count_limit_A=float(settings.high_resolution_limit_for_spot_count_low_res),
        high_res_gap_q_recipA=(
            float(settings.high_res_gap_q_recip_a) if settings.high_res_gap_q_recip_a else None
        ),
        ice_ring_width_q_recipA=float(settings.ice_ring_width_q_recip_a),
        max_spots=max_spots,
        max_candidates=max(1 << 16, height * width // 8),
        q_recipA=maps.q_recipA,
    )


def build_spot_functions(primitives: Primitives) -> Any:
    """Per-pixel and per-candidate functions compiled for one engine.

    Returns a namespace with ``note_candidate(candidates, counter, index, value, viable,
    threshold)`` (append a pixel above the photon threshold) and ``strong_mean(frame,
    pixel_class, row, col, half, error, saturation, nsigma, min_count)``: μ of the
    window if the pixel is strong, else NaN.
    """
    from types import SimpleNamespace

    fetch_add = primitives.fetch_add
    compile_function = primitives.compile

    def note_candidate(candidates, counter, index, value, viable, threshold):  # type: ignore[no-untyped-def]
        if viable and value > threshold:
            slot = fetch_add(counter, 0, 1)
            if slot < candidates.shape[0]:
                candidates[slot] = index

    def strong_mean(frame, pixel_class, row, col, half, error, saturation, nsigma, min_count):  # type: ignore[no-untyped-def]
        height, width = frame.shape
        count = np.int64(0)
        total = np.int64(0)
        squares = np.int64(0)
        first_row = row - half if row > half else 0
        last_row = row + half + 1 if row + half + 1 < height else height
        first_col = col - half if col > half else 0
        last_col = col + half + 1 if col + half + 1 < width else width
        for r in range(first_row, last_row):
            for c in range(first_col, last_col):
                if (pixel_class[r, c] & SENSITIVE) == 0 or (r == row and c == col):
                    continue
                value = frame[r, c]
                if value == error or value >= saturation:
                    continue
                v = np.int64(value)
                count += 1
                total += v
                squares += v * v
        if count < min_count:
            return math.nan
        mean = total / count
        variance = squares / count - mean * mean
        excess = np.float64(frame[row, col]) - mean
        if excess > 0.0 and excess * excess > nsigma * nsigma * variance:
            return mean
        return math.nan

    return SimpleNamespace(
        note_candidate=compile_function(note_candidate),
        strong_mean=compile_function(strong_mean),
    )


@numba.njit(cache=True, nogil=True)
def _root(parent, k):  # type: ignore[no-untyped-def]  # pragma: no cover - numba
    while parent[k] != k:
        parent[k] = parent[parent[k]]
        k = parent[k]
    return k


@numba.njit(cache=True, nogil=True)
def group_strong_pixels(rows, cols, weights):  # type: ignore[no-untyped-def]  # pragma: no cover
    """8-connected groups of strong pixels listed in row-major order.

    Returns ``(size, weight_sum, weighted_col_sum, weighted_row_sum)``, one entry per
    group, groups ordered by their first pixel.
    """
    n = rows.shape[0]
    parent = np.arange(n)
    row_start = 0
    previous_start = 0
    previous_end = 0
    scan = 0
    for k in range(n):
        if k == 0 or rows[k] != rows[k - 1]:
            if k > 0 and rows[k - 1] == rows[k] - 1:
                previous_start, previous_end = row_start, k
            else:
                previous_start, previous_end = k, k
            row_start = k
            scan = previous_start
        if k > row_start and cols[k - 1] == cols[k] - 1:
            a, b = _root(parent, k), _root(parent, k - 1)
            if a != b:
                parent[max(a, b)] = min(a, b)
        while scan < previous_end and cols[scan] < cols[k] - 1:
            scan += 1
        m = scan
        while m < previous_end and cols[m] <= cols[k] + 1:
            a, b = _root(parent, k), _root(parent, m)
            if a != b:
                parent[max(a, b)] = min(a, b)
            m += 1
    group_of = np.full(n, -1, dtype=np.int64)
    n_groups = 0
    for k in range(n):
        root = _root(parent, k)
        if group_of[root] < 0:
            group_of[root] = n_groups
            n_groups += 1
        group_of[k] = group_of[root]
    size = np.zeros(n_groups, dtype=np.int64)
    weight = np.zeros(n_groups, dtype=np.float64)
    weighted_col = np.zeros(n_groups, dtype=np.float64)
    weighted_row = np.zeros(n_groups, dtype=np.float64)
    for k in range(n):
        g = group_of[k]
        size[g] += 1
        weight[g] += weights[k]
        weighted_col[g] += weights[k] * cols[k]
        weighted_row[g] += weights[k] * rows[k]
    return size, weight, weighted_col, weighted_row


@dataclass(frozen=True, slots=True)
class Spots:
    """One image's spots, strongest first (``x``/``y`` index coordinates, ``intensity`` in
    photons above background, ``d_A`` resolution) and the counts of seed 001 §4.1."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    intensity: npt.NDArray[np.float64]
    n_pixels: npt.NDArray[np.int64]
    d_A: npt.NDArray[np.float64]
    ice_ring: npt.NDArray[np.bool_]
    strong_pixels: int
    unfiltered: int
    low_resolution: int
    in_ice_rings: int

    def __len__(self) -> int:
        return int(self.x.shape[0])


def spots_from(
    plan: SpotFindingPlan,
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    excess: npt.NDArray[np.float64],
) -> Spots:
    """Spots from an image's strong pixels (row-major order, I − μ per pixel)."""
    size, weight, weighted_col, weighted_row = group_strong_pixels(rows, cols, excess)
    keep = (size >= plan.min_pix_per_spot) & (size <= plan.max_pix_per_spot) & (weight > 0)
    x = weighted_col[keep] / weight[keep]
    y = weighted_row[keep] / weight[keep]
    intensity = weight[keep]
    n_pixels = size[keep]
    unfiltered = int(keep.sum())
    height, width = plan.q_recipA.shape
    q = plan.q_recipA[
        np.clip(np.rint(y).astype(np.int64), 0, height - 1),
        np.clip(np.rint(x).astype(np.int64), 0, width - 1),
    ]
    with np.errstate(divide="ignore", invalid="ignore"):
        d_A = 2.0 * math.pi / q
    inside = np.isfinite(d_A)
    if plan.high_resolution_limit_A is not None:
        inside &= d_A >= plan.high_resolution_limit_A
    if plan.low_resolution_limit_A is not None:
        inside &= d_A <= plan.low_resolution_limit_A
    if plan.high_res_gap_q_recipA is not None and inside.sum() > 1:
        inside &= q <= _gap_cut_q(q[inside], plan.high_res_gap_q_recipA)
    x, y, intensity, n_pixels, d_A, q = (a[inside] for a in (x, y, intensity, n_pixels, d_A, q))
    ice = np.zeros(x.shape[0], dtype=bool)
    for ring_q in ICE_RING_Q_RECIPA:
        ice |= np.abs(q - ring_q) < plan.ice_ring_width_q_recipA
    order = np.argsort(-intensity, kind="stable")[: plan.max_spots]
    return Spots(
        x=x[order],
        y=y[order],
        intensity=intensity[order],
        n_pixels=n_pixels[order],
        d_A=d_A[order],
        ice_ring=ice[order],
        strong_pixels=int(rows.shape[0]),
        unfiltered=unfiltered,
        low_resolution=int((d_A >= plan.low_res_count_limit_A).sum()),
        in_ice_rings=int(ice.sum()),
    )


def _gap_cut_q(q: npt.NDArray[np.float64], gap: float) -> float:
    """The largest q kept: spots above the first gap of at least ``gap`` are dropped."""
    ordered = np.sort(q)
    steps = np.flatnonzero(np.diff(ordered) >= gap)
    return float(ordered[steps[0]]) if steps.size else math.inf
