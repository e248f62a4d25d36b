"""Known-cell indexing of stills (``FFBIDX``): fast-feedback indexing after Gasparotto et
al., "TORO Indexer" (J. Appl. Cryst. 2024), the method of Jungfraujoch's ``ffbidx``.

1. Candidate vectors of each distinct length of the reference cell, in ``directions``
   directions over a half sphere, are scored on the lowest-resolution spots (the engine's
   ``score_vectors``: their fit changes least with a vector's small angular error).
2. The best candidates of each length are refined by least squares on all spots and
   repeats are dropped.
3. Triples (a, b, c) with the reference's lengths and angles are tried with either sign
   of each vector; the one that indexes the most spots is the orientation.

Works with 20–30 spots per still: three vectors need only a handful of low-resolution
spots each to stand out.

Step 1 runs on the engine; steps 2 and 3 are numba loops (:mod:`.vectors` and
``_best_triple`` here) that cost a small fraction of step 1 (docs/indexing.md,
Performance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
import numpy.typing as npt

from jfsim.analysis.indexing.engines import ScoringEngine
from jfsim.analysis.indexing.lattice import ReferenceCell
from jfsim.analysis.indexing.matrix3 import determinant
from jfsim.analysis.indexing.vectors import hemisphere_directions, refined_best

__all__ = ["KnownCellOptions", "best_triple", "candidate_pools", "search_known_cell"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class KnownCellOptions:
    """Choices of the known-cell search (jfsim's; the broker's settings do not name them).

    Attributes:
        directions: trial directions per cell length over the half sphere (1.6° apart for
            8192).
        search_spots: the lowest-resolution spots scored in step 1.
        search_tolerance: tolerance of step 1's score (wide: the directions are coarse).
        candidates_per_length: best candidates of each length refined in step 2.
        refine_tolerances: tolerances of step 2's least-squares rounds.
        max_length_error: a refined vector's length may differ this much (relative).
        max_angle_error_deg: angles between the vectors of a triple, against the cell's.
    """

    directions: int = 8192
    search_spots: int = 80
    search_tolerance: float = 0.3
    candidates_per_length: int = 24
    refine_tolerances: tuple[float, ...] = (0.3, 0.2, 0.15)
    max_length_error: float = 0.05
    max_angle_error_deg: float = 4.0


def _distinct_lengths(reference: ReferenceCell) -> list[float]:
    lengths: list[float] = []
    for length in reference.lengths_A:
        if not any(abs(length - other) < 0.01 * other for other in lengths):
            lengths.append(length)
    return lengths


@lru_cache(maxsize=32)
def _trial_vectors(directions: int, length_A: float) -> FloatArray:
    """The trial vectors of one cell length (read-only: made once per run, not per still)."""
    vectors = hemisphere_directions(directions) * length_A
    vectors.setflags(write=False)
    return vectors


def _candidates(
    r_invA: FloatArray,
    lowest_resolution: FloatArray,
    length_A: float,
    engine: ScoringEngine,
    options: KnownCellOptions,
) -> FloatArray:
    """Refined, distinct candidate vectors of one length (rows), best first; scored on the
    spots ``lowest_resolution``."""
    trial_vectors = _trial_vectors(options.directions, length_A)
    scores = engine.score_vectors(lowest_resolution, trial_vectors, options.search_tolerance)
    return refined_best(
        r_invA,
        trial_vectors,
        scores,
        options.candidates_per_length,
        options.refine_tolerances,
        length_A,
        options.max_length_error,
    )


def candidate_pools(
    r_invA: FloatArray,
    reference: ReferenceCell,
    engine: ScoringEngine,
    options: KnownCellOptions,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Steps 1 and 2: the candidates for a, b and c (rows, best first); axes of the same
    length share one array (the same object)."""
    order = np.argsort(np.linalg.norm(r_invA, axis=1))[: options.search_spots]
    lowest_resolution = r_invA[order]
    by_length = {
        length: _candidates(r_invA, lowest_resolution, length, engine, options)
        for length in _distinct_lengths(reference)
    }

    def pool(length: float) -> FloatArray:
        return next(v for key, v in by_length.items() if abs(key - length) < 0.01 * key)

    a_pool, b_pool, c_pool = (pool(length) for length in reference.lengths_A)
    return a_pool, b_pool, c_pool


