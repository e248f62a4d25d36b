"""The run-level reflection step of ``jfsim process``: per-image NXreflections in
``_process.h5``, scaling and merging (``-M``) into ``/entry/jfsim_scale_merge`` and
``PREFIX.mtz``, the statistics table, and what happens when nothing can be merged.

The per-image lattices come from the truth file here (an analyser that integrates with the
true UB matrices, as indexing would find them), so that this step is tested on its own;
the chain with real indexing is the acceptance run (``-m acceptance``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import gemmi
import h5py
import hdf5plugin  # noqa: F401 - registers the bitshuffle filter for reading
import numpy as np
import pytest

from jfsim.analysis.nx_reflections import MERGE_GROUP, REFLECTION_UNITS
from jfsim.analysis.process import ProcessSummary
from jfsim.experiment import StillsScan
from tests.analysis.conftest import run_cli, truth_of
from tests.analysis.runs import tiny_experiment, write_run
from tests.analysis.truth_lattices import process_with_truth_lattices

IMAGES = 24
MERGE_OPTIONS = ("-S", "19", "--integration-radius", "2,3,5")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12° rotation sweep on the tiny detector."""
    folder = tmp_path_factory.mktemp("merge_sweep")
    return write_run(tiny_experiment(n_images=IMAGES, rotation=True), folder)


