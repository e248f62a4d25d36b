"""The GPU indexing engine is the CPU engine's twin: the same scores, the same histograms,
the same solutions of both searches (known cell and FFT).

Without a GPU the CUDA kernels run in numba's simulator (NUMBA_ENABLE_CUDASIM=1), in a
subprocess so the switch does not leak into other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jfsim.analysis.indexing.engines import cpu
from jfsim.analysis.indexing.vectors import hemisphere_directions

HERE = Path(__file__).resolve().parent


def _twin_report(seed: str, simulator: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(HERE / "indexing_twin.py"), seed],
        env={**os.environ, "PYTHONPATH": str(HERE.parents[1]), "NUMBA_ENABLE_CUDASIM": simulator},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def _assert_twins(report: dict) -> None:
    assert report["engines"] == ["gpu", "cpu"]
    assert report["spots"] > 50
    assert report["histograms_identical"] and report["histogram_total"] > 0
    assert report["score_max_abs_diff"] < 1e-9 and report["best_score"] > 10
    for search in ("known_cell", "fft"):
        assert report[f"{search}_found"] and report[f"{search}_same"], search
        # and the solution is the true lattice (an integer, unimodular change of basis)
        assert report[f"{search}_max_fraction"] < 0.01 and report[f"{search}_det"] == 1


def test_gpu_indexing_engine_under_the_simulator_matches_the_cpu_engine() -> None:
    _assert_twins(_twin_report("1", simulator="1"))


@pytest.mark.gpu
def test_gpu_indexing_engine_on_a_real_gpu_matches_the_cpu_engine() -> None:
    from numba import cuda

    if os.environ.get("JFSIM_NO_GPU") == "1" or not cuda.is_available():
        pytest.skip("no CUDA device (numba.cuda.is_available() is false or JFSIM_NO_GPU=1)")
    _assert_twins(_twin_report("2", simulator="0"))


def test_the_cpu_kernels_compute_the_documented_sums() -> None:
    """Score Σ 1 − (d/t)² over spots within t of an integer; histogram of r·t: against
    numpy on random spots."""
    rng = np.random.default_rng(7)
    spots = rng.normal(scale=0.2, size=(60, 3))
    vectors = hemisphere_directions(256) * 37.9
    engine = cpu.prepare()
    projection = spots @ vectors.T
    distance = np.abs(projection - np.rint(projection))
    expected = np.where(distance < 0.25, 1 - (distance / 0.25) ** 2, 0).sum(axis=0)
    np.testing.assert_allclose(engine.score_vectors(spots, vectors, 0.25), expected, rtol=1e-12)
    directions = hemisphere_directions(64)
    histogram = engine.projection_histograms(spots, directions, 0.5, 128)
    for row, direction in enumerate(directions):
        counts, _edges = np.histogram(spots @ direction, bins=128, range=(-0.5, 0.5))
        assert np.array_equal(histogram[row], counts)
