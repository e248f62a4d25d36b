"""Merging quality on the bundled rotation experiments (``-m acceptance``, minutes each).

Done when (issue "jfsim process 2 of 2"): on the first 360 images of
``lysozyme-rotation-jf4m`` and of ``insulin-rotation-eiger2-4m``, ``-M`` gives
CC(merged I, true full I) ≥ 0.95 as ``jfconform check --truth`` scores it, the statistics
table shows completeness and CC1/2, and the MTZ opens with gemmi with the right cell,
space group and column types. Two chains:

* the reflection steps alone, each image integrated with its true lattices;
* the whole chain, ``jfsim process -R -S N -M -P rot`` indexing the images itself (two-pass
  rotation indexing; skipped, with the reason, while ``jfsim process`` has no indexing).

The default suite runs the same steps on a tiny sweep (test_process_merge.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import gemmi
import pytest

from jfsim.analysis.process import ProcessSummary
from jfsim.cli._statistics import statistics_table
from tests.analysis.conftest import run_cli, truth_of
from tests.analysis.runs import preset_run
from tests.analysis.truth_lattices import process_with_truth_lattices

IMAGES = 360
#: Preset → (space group number, true cell).
PRESETS = {
    "lysozyme-rotation-jf4m": (96, (79.1, 79.1, 37.9, 90.0, 90.0, 90.0)),
    "insulin-rotation-eiger2-4m": (199, (78.0, 78.0, 78.0, 90.0, 90.0, 90.0)),
}
MIN_MERGED_CC = 0.95


@pytest.fixture(scope="module", params=list(PRESETS))
def recording(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    name: str = request.param
    return preset_run(name, tmp_path_factory.mktemp(name), IMAGES)


def _preset(master: Path) -> str:
    return master.parent.name


def _judge(output: Path, master: Path) -> dict:
    scored = run_cli("jfconform", "check", output, "--truth", truth_of(master), "--json")
    scores: dict = json.loads(scored.stdout)["truth"]["scores"]
    print(json.dumps({k: scores[k] for k in ("intensity_cc", "merged_intensity_cc")}))
    return scores


def _check_mtz(path: Path, space_group: int, cell: tuple[float, ...]) -> None:
    mtz = gemmi.read_mtz_file(str(path))
    assert mtz.spacegroup.number == space_group
    assert mtz.cell.parameters == pytest.approx(cell, rel=0.01)
    assert [c.type for c in mtz.columns] == ["H", "H", "H", "J", "Q", "I"]


@pytest.mark.acceptance
def test_merging_with_true_lattices(
    recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space_group, cell = PRESETS[_preset(recording)]
    summary: ProcessSummary = process_with_truth_lattices(
        monkeypatch, recording, tmp_path / "run", "-X", "none", "-S", str(space_group), "-M",
        "-P", "rot",
    )  # fmt: skip
    assert summary.merge is not None and not summary.failed
    table = statistics_table(summary.merge.statistics)
    print(table)
    assert "compl" in table and "CC1/2" in table
    assert summary.merge.statistics.overall.completeness > 0.5
    scores = _judge(summary.output_path, recording)
    assert scores["intensity_cc"]["value"] >= MIN_MERGED_CC
    assert scores["merged_intensity_cc"]["value"] >= MIN_MERGED_CC
    assert summary.merged_file is not None
    _check_mtz(summary.merged_file, space_group, cell)


@pytest.mark.acceptance
def test_index_integrate_and_merge(recording: Path, tmp_path: Path) -> None:
    help_text = run_cli("jfsim", "process", "--help").stdout
    if "--indexing-algorithm" not in help_text and "\n  -X" not in help_text:
        pytest.skip("jfsim process has no indexing (-X) in this build: nothing to merge")
    space_group, cell = PRESETS[_preset(recording)]
    prefix = tmp_path / "run"
    result = run_cli(
        "jfsim", "process", recording, "-o", prefix, "-N", "2", "-R", "-S", space_group, "-M", "-P",
        "rot",
    )  # fmt: skip
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "compl" in result.stdout and "CC1/2" in result.stdout
    scores = _judge(Path(f"{prefix}_process.h5"), recording)
    assert scores["merged_intensity_cc"]["value"] >= MIN_MERGED_CC
    _check_mtz(Path(f"{prefix}.mtz"), space_group, cell)
