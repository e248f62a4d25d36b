"""Candidate lattice vectors: sampling directions, refining a vector, choosing a basis.

Shared by both searches (known cell and FFT). A real-space vector v is a lattice vector
when r·v is an integer for every spot's reciprocal vector r (r·a = h): a candidate is
refined by least squares of r·v against the nearest integers, over the spots within the
tolerance; three refined vectors are a basis when the spots index on all three at once.
"""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np
import numpy.typing as npt

__all__ = [
    "best_basis",
    "distinct",
    "fitting",
    "hemisphere_directions",
    "indexed",
    "refine_vector",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Smallest volume of a basis relative to the product of its edges: nearly coplanar
#: triples (c ≈ a + b, from refinement noise) span no real cell, but fit as many spots.
MIN_SQUARENESS = 0.1
#: Fewest spots a vector must fit to be refined (the least squares has 3 unknowns).
MIN_FITTING_SPOTS = 6


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
    the last tolerance (0 when too few fit)."""
    vector = np.asarray(vector_A, dtype=np.float64)
    for tolerance in tolerances:
        projection = r_invA @ vector
        nearest = np.rint(projection)
        use = (np.abs(projection - nearest) < tolerance) & (nearest != 0)
        if use.sum() < MIN_FITTING_SPOTS:
            return vector, 0
        vector = np.linalg.lstsq(r_invA[use], nearest[use], rcond=None)[0]
    return vector, int(fitting(r_invA, vector, tolerances[-1]).sum())


def distinct(
    vectors: list[FloatArray], max_angle_deg: float = 3.0, length_tolerance: float = 0.05
) -> list[FloatArray]:
    """``vectors`` (best first) without the later ones that repeat an earlier one: parallel
    or antiparallel within ``max_angle_deg`` and of the same length within
    ``length_tolerance`` (relative)."""
    kept: list[FloatArray] = []
    cosine = math.cos(math.radians(max_angle_deg))
    for vector in vectors:
        length = float(np.linalg.norm(vector))
        if not any(
            abs(float(vector @ other)) > cosine * length * np.linalg.norm(other)
            and abs(length - np.linalg.norm(other)) < length_tolerance * length
            for other in kept
        ):
            kept.append(vector)
    return kept


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
