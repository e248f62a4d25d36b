"""Indexing throughput (``jfsim process -X ffbidx``), as ratios to baselines measured in the
same run.

Run: .venv/bin/python -m pytest -m benchmark --benchmark-enable -s
         tests/benchmarks/test_bench_indexing.py

* candidate scoring, one core: the CPU engine's numba kernel against a plain numpy
  implementation of the same score (one matrix product, then the weights), on the known-cell
  search's real sizes (the 80 lowest-resolution spots × 8192 directions): goal ≥ 10×;
* known-cell indexing of stills per core: the whole per-image indexer (search, setting,
  refinement, assignment) on the hits of ``lysozyme-stills-jf4m``, with the CPU engine and
  with the numpy scoring in its place; the same for the known-cell search alone (what
  ``indexingTime`` times: steps 1–3 of :mod:`jfsim.analysis.indexing.known_cell`), and
  where a still's time goes (ms: scoring, candidate refinement, triple search, the rest);
* ``jfsim process -N 2 -X ffbidx -C`` (indexing and integration) over
  ``JFSIM_BENCH_PROCESS_IMAGES`` (default 1000) images against ``-X none`` (spot finding and
  the per-image pixel analyses alone): goal: indexing + integration cost at most as much
  again (ratio ≤ 2);
* where the CPU time of indexing and integration goes, per indexed still of the benchmark's
  frames (one thread): the indexer, prediction, the summation sums, the intensities, the
  whole integration and the NXreflections group written at the end of the run, against
  the spot-finding analysis of the same frames (``-k process``);
* the GPU engine's scoring against the CPU engine's (``gpu``: needs a CUDA device).

CPU figures are CPU seconds of the calling thread (``time.thread_time``), so that waiting
for a core on a shared machine does not count; numpy's matrix product may use a second
BLAS thread, which only flatters the numpy baseline.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import pytest

from jfsim.analysis.analyse import ImageAnalyser
from jfsim.analysis.frames import FrameReader
from jfsim.analysis.indexing.engines import ScoringEngine, cpu
from jfsim.analysis.indexing.engines import gpu as gpu_scoring
from jfsim.analysis.indexing.indexer import ImageIndexer, refine
from jfsim.analysis.indexing.known_cell import (
    KnownCellOptions,
    best_triple,
    candidate_pools,
)
from jfsim.analysis.indexing.lattice import Lattice
from jfsim.analysis.indexing.solution import assign, image_numbers
from jfsim.analysis.indexing.vectors import hemisphere_directions
from jfsim.analysis.nxmx_run import open_run
from jfsim.analysis.plan import AnalysisPlan, analysis_plan
from jfsim.analysis.process import process_run
from jfsim.analysis.settings import ImageSelection, ProcessSettings
from jfsim.analysis.spot_finding import Spots
from tests.benchmarks.test_bench_analysis import N_FRAMES, _best, _write

PROCESS_IMAGES = int(os.environ.get("JFSIM_BENCH_PROCESS_IMAGES", "1000"))
CELL = "79.1,79.1,37.9,90,90,90"
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class NumpyScoring:
    """The indexing kernels in plain numpy (the baseline): the same sums, vectorised."""

    name: str = "numpy"

    def score_vectors(self, spots: FloatArray, vectors: FloatArray, tolerance: float) -> FloatArray:
        projection = spots @ vectors.T
        distance = np.abs(projection - np.rint(projection))
        q = distance / tolerance
        return np.asarray(np.where(distance < tolerance, 1.0 - q * q, 0.0).sum(axis=0))

    def projection_histograms(
        self, spots: FloatArray, directions: FloatArray, extent_invA: float, n_bins: int
    ) -> npt.NDArray[np.int32]:
        bins = np.floor((spots @ directions.T + extent_invA) * (n_bins / (2 * extent_invA)))
        histogram = np.zeros((directions.shape[0], n_bins), dtype=np.int32)
        rows = np.broadcast_to(np.arange(directions.shape[0]), bins.shape)
        inside = (bins >= 0) & (bins < n_bins)
        np.add.at(histogram, (rows[inside], bins[inside].astype(np.int64)), 1)
        return histogram


@dataclass
class TimedScoring:
    """An engine that adds up the CPU seconds of its ``score_vectors`` calls."""

    inner: ScoringEngine
    seconds: float = field(default=0.0)

    @property
    def name(self) -> str:
        return self.inner.name

    def score_vectors(self, spots: FloatArray, vectors: FloatArray, tolerance: float) -> FloatArray:
        started = time.thread_time()
        scores = self.inner.score_vectors(spots, vectors, tolerance)
        self.seconds += time.thread_time() - started
        return scores

    def projection_histograms(
        self, spots: FloatArray, directions: FloatArray, extent_invA: float, n_bins: int
    ) -> npt.NDArray[np.int32]:
        return self.inner.projection_histograms(spots, directions, extent_invA, n_bins)


def _settings(algorithm: str) -> ProcessSettings:
    settings = ProcessSettings()
    cell = CELL if algorithm == "ffbidx" else None
    return replace(
        settings,
        indexing=settings.indexing.with_overrides(algorithm=algorithm, unit_cell=cell),
        space_group_number=96,
    )


@pytest.fixture(scope="module")
def hits(tmp_path_factory: pytest.TempPathFactory) -> tuple[AnalysisPlan, list[Spots]]:
    """The plan of a known-cell run and the spots of its crystal hits."""
    master = _write(tmp_path_factory.mktemp("bench_indexing"), N_FRAMES)
    plan = analysis_plan(open_run(master), _settings("ffbidx"))
    finder = ImageAnalyser(replace(plan, indexing=None), device="cpu")
    with FrameReader(plan.run) as reader:
        spots = [finder.analyse(i, reader.read(i).pixels).spots for i in range(N_FRAMES)]
    return plan, [found for found in spots if len(found) >= 20]


def _hit_vectors(plan: AnalysisPlan, spots: Spots) -> FloatArray:
    from jfsim.analysis.indexing.reciprocal import scattering_vectors

    return scattering_vectors(plan.run.geometry, spots.x, spots.y)


def _race(
    benchmark,
    fast,
    slow,
    spots: FloatArray,
    vectors: FloatArray,
    names: tuple[str, str],
    clock=time.thread_time,
) -> None:  # type: ignore[no-untyped-def]
    """Time ``fast`` against ``slow`` (two scoring engines) on the same score, after
    checking that they agree; records ``<name>_s`` and the speed-up."""
    np.testing.assert_allclose(
        fast.score_vectors(spots, vectors, 0.3), slow.score_vectors(spots, vectors, 0.3), rtol=1e-9
    )
    slow_s = _best(lambda: slow.score_vectors(spots, vectors, 0.3), 5, clock)
    fast_s = _best(lambda: fast.score_vectors(spots, vectors, 0.3), 20, clock)
    benchmark.pedantic(lambda: fast.score_vectors(spots, vectors, 0.3), rounds=10)
    benchmark.extra_info.update(
        {
            "spots": int(spots.shape[0]),
            "vectors": int(vectors.shape[0]),
            f"{names[0]}_s": fast_s,
            f"{names[1]}_s": slow_s,
            f"speedup_vs_{names[1]}": slow_s / fast_s,
        }
    )
    print(f"\n{benchmark.name}: {benchmark.extra_info}")


@pytest.mark.benchmark
def test_bench_candidate_scoring_vs_numpy(benchmark, hits) -> None:  # type: ignore[no-untyped-def]
    plan, spot_lists = hits
    options = KnownCellOptions()
    r = _hit_vectors(plan, spot_lists[0])
    lowest = r[np.argsort(np.linalg.norm(r, axis=1))[: options.search_spots]]
    vectors = hemisphere_directions(options.directions) * 79.1
    _race(benchmark, cpu.prepare(), NumpyScoring(), lowest, vectors, ("numba", "numpy"))


@pytest.mark.benchmark
def test_bench_known_cell_stills_per_core(benchmark, hits) -> None:  # type: ignore[no-untyped-def]
    plan, spot_lists = hits
    ours = ImageIndexer(plan.indexing, device="cpu")
    with_numpy = ImageIndexer(plan.indexing, device="cpu")
    with_numpy.engine = NumpyScoring()
    for indexer in (ours, with_numpy):
        assert all(indexer.index(spots, 0).indexed for spots in spot_lists)
    times = _still_times(plan, spot_lists, ours) | {
        f"numpy_{key}": value for key, value in _still_times(plan, spot_lists, with_numpy).items()
    }

    def index_all() -> None:
        for spots in spot_lists:
            ours.index(spots, 0)

    benchmark.pedantic(index_all, rounds=3)
    benchmark.extra_info.update(
        {
            "stills": len(spot_lists),
            "spots_per_still": float(np.mean([len(s) for s in spot_lists])),
            "stills_per_s_per_core": 1.0 / times["index_s"],
            "stills_per_s_per_core_numpy_scoring": 1.0 / times["numpy_index_s"],
            "speedup_vs_numpy_scoring": times["numpy_index_s"] / times["index_s"],
            "search_stills_per_s_per_core": 1.0 / times["search_s"],
            "search_speedup_vs_numpy_scoring": times["numpy_search_s"] / times["search_s"],
            "ms_per_still": {
                "scoring": 1e3 * times["scoring_s"],
                "candidate_refinement": 1e3 * times["candidates_s"],
                "triple_search": 1e3 * times["triple_s"],
                "refinement_and_rest": 1e3 * times["after_search_s"],
                "refinement_timed_alone": 1e3 * times["refinement_s"],
                "final_assignment_timed_alone": 1e3 * times["final_assignment_s"],
                "numpy_scoring": 1e3 * times["numpy_scoring_s"],
            },
        }
    )
    print(f"\n{benchmark.name}: {benchmark.extra_info}")


def _still_times(
    plan: AnalysisPlan, spot_lists: list[Spots], indexer: ImageIndexer
) -> dict[str, float]:
    """CPU seconds per still, from the round (of 3 over the stills) whose whole indexer
    was fastest: the whole indexer (``index_s``), the known-cell search (``search_s``)
    and its steps (scoring, candidate refinement: the rest of ``candidate_pools``, the
    triple search), the indexer's time after the search (``after_search_s``: refinement,
    scattering vectors, setting, assignment) and, timed on their own, the refinement of
    the lattice found (``-r``: two rounds of spot positions, assignment and refinement)
    and the final assignment of every spot (scattering vectors at the refined beam centre,
    assignment, profile radius and resolution); each step timed right after the indexer's
    call on the same still."""
    from jfsim.analysis.indexing.reciprocal import scattering_vectors

    indexing = plan.indexing
    assert indexing is not None
    reference, options = indexing.references[0], indexing.known_cell
    best: dict[str, float] = {}
    for _round in range(3):
        engine = TimedScoring(indexer.engine)
        run = dict.fromkeys(
            ("index_s", "pools_s", "triple_s", "refinement_s", "final_assignment_s"), 0.0
        )
        for spots in spot_lists:
            use = np.ones(len(spots), dtype=bool) if indexing.index_ice_rings else ~spots.ice_ring
            started = time.thread_time()
            indexer.index(spots, 0)
            run["index_s"] += time.thread_time() - started
            r = scattering_vectors(indexing.geometry, spots.x[use], spots.y[use])
            started = time.thread_time()
            pools = candidate_pools(r, reference, engine, options)
            pooled = time.thread_time()
            found = best_triple(r, pools, reference, indexing.tolerance, options)
            searched = time.thread_time()
            assert found is not None
            lattice, beam_shift = refine(
                Lattice(found, reference.bravais), spots.x[use], spots.y[use], indexing
            )
            refined = time.thread_time()
            r_all = scattering_vectors(
                indexing.geometry, spots.x, spots.y, beam_shift_pxl=beam_shift
            )
            assignment = assign(lattice, r_all, indexing.tolerance, indexing.geometry.wavelength_A)
            image_numbers(assignment, r_all)
            run["final_assignment_s"] += time.thread_time() - refined
            run["refinement_s"] += refined - searched
            run["triple_s"] += searched - pooled
            run["pools_s"] += pooled - started
        run["scoring_s"] = engine.seconds
        if not best or run["index_s"] < best["index_s"]:
            best = run
    search_s = best["pools_s"] + best["triple_s"]
    times = {
        "index_s": best["index_s"],
        "search_s": search_s,
        "scoring_s": best["scoring_s"],
        "candidates_s": best["pools_s"] - best["scoring_s"],
        "triple_s": best["triple_s"],
        "refinement_s": best["refinement_s"],
        "final_assignment_s": best["final_assignment_s"],
        "after_search_s": best["index_s"] - search_s,
    }
    return {key: value / len(spot_lists) for key, value in times.items()}


@pytest.mark.benchmark
def test_bench_process_with_indexing_vs_spot_finding(benchmark, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """Rounds alternate ``-X none`` and ``-X ffbidx``, so both see the same load; the CPU
    time of the whole process (every thread) is the steadier figure on a shared machine.
    The per-image stage times (ms, mean over the indexed images of the last round) come
    from the run's own ``/entry/profiling``."""
    import h5py  # here, not at the top: the rest of this file is another benchmark's

    from tests.benchmarks.test_bench_analysis import _clocked

    def stage_ms(process_file: os.PathLike[str]) -> dict[str, float]:
        """Mean wall ms per indexed image of each profiled stage, and the share of images
        indexed."""
        with h5py.File(process_file, "r") as h5:
            profiling = h5["/entry/profiling"]
            indexed = np.asarray(h5["/entry/MX/imageIndexed"][()]) != 0
            stages = {
                f"{name}_ms_per_indexed_image": round(
                    1000 * float(np.mean(np.asarray(profiling[name][()])[indexed])), 2
                )
                for name in (
                    "spotFindingTime",
                    "indexingTime",
                    "refinementTime",
                    "integrationTime",
                )
            }
        return {"indexed_fraction": round(float(indexed.mean()), 3), **stages}

    folder = tmp_path_factory.mktemp("bench_process_indexing")
    master = _write(folder, PROCESS_IMAGES)
    threads = 2

    def process(algorithm: str) -> None:
        process_run(
            master,
            folder / algorithm,
            _settings(algorithm),
            threads=threads,
            device="cpu",
            overwrite=True,
        )

    warm = replace(_settings("ffbidx"), images=ImageSelection(0, 3, 1))
    process_run(master, folder / "warm", warm, device="cpu")  # compile outside the timing
    rounds = int(os.environ.get("JFSIM_BENCH_PROCESS_ROUNDS", "3"))
    spot_finding, indexing, load = [], [], []
    for _ in range(rounds):
        load.append(os.getloadavg()[0])
        spot_finding.append(_clocked(lambda: process("none")))
        indexing.append(_clocked(lambda: process("ffbidx")))
    load.append(os.getloadavg()[0])
    benchmark.pedantic(lambda: process("ffbidx"), rounds=1)
    wall_ratios = [i[0] / s[0] for s, i in zip(spot_finding, indexing, strict=True)]
    cpu_ratios = [i[1] / s[1] for s, i in zip(spot_finding, indexing, strict=True)]
    benchmark.extra_info.update(
        {
            "images": PROCESS_IMAGES,
            "threads": threads,
            "spot_finding_only_wall_s": [round(s[0], 2) for s in spot_finding],
            "spot_finding_only_cpu_s": [round(s[1], 2) for s in spot_finding],
            "with_indexing_and_integration_wall_s": [round(i[0], 2) for i in indexing],
            "with_indexing_and_integration_cpu_s": [round(i[1], 2) for i in indexing],
            "cost_vs_spot_finding_wall": (round(min(wall_ratios), 2), round(max(wall_ratios), 2)),
            "cost_vs_spot_finding_cpu": (round(min(cpu_ratios), 2), round(max(cpu_ratios), 2)),
            "load_average_1min": (round(min(load), 1), round(max(load), 1)),
            **stage_ms(folder / "ffbidx_process.h5"),
        }
    )
    print(f"\n{benchmark.name}: {benchmark.extra_info}")


