"""Reflection steps on a JUNGFRAU 4M rotation sweep, as ratios to baselines measured in the
same run.

Run: .venv/bin/python -m pytest -m benchmark --benchmark-enable -s
         tests/benchmarks/test_bench_reflections.py

* prediction + summation integration of one ``lysozyme-rotation-jf4m`` image with its true
  lattice, one core, against a plain numpy implementation of the same sums (a Python loop
  over reflections, numpy over each reflection's box); reflections per second are given;
* scaling and merging (``-P rot``, 3 cycles, statistics) of the sweep's observations
  against gemmi's ``Intensities.merge_in_place`` (merging alone, no scaling, no
  statistics) of the same corrected observations.

Ratios are best-of-rounds against best-of-rounds; the README gives ranges over runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import gemmi
import numpy as np
import pytest

from jfsim.analysis.frames import FrameReader
from jfsim.analysis.integration import IntegrationPlan, integrate_image, integration_plan
from jfsim.analysis.merging import merge
from jfsim.analysis.nxmx_run import NxmxRun, open_run
from jfsim.analysis.reflection_settings import IntegrationSettings, ScalingSettings
from jfsim.analysis.scaling import sum_rotation_partials
from tests.analysis.conftest import truth_of
from tests.analysis.runs import preset_run
from tests.analysis.truth_lattices import integrate_with_truth, truth_lattices

PRESET = "lysozyme-rotation-jf4m"
IMAGES = 24
SPACE_GROUP = gemmi.find_spacegroup_by_number(96)
CELL = (79.1, 79.1, 37.9, 90.0, 90.0, 90.0)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return preset_run(PRESET, tmp_path_factory.mktemp("bench_reflections"), IMAGES)


def _best(function: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def numpy_sums(
    pixels: np.ndarray, plan: IntegrationPlan, xs: np.ndarray, ys: np.ndarray
) -> np.ndarray:
    """The same signal and background sums, one reflection at a time with numpy."""
    r1, r2, r3 = plan.radii_pxl
    height, width = pixels.shape
    viable = (plan.sensitive != 0) & (pixels != plan.error_value) & (pixels < plan.saturation_value)
    out = np.zeros((xs.shape[0], 3))
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        rows = slice(max(int(np.floor(y - r3)), 0), min(int(np.ceil(y + r3)) + 1, height))
        cols = slice(max(int(np.floor(x - r3)), 0), min(int(np.ceil(x + r3)) + 1, width))
        yy, xx = np.mgrid[rows, cols]
        distance_sq = (xx - x) ** 2 + (yy - y) ** 2
        box, ok = pixels[rows, cols].astype(np.int64), viable[rows, cols]
        signal = (distance_sq <= r1 * r1) & ok
        background = (distance_sq > r2 * r2) & (distance_sq <= r3 * r3) & ok
        out[i] = box[signal].sum(), box[background].sum(), background.sum()
    return out


def _setup(sweep: Path) -> tuple[NxmxRun, IntegrationPlan]:
    run = open_run(sweep)
    return run, integration_plan(
        run, IntegrationSettings(mosaicity_deg=0.05), space_group=SPACE_GROUP
    )


@pytest.mark.benchmark
def test_bench_integration_jf4m(benchmark, sweep: Path) -> None:
    run, plan = _setup(sweep)
    image = IMAGES // 2
    with FrameReader(run) as reader:
        pixels = reader.read(image).pixels.copy()
    lattices = truth_lattices(run, truth_of(sweep), image)
    integrate_image(pixels, plan, image, lattices)  # compiles
    predicted = plan.prediction.predict(image, lattices[0])
    numpy_s = _best(lambda: numpy_sums(pixels, plan, predicted.x_pxl, predicted.y_pxl), 3)
    ours_s = _best(lambda: integrate_image(pixels, plan, image, lattices), 10)
    predict_s = _best(lambda: plan.prediction.predict(image, lattices[0]), 10)
    benchmark.pedantic(lambda: integrate_image(pixels, plan, image, lattices), rounds=5)
    integrated = len(integrate_image(pixels, plan, image, lattices))
    benchmark.extra_info.update(
        {
            "reflections_predicted": len(predicted),
            "reflections_integrated": integrated,
            "prediction_s": predict_s,
            "prediction_and_integration_s": ours_s,
            "numpy_sums_s": numpy_s,
            "speedup_vs_numpy_sums": numpy_s / ours_s,
            "reflections_per_s": len(predicted) / ours_s,
        }
    )
    print(f"\n{benchmark.name}: {benchmark.extra_info}")
    assert integrated > 100


@pytest.mark.benchmark
def test_bench_merging_vs_gemmi(benchmark, sweep: Path) -> None:
    run, plan = _setup(sweep)
    reflections = integrate_with_truth(run, plan, truth_of(sweep), range(IMAGES))
    settings = ScalingSettings(merge=True, partiality_model="rot")
    summed = sum_rotation_partials(reflections)
    correction = summed.partiality * summed.lp
    usable = np.isfinite(summed.intensity_photons) & (summed.sigma_photons > 0) & (correction > 0)
    hkl = summed.hkl[usable].astype(np.int32)
    values = (summed.intensity_photons / correction)[usable]
    sigmas = (summed.sigma_photons / correction)[usable]

    def gemmi_merge() -> int:
        intensities = gemmi.Intensities()
        intensities.set_data(gemmi.UnitCell(*CELL), SPACE_GROUP, hkl, values, sigmas)
        intensities.type = gemmi.DataType.Unmerged
        intensities.prepare_for_merging(gemmi.DataType.Mean)
        intensities.merge_in_place(gemmi.DataType.Mean)
        return len(intensities.value_array)

    gemmi_s = _best(gemmi_merge, 5)
    ours_s = _best(lambda: merge(reflections, CELL, SPACE_GROUP, settings), 5)
    benchmark.pedantic(lambda: merge(reflections, CELL, SPACE_GROUP, settings), rounds=3)
    result = merge(reflections, CELL, SPACE_GROUP, settings)
    benchmark.extra_info.update(
        {
            "observations": len(reflections),
            "unique": len(result.merged),
            "merge_s": ours_s,
            "gemmi_merge_only_s": gemmi_s,
            "time_vs_gemmi_merge_only": ours_s / gemmi_s,
            "observations_per_s": len(reflections) / ours_s,
        }
    )
    print(f"\n{benchmark.name}: {benchmark.extra_info}")
    assert len(result.merged) > 1000
