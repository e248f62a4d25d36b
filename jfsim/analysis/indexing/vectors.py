"""Candidate lattice vectors: sampling directions, refining a vector, choosing a basis.

Shared by both searches (known cell and FFT). A real-space vector v is a lattice vector
when r·v is an integer for every spot's reciprocal vector r (r·a = h): a candidate is
refined by least squares of r·v against the nearest integers, over the spots within the
tolerance; three refined vectors are a basis when the spots index on all three at once.

The loops a search runs many times (refining dozens of candidates, dropping repeats,
picking the best-scored) are compiled by numba: each costs microseconds instead of the
milliseconds of numpy calls on a few hundred spots, so that a known-cell search costs
little beside its scoring (docs/indexing.md, Performance).
"""

from __future__ import annotations

import itertools
import math
from functools import cache

import numba
import numpy as np
import numpy.typing as npt

__all__ = [
    "best_basis",
    "best_first",
    "distinct",
    "fitting",
    "hemisphere_directions",
    "indexed",
    "refine_vector",
    "refine_vectors",
    "refined_best",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Smallest volume of a basis relative to the product of its edges: nearly coplanar
#: triples (c ≈ a + b, from refinement noise) span no real cell, but fit as many spots.
MIN_SQUARENESS = 0.1
#: Fewest spots a vector must fit to be refined (the least squares has 3 unknowns).
MIN_FITTING_SPOTS = 6
#: Two vectors repeat each other when parallel or antiparallel within this angle and of
#: the same length within :data:`DISTINCT_LENGTH_TOLERANCE` (relative).
DISTINCT_ANGLE_DEG = 3.0
DISTINCT_LENGTH_TOLERANCE = 0.05


@cache
def hemisphere_directions(n: int) -> FloatArray:
    """``n`` unit vectors spread evenly over the half sphere z ≥ 0 (a Fibonacci lattice);
    a vector and its negative describe the same lattice row."""
    index = np.arange(n, dtype=np.float64) + 0.5
    z = index / n
    azimuth = math.pi * (1.0 + math.sqrt(5.0)) * index
    radius = np.sqrt(1.0 - z * z)
    directions = np.stack([radius * np.cos(azimuth), radius * np.sin(azimuth), z], axis=1)
    directions.setflags(write=False)
    return directions


def fitting(r_invA: FloatArray, vector_A: FloatArray, tolerance: float) -> BoolArray:
    """Spots whose r·v lies within ``tolerance`` of an integer."""
    projection = r_invA @ vector_A
    return np.asarray(np.abs(projection - np.rint(projection)) < tolerance)


def indexed(r_invA: FloatArray, basis_A: FloatArray, tolerance: float) -> BoolArray:
    """Spots whose Miller indices (r·a, r·b, r·c) are all within ``tolerance`` of
    integers."""
    hkl = r_invA @ np.asarray(basis_A).T
    return np.asarray(np.all(np.abs(hkl - np.rint(hkl)) < tolerance, axis=1))


def refine_vector(
    r_invA: FloatArray, vector_A: FloatArray, tolerances: tuple[float, ...]
) -> tuple[FloatArray, int]:
    """A candidate refined by least squares (r·v ≈ nearest integer, spots within each
    tolerance in turn, zero projections excluded); returns it and how many spots fit it at
    the last tolerance (0 when too few fit, or when the spots that fit span no volume)."""
    refined, counts = refine_vectors(r_invA, np.asarray(vector_A).reshape(1, 3), tolerances)
    return refined[0], int(counts[0])


def refine_vectors(
    r_invA: FloatArray, vectors_A: FloatArray, tolerances: tuple[float, ...]
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """:func:`refine_vector` of each row of ``vectors_A`` (``[m, 3]``): the refined rows
    and their counts."""
    return _refine_rows(  # type: ignore[no-any-return]
        np.ascontiguousarray(r_invA, dtype=np.float64),
        np.ascontiguousarray(vectors_A, dtype=np.float64),
        np.asarray(tolerances, dtype=np.float64),
        MIN_FITTING_SPOTS,
    )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _refine_rows(r, starts, tolerances, min_spots):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Each start refined by the normal equations of r·v = n over the spots within each
    tolerance of a non-zero integer n (the 3 × 3 system solved by Cramer's rule).

    All starts are refined together, spot after spot: the innermost loop runs over the
    starts, whose sums are independent, so that it runs in SIMD lanes without reordering
    any sum (each start's terms are added in spot order, as one start alone would add
    them; a spot that does not fit adds an exact zero). A start that fails a round keeps
    its last solution and is left out of the later solves."""
    n_starts = starts.shape[0]
    v0 = starts[:, 0].copy()
    v1 = starts[:, 1].copy()
    v2 = starts[:, 2].copy()
    sums = np.empty((9, n_starts))  # b0, b1, b2, n00, n01, n02, n11, n12, n22
    used = np.empty(n_starts, dtype=np.int64)
    solved = np.ones(n_starts, dtype=np.bool_)
    normal = np.empty((3, 3))
    right = np.empty(3)
    out = np.empty(3)
    for tolerance in tolerances:
        sums[:] = 0.0
        used[:] = 0
        for i in range(r.shape[0]):
            x, y, z = r[i, 0], r[i, 1], r[i, 2]
            for m in range(n_starts):
                p = x * v0[m] + y * v1[m] + z * v2[m]
                nearest = np.rint(p)
                fits = (abs(p - nearest) < tolerance) & (nearest != 0.0)
                weight = 1.0 if fits else 0.0
                used[m] += 1 if fits else 0
                wx, wy, wz = weight * x, weight * y, weight * z
                sums[0, m] += wx * nearest
                sums[1, m] += wy * nearest
                sums[2, m] += wz * nearest
                sums[3, m] += wx * x
                sums[4, m] += wx * y
                sums[5, m] += wx * z
                sums[6, m] += wy * y
                sums[7, m] += wy * z
                sums[8, m] += wz * z
        for m in range(n_starts):
            if not solved[m]:
                continue
            normal[0, 0], normal[0, 1], normal[0, 2] = sums[3, m], sums[4, m], sums[5, m]
            normal[1, 0], normal[1, 1], normal[1, 2] = sums[4, m], sums[6, m], sums[7, m]
            normal[2, 0], normal[2, 1], normal[2, 2] = sums[5, m], sums[7, m], sums[8, m]
            right[0], right[1], right[2] = sums[0, m], sums[1, m], sums[2, m]
            if used[m] < min_spots or not _solve_3x3(normal, right, out):
                solved[m] = False
                continue
            v0[m], v1[m], v2[m] = out[0], out[1], out[2]
    refined = np.empty((n_starts, 3))
    counts = np.zeros(n_starts, dtype=np.int64)
    for m in range(n_starts):
        refined[m, 0], refined[m, 1], refined[m, 2] = v0[m], v1[m], v2[m]
        if solved[m]:
            counts[m] = _count_fitting(r, refined[m], tolerances[-1])
    return refined, counts


@numba.njit(cache=True, nogil=True, inline="always")
def _solve_3x3(matrix, right, out):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``out`` = matrix⁻¹ · right for a symmetric positive matrix; False (out unchanged)
    when it is singular to 1e-12 of its diagonal's product (spots on a plane)."""
    c00 = matrix[1, 1] * matrix[2, 2] - matrix[1, 2] * matrix[2, 1]
    c01 = matrix[1, 2] * matrix[2, 0] - matrix[1, 0] * matrix[2, 2]
    c02 = matrix[1, 0] * matrix[2, 1] - matrix[1, 1] * matrix[2, 0]
    det = matrix[0, 0] * c00 + matrix[0, 1] * c01 + matrix[0, 2] * c02
    if not det > 1e-12 * matrix[0, 0] * matrix[1, 1] * matrix[2, 2]:
        return False
    c10 = matrix[0, 2] * matrix[2, 1] - matrix[0, 1] * matrix[2, 2]
    c11 = matrix[0, 0] * matrix[2, 2] - matrix[0, 2] * matrix[2, 0]
    c12 = matrix[0, 1] * matrix[2, 0] - matrix[0, 0] * matrix[2, 1]
    c20 = matrix[0, 1] * matrix[1, 2] - matrix[0, 2] * matrix[1, 1]
    c21 = matrix[0, 2] * matrix[1, 0] - matrix[0, 0] * matrix[1, 2]
    c22 = matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0]
    out[0] = (c00 * right[0] + c10 * right[1] + c20 * right[2]) / det
    out[1] = (c01 * right[0] + c11 * right[1] + c21 * right[2]) / det
    out[2] = (c02 * right[0] + c12 * right[1] + c22 * right[2]) / det
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _count_fitting(r, v, tolerance):  # type: ignore[no-untyped-def]  # pragma: no cover
    count = 0
    for i in range(r.shape[0]):
        p = r[i, 0] * v[0] + r[i, 1] * v[1] + r[i, 2] * v[2]
        if abs(p - np.rint(p)) < tolerance:
            count += 1
    return count


def refined_best(
    r_invA: FloatArray,
    trial_vectors_A: FloatArray,
    scores: FloatArray,
    count: int,
    tolerances: tuple[float, ...],
    length_A: float,
    max_length_error: float,
) -> FloatArray:
    """The ``count`` best-scored trial vectors (:func:`best_first`) refined
    (:func:`refine_vectors`), those that fit spots with a length within
    ``max_length_error`` (relative) of ``length_A``, most fitting spots first (stable), less
    repeats (:func:`distinct`): rows. One compiled call, as a still's search makes one per
    cell length."""
    return _refined_best(  # type: ignore[no-any-return]
        np.ascontiguousarray(r_invA, dtype=np.float64),
        np.ascontiguousarray(trial_vectors_A, dtype=np.float64),
        np.ascontiguousarray(scores, dtype=np.float64),
        count,
        np.asarray(tolerances, dtype=np.float64),
        MIN_FITTING_SPOTS,
        float(length_A),
        float(max_length_error),
        math.cos(math.radians(DISTINCT_ANGLE_DEG)),
        DISTINCT_LENGTH_TOLERANCE,
    )


@numba.njit(cache=True, nogil=True)
def _refined_best(  # type: ignore[no-untyped-def]  # pragma: no cover
    r, trial_vectors, scores, count, tolerances, min_spots, length, max_length_error,
    cosine, length_tolerance,
):  # fmt: skip
    best = _best_first(scores, count)
    starts = np.empty((best.size, 3))
    for k in range(best.size):
        starts[k] = trial_vectors[best[k]]
    refined, counts = _refine_rows(r, starts, tolerances, min_spots)
    usable = np.empty(best.size, dtype=np.int64)
    n_usable = 0
    for k in range(best.size):
        norm = math.sqrt(refined[k, 0] ** 2 + refined[k, 1] ** 2 + refined[k, 2] ** 2)
        if counts[k] > 0 and abs(norm - length) < max_length_error * length:
            usable[n_usable] = k
            n_usable += 1
    usable = usable[:n_usable]
    ranked = refined[usable[np.argsort(-counts[usable], kind="mergesort")]]
    return ranked[_distinct_rows(ranked, cosine, length_tolerance)]


def best_first(scores: FloatArray, count: int) -> npt.NDArray[np.int64]:
    """Indices of the ``count`` highest scores, highest first, ties in index order: the
    head of a stable descending sort, in one pass instead of a sort of every score."""
    return _best_first(np.ascontiguousarray(scores, dtype=np.float64), count)  # type: ignore[no-any-return]


@numba.njit(cache=True, nogil=True)
def _best_first(scores, count):  # type: ignore[no-untyped-def]  # pragma: no cover
    size = min(count, scores.shape[0])
    chosen = np.empty(size, dtype=np.int64)
    if size == 0:
        return chosen
    filled = 0
    for index in range(scores.shape[0]):
        score = scores[index]
        if filled == size and not score > scores[chosen[size - 1]]:
            continue
        slot = min(filled, size - 1)
        while slot > 0 and score > scores[chosen[slot - 1]]:
            chosen[slot] = chosen[slot - 1]
            slot -= 1
        chosen[slot] = index
        filled = min(filled + 1, size)
    return chosen


def distinct(
    vectors: list[FloatArray] | FloatArray,
    max_angle_deg: float = DISTINCT_ANGLE_DEG,
    length_tolerance: float = DISTINCT_LENGTH_TOLERANCE,
) -> list[FloatArray]:
    """``vectors`` (best first) without the later ones that repeat an earlier one: parallel
    or antiparallel within ``max_angle_deg`` and of the same length within
    ``length_tolerance`` (relative)."""
    stack = np.ascontiguousarray(np.reshape(vectors, (-1, 3)), dtype=np.float64)
    kept = _distinct_rows(stack, math.cos(math.radians(max_angle_deg)), length_tolerance)
    return list(stack[kept])


@numba.njit(cache=True, nogil=True)
def _distinct_rows(vectors, cosine, length_tolerance):  # type: ignore[no-untyped-def]  # pragma: no cover
    lengths = np.sqrt((vectors * vectors).sum(axis=1))
    kept = np.empty(vectors.shape[0], dtype=np.int64)
    n_kept = 0
    for m in range(vectors.shape[0]):
        repeat = False
        for j in kept[:n_kept]:
            dot = vectors[m, 0] * vectors[j, 0] + vectors[m, 1] * vectors[j, 1]
            dot += vectors[m, 2] * vectors[j, 2]
            if (
                abs(dot) > cosine * lengths[m] * lengths[j]
                and abs(lengths[m] - lengths[j]) < length_tolerance * lengths[m]
            ):
                repeat = True
                break
        if not repeat:
            kept[n_kept] = m
            n_kept += 1
    return kept[:n_kept]


def best_basis(
    r_invA: FloatArray,
    vectors: list[FloatArray],
    tolerance: float,
    min_volume_A3: float,
) -> FloatArray | None:
    """Three of ``vectors`` that index the most spots together, the smallest cell among
    those (a supercell indexes the same spots); None when no three span a volume of at
    least ``min_volume_A3`` without being nearly coplanar. Rows of the result are the
    vectors (right-handed)."""
    if len(vectors) < 3:
        return None
    stack = np.array(vectors)
    fits = np.array([fitting(r_invA, v, tolerance) for v in stack])
    triples = np.array(list(itertools.combinations(range(len(stack)), 3)), dtype=np.int64)
    volumes = np.abs(np.linalg.det(stack[triples]))
    lengths = np.linalg.norm(stack, axis=1)[triples].prod(axis=1)
    usable = (volumes >= min_volume_A3) & (volumes >= MIN_SQUARENESS * lengths)
    if not usable.any():
        return None
    triples, volumes = triples[usable], volumes[usable]
    counts = (fits[triples[:, 0]] & fits[triples[:, 1]] & fits[triples[:, 2]]).sum(axis=1)
    best_count = int(counts.max())
    near_best = np.flatnonzero(counts >= best_count)
    choice = triples[near_best[int(np.argmin(volumes[near_best]))]]
    basis = stack[choice]
    return np.asarray(basis if np.linalg.det(basis) > 0 else -basis, dtype=np.float64)