@pytest.mark.benchmark
def test_bench_process_stages_per_indexed_still(benchmark, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """CPU ms (one thread, best of rounds) of each stage that indexing adds, per indexed
    still, and reading, decoding and analysing a frame as the baseline (``-X none``'s work
    per image): the process benchmark's ratio is about 1 + (what indexing and integration
    add per image) / (the baseline), so this says which stage to attack."""
    import h5py  # here, not at the top: the rest of this file is another benchmark's

    from jfsim.analysis import integration
    from jfsim.analysis.bragg_prediction import ImageLattice
    from jfsim.analysis.nx_reflections import write_reflections

    folder = tmp_path_factory.mktemp("bench_process_stages")
    plan = analysis_plan(open_run(_write(folder, N_FRAMES)), _settings("ffbidx"))
    analyser = ImageAnalyser(plan, device="cpu")
    finder = ImageAnalyser(replace(plan, indexing=None), device="cpu")
    with FrameReader(plan.run) as reader:
        frames = [reader.read(i).pixels for i in range(N_FRAMES)]
    results = [analyser.analyse(i, frame) for i, frame in enumerate(frames)]
    stills = [
        (i, frames[i], result.spots, ImageLattice(result.indexing.lattice.reciprocal_invA))
        for i, result in enumerate(results)
        if result.indexing is not None and result.indexing.lattice is not None
    ]
    assert stills, "no benchmark frame indexed"
    steps = plan.integration
    indexer = analyser.indexer
    assert steps is not None and indexer is not None
    predicted = {i: steps.prediction.predict(i, lattice) for i, _f, _s, lattice in stills}
    sums = {
        i: integration.sum_pixels(frame, steps, predicted[i].x_pxl, predicted[i].y_pxl)
        for i, frame, _s, _l in stills
    }
    tables = [
        integration.integrate_image(frame, steps, i, [lattice]) for i, frame, _s, lattice in stills
    ]

    def per_still(step) -> float:  # type: ignore[no-untyped-def]
        return 1e3 * _best(lambda: [step(*still) for still in stills], 10) / len(stills)

    def write_groups() -> None:
        with h5py.File(folder / "reflections.h5", "w", libver=("v110", "latest")) as h5:
            runs = [tables[n % len(tables)].at_image(n) for n in range(100)]
            write_reflections(h5.create_group("entry"), runs, None)

    ms = {
        "indexer": per_still(lambda i, _f, spots, _l: indexer.index(spots, i)),
        "prediction": per_still(lambda i, _f, _s, lattice: steps.prediction.predict(i, lattice)),
        "summation_sums": per_still(
            lambda i, frame, _s, _l: integration.sum_pixels(
                frame, steps, predicted[i].x_pxl, predicted[i].y_pxl
            )
        ),
        "intensities_and_table": per_still(
            lambda i, _f, _s, _l: integration._reflections(predicted[i], sums[i], i, 0)
        ),
        "whole_integration": per_still(
            lambda i, frame, _s, lattice: integration.integrate_image(frame, steps, i, [lattice])
        ),
        "nxreflections_group": 1e3 * _best(write_groups, 3) / 100,
    }
    with FrameReader(plan.run) as reader:

        def spot_finding() -> None:
            for i in range(N_FRAMES):
                finder.analyse(i, reader.read(i).pixels)

        baseline_ms = 1e3 * _best(spot_finding, 5) / N_FRAMES
        benchmark.pedantic(spot_finding, rounds=1)
    hit_fraction = len(stills) / len(frames)
    added_per_image = hit_fraction * (
        ms["indexer"] + ms["whole_integration"] + ms["nxreflections_group"]
    )
    benchmark.extra_info.update(
        {
            "indexed_stills": len(stills),
            "reflections_per_still": float(np.mean([len(p) for p in predicted.values()])),
            "ms_per_indexed_still": {key: round(value, 2) for key, value in ms.items()},
            "read_decode_and_spot_finding_ms_per_image": round(baseline_ms, 2),
            "added_ms_per_image": round(added_per_image, 2),
            "one_thread_ratio_estimate": round(1 + added_per_image / baseline_ms, 2),
            "load_average_1min": round(os.getloadavg()[0], 1),
        }
    )
    print(f"\n{benchmark.name}: {benchmark.extra_info}")


@pytest.mark.benchmark
@pytest.mark.gpu
def test_bench_gpu_scoring(benchmark, hits) -> None:  # type: ignore[no-untyped-def]
    if gpu_scoring.probe() is not None or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("no CUDA device (numba.cuda.is_available() is false)")
    plan, spot_lists = hits
    r = _hit_vectors(plan, spot_lists[0])
    vectors = hemisphere_directions(65536) * 79.1
    gpu, on_cpu = gpu_scoring.prepare(), cpu.prepare()
    _race(benchmark, gpu, on_cpu, r, vectors, ("gpu", "cpu"), time.perf_counter)