def best_triple(
    r_invA: FloatArray,
    pools: tuple[FloatArray, FloatArray, FloatArray],
    reference: ReferenceCell,
    tolerance: float,
    options: KnownCellOptions,
) -> FloatArray | None:
    """Step 3: the right-handed triple of the pools' vectors (either sign of b and c) with
    the reference's angles that indexes the most spots (the first such in pool order), or
    None when no triple has the angles."""
    a_pool, b_pool, c_pool = pools
    alpha, beta, gamma = (math.radians(x) for x in reference.cell[3:])
    count, basis = _best_triple(
        np.ascontiguousarray(r_invA, dtype=np.float64),
        a_pool,
        b_pool,
        c_pool,
        (b_pool is a_pool, c_pool is a_pool, c_pool is b_pool),
        (alpha, beta, gamma),
        math.radians(options.max_angle_error_deg),
        float(tolerance),
    )
    return None if count < 0 else np.asarray(basis)


def search_known_cell(
    r_invA: FloatArray,
    reference: ReferenceCell,
    engine: ScoringEngine,
    tolerance: float,
    options: KnownCellOptions | None = None,
) -> FloatArray | None:
    """A basis (rows a, b, c, Å, lab frame) with the reference's lengths and angles that
    indexes the most spots of ``r_invA``, or None when no such triple is found."""
    options = options or KnownCellOptions()
    pools = candidate_pools(r_invA, reference, engine, options)
    return best_triple(r_invA, pools, reference, tolerance, options)


@numba.njit(cache=True, nogil=True)
def _best_triple(r, a_pool, b_pool, c_pool, shared, angles, limit, tolerance):  # type: ignore[no-untyped-def]  # pragma: no cover
    """(spots indexed, basis) of the best triple; (-1, zeros) when none has the angles.
    ``shared``: whether pools (a, b), (a, c), (b, c) are one array, whose same row is
    never used twice."""
    alpha, beta, gamma = angles
    best_count = -1
    best = np.zeros((3, 3))
    basis = np.empty((3, 3))
    for i in range(a_pool.shape[0]):
        a = a_pool[i]
        for j in range(b_pool.shape[0]):
            if shared[0] and j == i:
                continue
            b = b_pool[j]
            angle_ab = _angle(a, b)
            for b_sign in (1.0, -1.0):
                if abs((angle_ab if b_sign > 0 else math.pi - angle_ab) - gamma) > limit:
                    continue
                for k in range(c_pool.shape[0]):
                    if (shared[1] and k == i) or (shared[2] and k == j):
                        continue
                    c = c_pool[k]
                    angle_ac = _angle(a, c)
                    for c_sign in (1.0, -1.0):
                        if abs((angle_ac if c_sign > 0 else math.pi - angle_ac) - beta) > limit:
                            continue
                        basis[0] = a
                        basis[1] = b_sign * b
                        basis[2] = c_sign * c
                        if (
                            determinant(basis) <= 0
                            or abs(_angle(basis[1], basis[2]) - alpha) > limit
                        ):
                            continue
                        count = _count_indexed(r, basis, tolerance)
                        if count > best_count:
                            best_count = count
                            best[:] = basis
    return best_count, best


@numba.njit(cache=True, nogil=True, inline="always")
def _angle(u, v):  # type: ignore[no-untyped-def]  # pragma: no cover
    dot = u[0] * v[0] + u[1] * v[1] + u[2] * v[2]
    cosine = dot / (
        np.sqrt(u[0] ** 2 + u[1] ** 2 + u[2] ** 2) * np.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    )
    return math.acos(max(-1.0, min(1.0, cosine)))


@numba.njit(cache=True, nogil=True, inline="always")
def _count_indexed(r, basis, tolerance):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Spots whose r·a, r·b and r·c all lie within ``tolerance`` of integers
    (:func:`.vectors.indexed`)."""
    count = 0
    for i in range(r.shape[0]):
        fits = True
        for axis in range(3):
            p = r[i, 0] * basis[axis, 0] + r[i, 1] * basis[axis, 1] + r[i, 2] * basis[axis, 2]
            fits = fits and abs(p - np.rint(p)) < tolerance
        if fits:
            count += 1
    return count
