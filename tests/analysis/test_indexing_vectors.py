"""The compiled steps of the known-cell search (candidate refinement, repeats, the best
scores, the triple search) give what plain numpy versions of the same rules give."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from jfsim.analysis.indexing.engines import cpu
from jfsim.analysis.indexing.known_cell import (
    KnownCellOptions,
    best_triple,
    candidate_pools,
    search_known_cell,
)
from jfsim.analysis.indexing.lattice import ReferenceCell
from jfsim.analysis.indexing.vectors import (
    MIN_FITTING_SPOTS,
    best_first,
    distinct,
    indexed,
    refine_vector,
    refine_vectors,
)
from tests.analysis.indexing_twin import CELL, still_spots

TOLERANCES = (0.3, 0.2, 0.15)
LYSOZYME = ReferenceCell(CELL, "P", 96)


def _numpy_refine(r: np.ndarray, vector: np.ndarray) -> tuple[np.ndarray, int]:
    """The rule by numpy's least squares, one tolerance after another."""
    for tolerance in TOLERANCES:
        projection = r @ vector
        nearest = np.rint(projection)
        use = (np.abs(projection - nearest) < tolerance) & (nearest != 0)
        if use.sum() < MIN_FITTING_SPOTS:
            return vector, 0
        vector = np.linalg.lstsq(r[use], nearest[use], rcond=None)[0]
    projection = r @ vector
    return vector, int((np.abs(projection - np.rint(projection)) < TOLERANCES[-1]).sum())


def test_refined_candidates_equal_numpy_least_squares() -> None:
    r, real = still_spots(3)
    rng = np.random.default_rng(11)
    near = real * (1 + rng.normal(scale=0.01, size=(3, 1))) + rng.normal(scale=0.3, size=(3, 3))
    starts = np.vstack([near, rng.normal(scale=40.0, size=(5, 3))])
    refined, counts = refine_vectors(r, starts, TOLERANCES)
    expected = [_numpy_refine(r, start) for start in starts]
    assert counts[:3].min() > 50  # the near-true vectors refine onto the lattice
    for (vector, count), got, got_count in zip(expected, refined, counts, strict=True):
        assert got_count == count
        np.testing.assert_allclose(got, vector, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(refined[:3], real, atol=0.05)


def test_a_candidate_whose_fitting_spots_lie_on_a_plane_is_dropped() -> None:
    grid = np.arange(-4, 5) / 20.0
    flat = np.array([(x, y, 0.0) for x in grid for y in grid])
    vector, count = refine_vector(flat, np.array([20.0, 20.0, 5.0]), TOLERANCES)
    assert count == 0 and np.all(np.isfinite(vector))


@pytest.mark.parametrize("count", [0, 1, 24, 999, 1000, 2000])
def test_best_first_is_the_head_of_a_stable_descending_sort(count: int) -> None:
    scores = np.random.default_rng(5).integers(0, 40, size=1000).astype(np.float64)
    expected = np.argsort(-scores, kind="stable")[:count]
    assert np.array_equal(best_first(scores, count), expected)


def test_distinct_drops_parallel_antiparallel_and_same_length_repeats() -> None:
    a, b = np.array([79.1, 0.0, 0.0]), np.array([0.0, 37.9, 0.0])
    turned = np.array([79.1 * math.cos(0.02), 79.1 * math.sin(0.02), 0.0])  # 1.1°
    tilted = b + np.array([0.0, 0.0, 5.0])  # 7.5° from b
    kept = distinct([a, b, -a, turned, 1.01 * b, 2.0 * a, tilted])
    assert [v.tolist() for v in kept] == [v.tolist() for v in (a, b, 2.0 * a, tilted)]


def _numpy_best_triple(
    r: np.ndarray, pools: tuple[np.ndarray, ...], tolerance: float, limit_deg: float
) -> np.ndarray | None:
    """The triple search as plain loops: every sign of b and c, angles within the limit,
    right-handed, the first triple with the most indexed spots."""
    alpha, beta, gamma = (math.radians(x) for x in CELL[3:])
    limit = math.radians(limit_deg)

    def angle(u: np.ndarray, v: np.ndarray) -> float:
        return math.acos(np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1))

    best: tuple[int, np.ndarray] | None = None
    a_pool, b_pool, c_pool = pools
    for (i, a), (j, b), (k, c) in itertools.product(
        enumerate(a_pool), enumerate(b_pool), enumerate(c_pool)
    ):
        if (b_pool is a_pool and j == i) or (c_pool is a_pool and k == i):
            continue
        if c_pool is b_pool and k == j:
            continue
        for b_sign, c_sign in itertools.product((1.0, -1.0), repeat=2):
            basis = np.array([a, b_sign * b, c_sign * c])
            angles = (angle(basis[1], basis[2]), angle(a, basis[2]), angle(a, basis[1]))
            if np.linalg.det(basis) <= 0 or any(
                abs(found - want) > limit
                for found, want in zip(angles, (alpha, beta, gamma), strict=True)
            ):
                continue
            count = int(indexed(r, basis, tolerance).sum())
            if best is None or count > best[0]:
                best = (count, basis)
    return None if best is None else best[1]


@pytest.mark.parametrize("seed", [1, 4, 9])
def test_the_triple_search_equals_plain_loops_and_finds_the_true_lattice(seed: int) -> None:
    r, real = still_spots(seed)
    r = r + np.random.default_rng(seed).normal(scale=0.0002, size=r.shape)
    options = KnownCellOptions()
    pools = candidate_pools(r, LYSOZYME, cpu.prepare(), options)
    assert pools[0] is pools[1] and len(pools[2]) > 0
    found = best_triple(r, pools, LYSOZYME, 0.2, options)
    expected = _numpy_best_triple(r, pools, 0.2, options.max_angle_error_deg)
    assert found is not None and expected is not None
    np.testing.assert_array_equal(found, expected)
    change = found @ np.linalg.inv(real)  # an integer, unimodular change of basis
    assert np.abs(change - np.rint(change)).max() < 0.01
    assert round(abs(np.linalg.det(np.rint(change)))) == 1


def test_no_triple_with_the_reference_angles_gives_none() -> None:
    r, real = still_spots(2)
    ab, c = np.ascontiguousarray(real[:2]), np.ascontiguousarray(real[2:])
    options = KnownCellOptions()
    found = best_triple(r, (ab, ab, c), LYSOZYME, 0.2, options)
    assert found is not None and np.allclose(np.abs(found), np.abs(real))
    hexagonal = ReferenceCell((79.1, 79.1, 37.9, 90.0, 90.0, 120.0), "P", 168)
    assert best_triple(r, (ab, ab, c), hexagonal, 0.2, options) is None
    assert search_known_cell(r[:5], LYSOZYME, cpu.prepare(), 0.2, options) is None
