"""The two functions that dominate indexing time, written once for both engines.

Both look at every spot's reciprocal vector r (Å⁻¹) through one trial vector. The spots
come as a ``[3, n]`` array (rows x, y, z: a struct of arrays), so that the CPU's loop
over spots reads three contiguous rows and runs in SIMD lanes, and GPU threads, all at
the same spot, read one broadcast address.

* ``vector_score``: how well a real-space vector v (Å) fits the spots: Σ w(d) over spots,
  d the distance of r·v to the nearest integer and w(d) = max(0, 1 − (d/t)²), which is
  1 − (d/t)² for d < t and 0 beyond (t the tolerance; the kernel takes t² and sums
  max(0, t² − d²), one fused multiply-add per spot, dividing by t² once). A lattice
  vector makes every r·v an integer (r·a = h), so the true a, b and c score highest.
  Known-cell indexing scores vectors of the cell's lengths over a sphere of directions
  (fast-feedback indexing, Gasparotto et al. 2024). Branch-free, so that it vectorises:
  the max is a conditional expression, which compiles to a select (numba's CUDA target
  does not type the builtin ``max`` in an inlined device function).
* ``projection_histogram``: how many spots project to each bin of r·t along a unit
  direction t, over [−extent, extent). Its Fourier transform peaks at the lengths of the
  lattice vectors along t (DPS, Steller et al. 1997): the de novo FFT indexer.

Each trial vector is one independent sum over the spots: the CPU engine loops over
vectors, the GPU engine gives each vector a thread. The histograms are counts, identical
on both. The score is a float sum whose order the CPU engine lets the compiler change
(``compile_reorderable``: numba's ``fastmath``, so that SIMD lanes hold partial sums),
while a GPU thread adds in spot order: the engines agree to rounding (about 1e-14 of a
score of tens).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["build_kernels"]

Compiler = Callable[[Callable[..., Any]], Any]


def half_up(p: float) -> float:
    """The integer nearest to ``p``, halves rounded up: what every target compiles."""
    return math.floor(p + 0.5)


def build_kernels(
    compile_exact: Compiler,
    compile_reorderable: Compiler | None = None,
    nearest_integer: Callable[[float], float] | None = None,
) -> Any:
    """``vector_score`` and ``projection_histogram`` compiled for one engine
    (``numba.njit`` for the CPU, ``cuda.jit(device=True)`` for the GPU):
    ``compile_reorderable`` compiles the float sum that may be reordered (default:
    ``compile_exact``); ``nearest_integer`` is the engine's compiled rounding of r·v
    (default: :func:`half_up`; the CPU's ``np.rint`` is one instruction where half-up is
    an add and a floor). Roundings that differ only at exact halves give the same d²."""
    from types import SimpleNamespace

    nearest = nearest_integer or compile_exact(half_up)

    def vector_score(spots, vx, vy, vz, tolerance_sq):  # type: ignore[no-untyped-def]
        total = 0.0
        for i in range(spots.shape[1]):
            p = spots[0, i] * vx + spots[1, i] * vy + spots[2, i] * vz
            d = p - nearest(p)
            weight = tolerance_sq - d * d
            total += weight if weight > 0.0 else 0.0  # a select, not max(): see above
        return total / tolerance_sq

    def projection_histogram(spots, tx, ty, tz, extent, histogram, row):  # type: ignore[no-untyped-def]
        n_bins = histogram.shape[1]
        scale = n_bins / (2.0 * extent)
        for i in range(spots.shape[1]):
            p = spots[0, i] * tx + spots[1, i] * ty + spots[2, i] * tz
            k = int(math.floor((p + extent) * scale))  # noqa: RUF046 - a float on the CUDA target
            if 0 <= k < n_bins:
                histogram[row, k] += 1

    return SimpleNamespace(
        vector_score=(compile_reorderable or compile_exact)(vector_score),
        projection_histogram=compile_exact(projection_histogram),
    )
