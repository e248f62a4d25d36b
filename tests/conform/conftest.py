"""Fixtures of the conformance tests: generated runs and a runner for the real console script."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.clean import LAYOUTS, RunSpec, write_run

JFCONFORM = Path(sys.executable).with_name("jfconform")


@pytest.fixture(scope="session")
def clean_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One clean run per layout (legacy, vds, integrated): layout → master path."""
    root = tmp_path_factory.mktemp("clean")
    return {layout: write_run(root / layout, RunSpec(layout=layout)) for layout in LAYOUTS}


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed ``jfconform`` console script as a real subprocess."""
    assert JFCONFORM.exists(), (
        f"console script {JFCONFORM} is missing: run the README's setup command"
    )

    def run(*args: str | Path, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(JFCONFORM), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    return run
