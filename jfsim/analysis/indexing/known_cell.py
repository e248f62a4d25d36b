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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from jfsim.analysis.indexing.engines import ScoringEngine
from jfsim.analysis.indexing.lattice import ReferenceCell
from jfsim.analysis.indexing.vectors import (
    distinct,
    hemisphere_directions,
    indexed,
    refine_vector,
)

__all__ = ["KnownCellOptions", "search_known_cell"]

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


def _candidates(
    r_invA: FloatArray,
    length_A: float,
    engine: ScoringEngine,
    options: KnownCellOptions,
) -> list[FloatArray]:
    """Refined, distinct candidate vectors of one length, best first."""
    directions = hemisphere_directions(options.directions)
    order = np.argsort(np.linalg.norm(r_invA, axis=1))[: options.search_spots]
    scores = engine.score_vectors(r_invA[order], directions * length_A, options.search_tolerance)
    best = np.argsort(-scores, kind="stable")[: options.candidates_per_length]
    refined: list[tuple[int, FloatArray]] = []
    for index in best:
        vector, count = refine_vector(
            r_invA, directions[index] * length_A, options.refine_tolerances
        )
        length = float(np.linalg.norm(vector))
        if count and abs(length - length_A) < options.max_length_error * length_A:
            refined.append((count, vector))
    refined.sort(key=lambda item: -item[0])
    return distinct([vector for _count, vector in refined])


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
    by_length = {
        length: _candidates(r_invA, length, engine, options)
        for length in _distinct_lengths(reference)
    }

    def pool(length: float) -> list[FloatArray]:
        return next(v for key, v in by_length.items() if abs(key - length) < 0.01 * key)

    alpha, beta, gamma = (math.radians(x) for x in reference.cell[3:])
    limit = math.radians(options.max_angle_error_deg)
    best: tuple[int, FloatArray] | None = None
    a_pool, b_pool, c_pool = (pool(length) for length in reference.lengths_A)
    for a in a_pool:
        for b in b_pool:
            if b is a:
                continue
            for b_sign in _signs_at_angle(a, b, gamma, limit):
                for c in c_pool:
                    if c is a or c is b:
                        continue
                    for c_sign in _signs_at_angle(a, c, beta, limit):
                        basis = np.array([a, b_sign * b, c_sign * c])
                        if (
                            np.linalg.det(basis) <= 0
                            or abs(_angle(basis[1], basis[2]) - alpha) > limit
                        ):
                            continue
                        count = int(indexed(r_invA, basis, tolerance).sum())
                        if best is None or count > best[0]:
                            best = (count, basis)
    return None if best is None else best[1]


def _angle(u: FloatArray, v: FloatArray) -> float:
    cosine = float(u @ v) / float(np.linalg.norm(u) * np.linalg.norm(v))
    return math.acos(max(-1.0, min(1.0, cosine)))


def _signs_at_angle(
    u: FloatArray, v: FloatArray, target_rad: float, limit_rad: float
) -> list[float]:
    """Signs s for which the angle between u and s·v is within ``limit_rad`` of the
    target (both for a right angle)."""
    angle = _angle(u, v)
    return [
        sign
        for sign, found in ((1.0, angle), (-1.0, math.pi - angle))
        if abs(found - target_rad) <= limit_rad
    ]
