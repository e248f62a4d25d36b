"""The GPU indexing engine: numba.cuda, one thread per trial vector, the CPU engine's twin.

Each thread runs the same device function as the CPU engine's loop body
(:mod:`jfsim.analysis.indexing.kernels`), so histograms are identical and scores equal to
rounding (a thread sums in spot order; the CPU's SIMD lanes keep partial sums). Tested
against the CPU engine under ``NUMBA_ENABLE_CUDASIM=1``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import cuda  # module level: the CUDA simulator patches this global

from jfsim.analysis.indexing.engines import contiguous, spot_rows
from jfsim.engines import cuda_probe

__all__ = ["NAME", "GpuScoring", "GpuScoringOptions", "prepare", "probe"]

NAME = "gpu"


@dataclass(frozen=True, slots=True)
class GpuScoringOptions:
    """Threads per block of both kernels."""

    threads_per_block: int = 128


def probe() -> str | None:
    """None when a CUDA device (or the numba CUDA simulator) is usable, else the reason."""
    return cuda_probe()


@functools.cache
def _kernels() -> dict[str, Any]:
    """Compile on first use (CUDA compilation is slow; CPU-only runs skip it)."""
    from jfsim.analysis.indexing.kernels import build_kernels

    device = build_kernels(lambda function: cuda.jit(device=True, inline=True)(function))
    vector_score = device.vector_score
    projection_histogram = device.projection_histogram

    @cuda.jit
    def score_all(spots, vectors, tolerance_sq, scores):  # type: ignore[no-untyped-def]
        m = cuda.grid(1)
        if m < vectors.shape[0]:
            scores[m] = vector_score(
                spots, vectors[m, 0], vectors[m, 1], vectors[m, 2], tolerance_sq
            )

    @cuda.jit
    def histogram_all(spots, directions, extent, histogram):  # type: ignore[no-untyped-def]
        m = cuda.grid(1)
        if m < directions.shape[0]:
            projection_histogram(
                spots, directions[m, 0], directions[m, 1], directions[m, 2], extent, histogram, m
            )

    return dict(score_all=score_all, histogram_all=histogram_all)


@dataclass(frozen=True)
class GpuScoring:
    """The GPU engine's kernels over whole arrays (inputs copied to the device per call:
    a few kB of spots and vectors)."""

    options: GpuScoringOptions
    name: str = NAME

    def _blocks(self, n: int) -> int:
        return max(1, math.ceil(n / self.options.threads_per_block))

    def score_vectors(
        self, spots: npt.NDArray[np.float64], vectors: npt.NDArray[np.float64], tolerance: float
    ) -> npt.NDArray[np.float64]:
        kernels = _kernels()
        scores = cuda.device_array(vectors.shape[0], dtype=np.float64)
        kernels["score_all"][self._blocks(vectors.shape[0]), self.options.threads_per_block](
            cuda.to_device(spot_rows(spots)),
            cuda.to_device(contiguous(vectors)),
            float(tolerance) ** 2,
            scores,
        )
        return np.asarray(scores.copy_to_host())

    def projection_histograms(
        self,
        spots: npt.NDArray[np.float64],
        directions: npt.NDArray[np.float64],
        extent_invA: float,
        n_bins: int,
    ) -> npt.NDArray[np.int32]:
        kernels = _kernels()
        histogram = cuda.to_device(np.zeros((directions.shape[0], n_bins), dtype=np.int32))
        blocks = self._blocks(directions.shape[0])
        kernels["histogram_all"][blocks, self.options.threads_per_block](
            cuda.to_device(spot_rows(spots)),
            cuda.to_device(contiguous(directions)),
            float(extent_invA),
            histogram,
        )
        return np.asarray(histogram.copy_to_host())


def prepare(options: GpuScoringOptions | None = None) -> GpuScoring:
    """The GPU engine (call ``probe()`` first)."""
    return GpuScoring(options or GpuScoringOptions())
