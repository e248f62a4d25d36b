"""Runs written once per session by jfsim's simulator and writer, and the CLI runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.analysis.runs import tiny_experiment, write_run

BIN = Path(sys.executable).parent


def run_cli(*args: object, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    """A jfsim / jfconform command line in a subprocess (a generous timeout, no timing)."""
    return subprocess.run(
        [str(BIN / str(args[0])), *(str(a) for a in args[1:])],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.fixture(scope="session")
def tiny_stills(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three stills on the tiny detector, VDS layout; the truth is ``../../sim_truth.h5``."""
    return write_run(tiny_experiment(n_images=3), tmp_path_factory.mktemp("tiny_stills"))


@pytest.fixture(scope="session")
def tiny_rotation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Five rotation images on the tiny detector in each layout (same seed, same pixels)."""
    masters = {}
    for layout in ("legacy", "vds", "integrated"):
        folder = tmp_path_factory.mktemp(f"tiny_rotation_{layout}")
        experiment = tiny_experiment(n_images=5, file_format=layout, rotation=True)
        masters[layout] = write_run(experiment, folder)
    return masters


def truth_of(master: Path) -> Path:
    """The truth file written beside a run by :func:`write_run`."""
    return master.parent.parent.parent / "sim_truth.h5"
