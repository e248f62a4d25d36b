"""Simulator throughput on a JUNGFRAU 4M, as ratios to numpy Poisson noise of one frame.

Run: .venv/bin/python -m pytest -m benchmark --benchmark-enable tests/benchmarks/test_bench_sim.py

Each test measures its own baseline in the same process (numpy ``Generator.poisson`` over
the frame's background expectation, one thread, best of 5) and records, for the best of 10
rendered frames, ``speedup_vs_numpy_poisson`` (how many rendered frames cost as much as one
numpy Poisson frame) and frames/s per core in ``extra_info`` (printed with ``-s``). Renders
run on one numba thread (per-core figures) unless the test name says ``all_cores``.
"""

from __future__ import annotations

import itertools
import time

import numba
import numpy as np
import pytest

from jfsim.experiment import experiment_preset
from jfsim.sim import Renderer
from jfsim.sim.engines import gpu

PRESET = "lysozyme-rotation-jf4m"


def _numpy_poisson_seconds(expected: np.ndarray, repeats: int = 5) -> float:
    rng = np.random.default_rng(0)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        rng.poisson(expected)
        best = min(best, time.perf_counter() - start)
    return best


def _bench_renderer(benchmark, renderer: Renderer, *, threads: int = 1) -> None:
    """Per-core figures: numba runs on ``threads`` threads, as the numpy baseline on one."""
    baseline_s = _numpy_poisson_seconds(renderer.plan.background_photons)
    ids = itertools.count(1)
    renderer.render(0)  # compile and warm caches outside the timing
    default_threads = numba.get_num_threads()
    numba.set_num_threads(min(threads, default_threads))
    try:
        benchmark.pedantic(lambda: renderer.render(next(ids)), rounds=10, iterations=1)
    finally:
        numba.set_num_threads(default_threads)
    frame_s = benchmark.stats.stats.min  # the least disturbed round, like the baseline
    cores = min(threads, default_threads)
    benchmark.extra_info.update(
        {
            "engine": renderer.engine_name,
            "threads": cores,
            "numpy_poisson_frame_s": baseline_s,
            "render_frame_s": frame_s,
            "frames_per_s": 1.0 / frame_s,
            "frames_per_s_per_core": 1.0 / frame_s / cores,
            "speedup_vs_numpy_poisson": baseline_s / frame_s,
        }
    )
    print(f"\n{benchmark.name}: {benchmark.extra_info}")
    assert renderer.render(0).pixels.shape == renderer.plan.shape


@pytest.mark.benchmark
def test_bench_cpu_fresh_noise_jf4m(benchmark) -> None:
    _bench_renderer(benchmark, Renderer(experiment_preset(PRESET), device="cpu"))


@pytest.mark.benchmark
def test_bench_cpu_fresh_noise_jf4m_all_cores(benchmark) -> None:
    renderer = Renderer(experiment_preset(PRESET), device="cpu")
    _bench_renderer(benchmark, renderer, threads=numba.config.NUMBA_NUM_THREADS)


@pytest.mark.benchmark
def test_bench_cpu_noise_bank_jf4m(benchmark) -> None:
    renderer = Renderer(experiment_preset(PRESET), device="cpu", noise_bank_frames=8)
    _bench_renderer(benchmark, renderer)


@pytest.mark.benchmark
def test_bench_numpy_poisson_baseline_jf4m(benchmark) -> None:
    expected = Renderer(experiment_preset(PRESET), device="cpu").plan.background_photons
    rng = np.random.default_rng(0)
    counts = benchmark.pedantic(lambda: rng.poisson(expected), rounds=5, iterations=1)
    assert counts.shape == expected.shape


@pytest.mark.benchmark
@pytest.mark.gpu
def test_bench_gpu_fresh_noise_jf4m(benchmark) -> None:
    reason = gpu.probe()
    if reason is not None:
        pytest.skip(f"gpu engine unavailable: {reason}")
    _bench_renderer(benchmark, Renderer(experiment_preset(PRESET), device="gpu"))
