"""Indexing engines behind one contract (style.md Part 2 §5).

Each engine module exposes ``NAME``, ``probe() -> str | None`` (None when usable, else the
reason) and ``prepare(options) -> ScoringEngine``: an object with the two kernels of
:mod:`jfsim.analysis.indexing.kernels` over whole arrays. Everything else of indexing
(candidate choice, bases, refinement) is shared code, so engines differ only in where
these sums run.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["ScoringEngine", "contiguous", "spot_rows"]


class ScoringEngine(Protocol):
    """The indexing kernels of one engine."""

    name: str

    def score_vectors(
        self, spots: npt.NDArray[np.float64], vectors: npt.NDArray[np.float64], tolerance: float
    ) -> npt.NDArray[np.float64]:
        """Score of each real-space vector (``[m, 3]``, Å) against spots (``[n, 3]``, Å⁻¹)."""
        ...

    def projection_histograms(
        self,
        spots: npt.NDArray[np.float64],
        directions: npt.NDArray[np.float64],
        extent_invA: float,
        n_bins: int,
    ) -> npt.NDArray[np.int32]:
        """``[m, n_bins]`` counts of r·t over [−extent, extent) for unit directions t."""
        ...


def contiguous(array: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``array`` as C-contiguous float64 (what the kernels are compiled for)."""
    return np.ascontiguousarray(array, dtype=np.float64)


def spot_rows(spots: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Spots ``[n, 3]`` as the kernels' ``[3, n]`` rows x, y, z (a struct of arrays)."""
    return contiguous(np.asarray(spots).T)
