"""Benchmark: metadata checks of a 10,000-image run (10 data files of 1000 tiny images)
against nexusformat's ``nxvalidate`` on the same master, in one run.

Run:
  .venv/bin/python -m pytest -m benchmark --benchmark-enable \
      tests/benchmarks/test_bench_conform.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.clean import RunSpec, write_run
from jfconform.engine import CheckOptions, check_file
from jfconform.model import Severity

NXVALIDATE = Path(sys.executable).with_name("nxvalidate")
N_IMAGES, PER_FILE = 10_000, 1_000


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = RunSpec(
        layout="vds",
        prefix="big",
        n_images=N_IMAGES,
        images_per_file=PER_FILE,
        shape=(16, 16),
        with_reflections=False,
    )
    return write_run(tmp_path_factory.mktemp("bench"), spec)


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run with every 10th image missed: chunk allocation is enumerated."""
    spec = RunSpec(
        layout="vds",
        prefix="sparse",
        n_images=N_IMAGES,
        images_per_file=PER_FILE,
        shape=(16, 16),
        with_reflections=False,
        missing_frames=tuple(range(0, N_IMAGES, 10)),
    )
    return write_run(tmp_path_factory.mktemp("bench_sparse"), spec)


def _check(master: Path) -> int:
    report = check_file(master, CheckOptions(sample=2))
    return sum(f.severity >= Severity.WARNING for f in report.findings)


def _nxvalidate(master: Path) -> int:
    result = subprocess.run(
        [str(NXVALIDATE), "-a", "NXmx", str(master)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    match = re.search(
        r"Total number of errors:\s*(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    )
    assert match is not None
    return int(match.group(1))


@pytest.mark.benchmark
def test_bench_jfconform_check_10k(benchmark, big_run: Path) -> None:
    benchmark.group = "conform-10k-images"
    assert benchmark.pedantic(_check, args=(big_run,), rounds=3, iterations=1) == 0


@pytest.mark.benchmark
def test_bench_jfconform_check_10k_missed_images(benchmark, sparse_run: Path) -> None:
    """1000 of 10,000 images never written: still no warning, H5-012 notes only."""
    benchmark.group = "conform-10k-images"
    assert benchmark.pedantic(_check, args=(sparse_run,), rounds=3, iterations=1) == 0


@pytest.mark.benchmark
def test_bench_nxvalidate_10k_baseline(benchmark, big_run: Path) -> None:
    if not NXVALIDATE.exists():
        pytest.skip("nxvalidate (nexusformat) is not installed")
    benchmark.group = "conform-10k-images"
    assert benchmark.pedantic(_nxvalidate, args=(big_run,), rounds=3, iterations=1) == 0
    start = time.perf_counter()
    _check(big_run)
    check_s = time.perf_counter() - start
    benchmark.extra_info["jfconform_check_s"] = check_s
    benchmark.extra_info["nxvalidate_over_jfconform"] = benchmark.stats.stats.mean / check_s


@pytest.mark.benchmark
def test_bench_jfconform_cli_10k(benchmark, big_run: Path) -> None:
    """Like with like: the console script, interpreter start included, as nxvalidate is."""
    script = Path(sys.executable).with_name("jfconform")
    if not script.exists():
        pytest.skip("console script not installed")
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}
    benchmark.group = "conform-10k-images"

    def run() -> int:
        return subprocess.run(
            [str(script), "check", str(big_run)],
            capture_output=True,
            env=env,
            timeout=600,
            check=False,
        ).returncode

    assert benchmark.pedantic(run, rounds=3, iterations=1) == 0
