"""The two functions that dominate indexing time, written once for both engines.

Both look at every spot's reciprocal vector r (Å⁻¹) through one trial vector:

* ``vector_score``: how well a real-space vector v (Å) fits the spots: Σ w(d) over spots,
  d the distance of r·v to the nearest integer and w(d) = 1 − (d/t)² for d < t, else 0
  (t the tolerance). A lattice vector makes every r·v an integer (r·a = h), so the true a,
  b and c score highest. Known-cell indexing scores vectors of the cell's lengths over a
  sphere of directions (fast-feedback indexing, Gasparotto et al. 2024).
* ``projection_histogram``: how many spots project to each bin of r·t along a unit
  direction t, over [−extent, extent). Its Fourier transform peaks at the lengths of the
  lattice vectors along t (DPS, Steller et al. 1997): the de novo FFT indexer.

Each trial vector is one independent serial sum over the spots: the CPU engine loops over
vectors, the GPU engine gives each vector a thread; the sums run in the same order, so
the engines agree (histograms exactly, scores to rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["build_kernels"]


def build_kernels(compile_function: Callable[[Callable[..., Any]], Any]) -> Any:
    """``vector_score`` and ``projection_histogram`` compiled by ``compile_function``
    (``numba.njit`` for the CPU, ``cuda.jit(device=True)`` for the GPU)."""
    from types import SimpleNamespace

    def vector_score(spots, n_spots, vx, vy, vz, tolerance):  # type: ignore[no-untyped-def]
        total = 0.0
        for i in range(n_spots):
            p = spots[i, 0] * vx + spots[i, 1] * vy + spots[i, 2] * vz
            d = abs(p - math.floor(p + 0.5))
            if d < tolerance:
                q = d / tolerance
                total += 1.0 - q * q
        return total

    def projection_histogram(spots, n_spots, tx, ty, tz, extent, histogram, row):  # type: ignore[no-untyped-def]
        n_bins = histogram.shape[1]
        scale = n_bins / (2.0 * extent)
        for i in range(n_spots):
            p = spots[i, 0] * tx + spots[i, 1] * ty + spots[i, 2] * tz
            k = math.floor((p + extent) * scale)
            if 0 <= k < n_bins:
                histogram[row, k] += 1

    return SimpleNamespace(
        vector_score=compile_function(vector_score),
        projection_histogram=compile_function(projection_histogram),
    )
