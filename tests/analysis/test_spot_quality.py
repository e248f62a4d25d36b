"""Spot finding on the bundled lysozyme experiments, scored by jfconform against the truth.

Done when (issue "jfsim process 1 of 2"): recall ≥ 0.95 of the true spots with an expected
I/σ(I) ≥ 5 within 1 px, and precision ≥ 0.95, with the README's settings. The default run
scores the first images of each recording; ``-m acceptance`` scores 100 of each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.analysis.conftest import run_cli, truth_of
from tests.analysis.runs import preset_run

ROOT = Path(__file__).resolve().parents[2]
#: The README's command line (docs/examples/weak_spots.json: min_pix_per_spot 4).
PROCESS_OPTIONS = (
    "--spot-sigma",
    "2.5",
    "--spot-threshold",
    "3",
    "--settings",
    ROOT / "docs" / "examples" / "weak_spots.json",
)
SCORE_OPTIONS = (
    "--spot-radius-px",
    "1",
    "--min-true-snr",
    "5",
    "--min-true-photons",
    "0",
    "--min-spot-recall",
    "0.95",
    "--min-spot-precision",
    "0.95",
)
PRESETS = ("lysozyme-stills-jf4m", "lysozyme-rotation-jf4m")


def _scores(preset: str, n_images: int, folder: Path) -> dict:
    master = preset_run(preset, folder, n_images)
    prefix = folder / "processed"
    result = run_cli("jfsim", "process", master, "-o", prefix, "-N", "2", *PROCESS_OPTIONS)
    assert result.returncode == 0, result.stderr
    check = run_cli(
        "jfconform",
        "check",
        f"{prefix}_process.h5",
        "--truth",
        truth_of(master),
        *SCORE_OPTIONS,
        "--fail-on",
        "warning",
        "--ignore",
        "NXR-005",  # seed 001's pixel positions in the reflection tables (documented)
        "--json",
    )
    report = json.loads(check.stdout)
    assert check.returncode == 0, [f["message"] for f in report["findings"]][:5]
    return report["truth"]["scores"]


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_recall_and_precision_on_the_first_images(preset: str, tmp_path: Path) -> None:
    scores = _scores(preset, 6, tmp_path)
    assert scores["spot_recall"]["value"] >= 0.95
    assert scores["spot_precision"]["value"] >= 0.95
    assert scores["spot_recall"]["n"] > 600


@pytest.mark.acceptance
@pytest.mark.parametrize("preset", PRESETS)
def test_recall_and_precision_on_100_images(preset: str, tmp_path: Path) -> None:
    scores = _scores(preset, 100, tmp_path)
    assert scores["spot_recall"]["value"] >= 0.95
    assert scores["spot_precision"]["value"] >= 0.95