@pytest.fixture(scope="module")
def blank_stills(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three stills without a crystal on them: nothing to index, nothing to merge."""
    experiment = tiny_experiment(n_images=3)
    experiment = replace(experiment, scan=StillsScan(hit_rate=0.0, lattices_per_hit=1))
    return write_run(experiment, tmp_path_factory.mktemp("blank_stills"))


@pytest.fixture(scope="module")
def merged_run(sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> ProcessSummary:
    with pytest.MonkeyPatch.context() as monkeypatch:
        prefix = tmp_path_factory.mktemp("merged") / "lyso"
        return process_with_truth_lattices(
            monkeypatch, sweep, prefix, "-X", "none", *MERGE_OPTIONS, "-M", "-P", "rot"
        )


def test_the_summary_reports_the_merge(merged_run: ProcessSummary) -> None:
    assert not merged_run.failed and merged_run.merge is not None
    report = merged_run.as_dict()
    assert report["images_integrated"] == IMAGES
    assert report["reflections_integrated"] > 500
    assert report["space_group"] == "P 21 21 21"
    assert report["unit_cell"] == pytest.approx([40, 45, 50, 90, 90, 90], abs=1e-3)
    statistics = report["merge_statistics"]
    assert statistics["overall"]["completeness"] > 0.1
    assert statistics["overall"]["cc_half"] > 0.8
    assert len(statistics["shells"]) >= 2
    json.dumps(report)  # --json prints it


def test_reflections_are_nxreflections_per_image(merged_run: ProcessSummary) -> None:
    with h5py.File(merged_run.output_path, "r") as h5:
        groups = h5["entry/reflections"]
        assert sorted(groups) == [f"image_{n + 1:06d}" for n in range(IMAGES)]
        first = groups["image_000001"]
        assert first.attrs["NX_class"] == "NXreflections"
        assert set(first) == set(REFLECTION_UNITS)
        for name, units in REFLECTION_UNITS.items():
            assert first[name].attrs.get("units") == units, name
        assert (first["observed_frame"][()] == 0).all(), "image_000001 holds frame 0"
        corrected = first["image_scale_corr"][()] * first["int_sum"][()]
        assert np.isfinite(corrected).all()
        counts = h5["entry/MX/integratedReflections"][()]
        assert counts.sum() == merged_run.reflections_integrated
        scales = h5["entry/MX/imageScaleFactor"][()]
        assert np.all((scales > 0.5) & (scales < 2.0)), "tiny sweep: scales near 1"


def test_the_scale_merge_process_holds_statistics_and_merged_reflections(
    merged_run: ProcessSummary,
) -> None:
    assert merged_run.merge is not None
    with h5py.File(merged_run.output_path, "r") as h5:
        process = h5[MERGE_GROUP]
        assert process.attrs["NX_class"] == "NXprocess"
        assert process["sequence_index"][()] == 2
        configuration = json.loads(process["configuration/data"][()])
        assert configuration["scaling"]["partiality_model"] == "rot"
        assert configuration["space_group_number"] == 19
        results = process["results"]
        assert results["space_group_number"][()] == 19
        assert results["merged_file"][()].decode() == "lyso.mtz"
        shells = results["shells"]
        assert len(shells["completeness"]) == len(merged_run.merge.statistics.shells)
        assert shells["d_min_A"].attrs["units"] == "angstrom"
        assert results["overall/cc_half"][()] == pytest.approx(
            merged_run.merge.statistics.overall.cc_half
        )
        assert len(results["merged/h"]) == len(merged_run.merge.merged)


def test_the_mtz_beside_the_process_file(merged_run: ProcessSummary) -> None:
    assert merged_run.merged_file is not None
    assert merged_run.merged_file == merged_run.output_path.with_name("lyso.mtz")
    mtz = gemmi.read_mtz_file(str(merged_run.merged_file))
    assert mtz.spacegroup.hm == "P 21 21 21"
    assert mtz.cell.parameters == pytest.approx((40, 45, 50, 90, 90, 90), abs=1e-3)
    assert [c.type for c in mtz.columns] == ["H", "H", "H", "J", "Q", "I"]


def test_the_process_file_conforms_apart_from_documented_departures(
    merged_run: ProcessSummary,
) -> None:
    """NXR-005 is seed 001's departure (pixel positions in predicted_x/_y, observed_x/_y);
    NXR-006 names its extension columns (delta_phi, zeta, image_scale_corr)."""
    output = merged_run.output_path
    check = run_cli("jfconform", "check", output, "--fail-on", "warning", "--ignore", "NXR-005")
    assert check.returncode == 0, check.stdout[-3000:]
    full = json.loads(run_cli("jfconform", "check", output, "--json").stdout)
    flagged = {(finding["rule"], finding["severity"]) for finding in full["findings"]}
    assert ("NXR-005", "warning") in flagged and ("NXR-006", "info") in flagged
    assert not {rule for rule, severity in flagged if severity == "error"}


def test_nothing_indexed_writes_the_file_and_exits_1(blank_stills: Path, tmp_path: Path) -> None:
    result = run_cli(
        "jfsim", "process", blank_stills, "-o", tmp_path / "blank", *MERGE_OPTIONS, "-M", "--json"
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert "nothing to merge" in report["merge_error"]
    assert (tmp_path / "blank_process.h5").exists()
    assert not (tmp_path / "blank.mtz").exists()


def test_reflection_options_refuse_bad_values_in_one_line(
    tiny_stills: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jfsim.cli import main

    def refused(*args: str) -> str:
        status = main(["process", str(tiny_stills), "-o", str(tmp_path / "x"), *args])
        lines = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(lines) == 1, lines
        return lines[0]

    assert "--integration-radius" in refused("--integration-radius", "3,2")
    assert "--integration-radius" in refused("--integration-radius", "three")
    assert "--min-partiality" in refused("-M", "--min-partiality", "1.5")
    assert "-S" in refused("-S", "231")
    assert "-P rot" in refused("-M", "-P", "rot")  # stills have no rotation axis
    (tmp_path / "x.mtz").write_bytes(b"")
    assert "x.mtz" in refused("-M")
    assert not list(tmp_path.glob("x_process.h5*")), "nothing written"


def test_jfconform_scores_integrated_and_merged_intensities_against_the_truth(
    merged_run: ProcessSummary, sweep: Path
) -> None:
    output = merged_run.output_path
    scored = run_cli("jfconform", "check", output, "--truth", truth_of(sweep), "--json")
    scores = json.loads(scored.stdout)["truth"]["scores"]
    assert scores["intensity_cc"]["value"] >= 0.95 and scores["intensity_cc"]["n"] > 200
    merged = scores["merged_intensity_cc"]
    assert merged["value"] >= 0.95 and merged["passed"] is True
    assert merged["n"] == len(merged_run.merge.merged) if merged_run.merge else False
    text = run_cli("jfconform", "check", output, "--truth", truth_of(sweep)).stdout
    assert "merged_intensity_cc" in text and "intensity_cc" in text


def test_the_statistics_table_has_a_row_per_shell_and_the_overall_row(
    merged_run: ProcessSummary,
) -> None:
    from jfsim.cli._statistics import statistics_table

    assert merged_run.merge is not None
    statistics = merged_run.merge.statistics
    lines = statistics_table(statistics).splitlines()
    assert lines[1].split() == [
        "d_max", "d_min", "obs", "unique", "possible", "compl", "mult", "I/sig", "CC1/2", "Rmeas"
    ]  # fmt: skip
    assert len(lines) == 2 + len(statistics.shells) + 2
    overall = lines[-1].split()
    assert int(overall[2]) == statistics.overall.observations
    assert overall[5] == f"{100 * statistics.overall.completeness:.1f}%"
    assert overall[8] == f"{statistics.overall.cc_half:.3f}"


def test_the_whole_chain_indexes_integrates_and_merges(sweep: Path, tmp_path: Path) -> None:
    """``jfsim process -R -S 19 -M -P rot`` as a subprocess: two-pass rotation indexing,
    integration, merging, the table, the MTZ; jfconform scores it against the truth."""
    prefix = tmp_path / "chain"
    result = run_cli(
        "jfsim", "process", sweep, "-o", prefix, "-R", *MERGE_OPTIONS, "-M", "-P", "rot"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CC1/2" in result.stdout and "compl" in result.stdout
    mtz = gemmi.read_mtz_file(str(tmp_path / "chain.mtz"))
    assert mtz.spacegroup.number == 19
    assert mtz.cell.parameters == pytest.approx((40, 45, 50, 90, 90, 90), rel=0.01)
    output = tmp_path / "chain_process.h5"
    scored = run_cli("jfconform", "check", output, "--truth", truth_of(sweep), "--json")
    scores = json.loads(scored.stdout)["truth"]["scores"]
    assert scores["indexing_rate"]["value"] >= 0.9
    assert scores["intensity_cc"]["value"] >= 0.95
    assert scores["merged_intensity_cc"]["value"] >= 0.95
    check = run_cli("jfconform", "check", output, "--fail-on", "warning", "--ignore", "NXR-005")
    assert check.returncode == 0, check.stdout[-3000:]
