"""The CPU indexing engine: the kernels compiled by numba, one trial vector after another.

``nogil``: ``-N`` threads index images in parallel (each image's work is one call). The
score's loop over spots runs in SIMD lanes (``fastmath`` lets it keep partial sums; the
spots are a struct of arrays, the weight branch-free): about 25 times a numpy matrix
product and weights on one core (docs/indexing.md, Performance). The kernels use
functions of another module, so they compile once per process (numba checks only a
kernel's own file when it reuses a disk cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from jfsim.analysis.indexing.engines import contiguous, spot_rows
from jfsim.analysis.indexing.kernels import build_kernels

__all__ = ["NAME", "CpuScoring", "prepare", "probe"]

NAME = "cpu"


def probe() -> str | None:
    """The CPU engine always runs."""
    return None


def _compile(function: Any) -> Any:
    return numba.njit(inline="always", nogil=True)(function)


def _compile_reorderable(function: Any) -> Any:
    return numba.njit(inline="always", nogil=True, fastmath=True)(function)


@numba.njit(inline="always", nogil=True)
def _rint(p):  # type: ignore[no-untyped-def]  # pragma: no cover
    return np.rint(p)


_KERNELS = build_kernels(_compile, _compile_reorderable, _rint)
_vector_score = _KERNELS.vector_score
_projection_histogram = _KERNELS.projection_histogram


@numba.njit(nogil=True, fastmath=True)  # the inlined score's flags are the caller's
def _score_all(spots, vectors, tolerance_sq, scores):  # type: ignore[no-untyped-def]  # pragma: no cover
    for m in range(vectors.shape[0]):
        scores[m] = _vector_score(spots, vectors[m, 0], vectors[m, 1], vectors[m, 2], tolerance_sq)


@numba.njit(nogil=True)
def _histogram_all(spots, directions, extent, histogram):  # type: ignore[no-untyped-def]  # pragma: no cover
    for m in range(directions.shape[0]):
        _projection_histogram(
            spots, directions[m, 0], directions[m, 1], directions[m, 2], extent, histogram, m
        )


@dataclass(frozen=True, slots=True)
class CpuScoring:
    """The CPU engine's kernels over whole arrays."""

    name: str = NAME

    def score_vectors(
        self, spots: npt.NDArray[np.float64], vectors: npt.NDArray[np.float64], tolerance: float
    ) -> npt.NDArray[np.float64]:
        scores = np.zeros(vectors.shape[0], dtype=np.float64)
        _score_all(spot_rows(spots), contiguous(vectors), float(tolerance) ** 2, scores)
        return scores

    def projection_histograms(
        self,
        spots: npt.NDArray[np.float64],
        directions: npt.NDArray[np.float64],
        extent_invA: float,
        n_bins: int,
    ) -> npt.NDArray[np.int32]:
        histogram = np.zeros((directions.shape[0], n_bins), dtype=np.int32)
        _histogram_all(spot_rows(spots), contiguous(directions), float(extent_invA), histogram)
        return histogram


def prepare(options: Any = None) -> CpuScoring:
    """The CPU engine (it has no options)."""
    return CpuScoring()
