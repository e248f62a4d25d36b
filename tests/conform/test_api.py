"""The library API: jfconform.check() and jfconform.judge_stream() do what the commands do,
and the commands are thin layers over them (same report, same exit code); the README's
example runs as written."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

import jfconform
from fixtures.broken import write_broken
from fixtures.clean import RunSpec, write_run
from fixtures.stream_broken import STREAM_BROKEN, write_stream_case
from fixtures.truth import write_truth_run
from jfconform.model import Severity

README = Path(__file__).resolve().parents[2] / "README.md"


def test_check_returns_the_findings_and_the_exit_code(clean_runs, tmp_path: Path) -> None:
    clean = jfconform.check(clean_runs["integrated"])
    assert clean.exit_code == 0
    assert [f.opened for f in clean.files] == [True]
    assert {f.severity for f in clean.findings} == {Severity.INFO}
    broken = jfconform.check([write_broken(tmp_path, "NXMX-021")], fail_on="W")
    assert broken.exit_code == 1
    assert {f.rule for f in broken.findings if f.severity >= Severity.WARNING} == {"NXMX-021"}


def test_select_ignore_and_profile_follow_the_command(clean_runs) -> None:
    vds = clean_runs["vds"]
    only_rd = jfconform.check(vds, select="RD-NEGGIA,RD-CFL")
    assert {f.rule for f in only_rd.findings} == {"RD-NEGGIA-003", "RD-NEGGIA-004", "RD-CFL-003"}
    assert "RD-NEGGIA-003" not in {f.rule for f in jfconform.check(vds, ignore=["RD"]).findings}
    raised = jfconform.check(vds, select=["RD-NEGGIA-003"], profile="neggia")
    assert [f.severity for f in raised.findings] == [Severity.ERROR] and raised.exit_code == 1


def test_fail_on_missing_makes_never_written_frames_errors(tmp_path: Path) -> None:
    master = write_run(tmp_path, RunSpec(layout="vds", n_images=6, missing_frames=(4, 5)))
    assert jfconform.check(master).exit_code == 0
    strict = jfconform.check(master, fail_on_missing=True)
    assert {f.rule for f in strict.findings if f.severity == Severity.ERROR} == {"H5-012"}
    assert strict.exit_code == 1


@pytest.mark.parametrize(
    ("arguments", "parameter", "text"),
    [
        ({"paths": "absent_master.h5"}, "paths", "no such file"),
        ({"select": "NOPE"}, "select", "no rule ID starts with 'NOPE'"),
        ({"ignore": ["NXMX", "zz"]}, "ignore", "'zz'"),
        ({"profile": "xds"}, "profile", "unknown profile 'xds'"),
        ({"thresholds": {"min_spot_recall": 2.0}}, "min_spot_recall", "[0, 1]"),
        ({"thresholds": {"recall": 0.5}}, "recall", "unknown threshold"),
        ({"sample": -1}, "sample", ">= 0"),
        ({"max_read_mb": 0}, "max_read_mb", "> 0"),
        ({"fail_on": "fatal"}, "fail_on", "unknown severity"),
        ({"truth": "absent_truth.h5"}, "truth", "no such file"),
        ({"truth": __file__}, "truth", "not an HDF5 file"),
    ],
)
def test_bad_requests_raise_a_usage_error_naming_the_argument(
    clean_runs, arguments: dict, parameter: str, text: str
) -> None:
    paths = arguments.pop("paths", clean_runs["integrated"])
    with pytest.raises(jfconform.UsageError) as raised:
        jfconform.check(paths, **arguments)
    assert raised.value.parameter == parameter
    assert text in str(raised.value)


def test_truth_scores_one_file_and_its_findings_follow_select(tmp_path: Path) -> None:
    master, truth = write_truth_run(tmp_path, perturbed=True)
    with pytest.raises(jfconform.UsageError, match="exactly one file"):
        jfconform.check([master, master], truth=truth)
    report = jfconform.check(master, truth=truth, thresholds={"min_spot_recall": 0.0})
    assert report.truth is not None and report.truth["passed"] is False
    assert report.truth["thresholds"]["min_spot_recall"] == 0.0
    truth_rules = {f.rule for f in report.findings if f.rule.startswith("TRUTH")}
    assert "TRUTH-003" not in truth_rules and "TRUTH-007" in truth_rules
    ignored = jfconform.check(master, truth=truth, ignore="TRUTH")
    assert not {f.rule for f in ignored.findings if f.rule.startswith("TRUTH")}


def test_the_command_prints_what_the_library_returns(run_cli, tmp_path: Path) -> None:
    """A thin command: its JSON report and exit code are the library's, byte for byte."""
    master, truth = write_truth_run(tmp_path, perturbed=True)
    command = run_cli("check", master, "--truth", truth, "--select", "NX,TRUTH", "--json")
    report = jfconform.check(master, truth=truth, select="NX,TRUTH")
    assert command.stdout == jfconform.render(report, "json")
    assert command.returncode == report.exit_code == 1


def test_judge_stream_is_what_the_stream_command_prints(run_cli, tmp_path: Path) -> None:
    (recording,) = write_stream_case(tmp_path, "STR-018", STREAM_BROKEN["STR-018"]())
    report = jfconform.judge_stream(recording, ignore="STR-025")
    assert report.stream is not None and report.stream["messages"] > 0
    assert {f.rule for f in report.findings if f.severity >= Severity.WARNING} == {"STR-018"}
    command = run_cli("stream", recording, "--ignore", "STR-025", "--json")
    assert (
        json.loads(command.stdout)["findings"]
        == json.loads(jfconform.render(report, "json"))["findings"]
    )
    assert command.returncode == report.exit_code == 1
    with pytest.raises(jfconform.UsageError, match="not both") as raised:
        jfconform.judge_stream(["tcp://127.0.0.1:5999", recording])
    assert raised.value.parameter == "inputs"
    with pytest.raises(jfconform.UsageError, match="stream rule"):
        jfconform.judge_stream(recording, select="NXMX")


def test_list_rules_is_what_the_rules_command_lists(run_cli) -> None:
    listed = json.loads(run_cli("rules", "--json", "--select", "CXI").stdout)
    assert [r["rule"] for r in listed] == [r.id for r in jfconform.list_rules("CXI")]


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- api-example:[^>]*-->\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, "README.md lost its jfconform.check() example"
    return found.group(1)


def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The example in the README, as written, on a run and its truth file."""
    master, truth = write_truth_run(tmp_path / "run")
    example = _readme_example()
    example = example.replace("run_master.h5", str(master)).replace("run_truth.h5", str(truth))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        exec(compile(example, str(README), "exec"), {"__name__": "__main__"})
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert "spot_recall" in out
    assert (tmp_path / "report.xml").read_text().startswith("<?xml")
    assert os.environ.get("JFCONFORM_STRICT") == "1"  # the example ran strict, as tests do


def test_text_report_lists_a_rule_ten_times_per_file_then_counts(run_cli, tmp_path: Path) -> None:
    """A rule that fires on each of 3600 reflection tables must not bury the rest of the
    text report; ``--all-findings`` (and JSON) still list every finding."""
    import h5py

    path = tmp_path / "many_tables.h5"
    with h5py.File(path, "w") as handle:
        for image in range(1, 13):
            table = handle.create_group(f"entry/reflections/image_{image:06d}")
            table.attrs["NX_class"] = "NXreflections"
            for name in ("predicted_x", "predicted_y", "observed_x", "observed_y"):
                table.create_dataset(name, data=[1.0, 2.0]).attrs["units"] = "pixel"
    short = run_cli("check", path, "--select", "NXR-005")
    assert short.stdout.count(": NXR-005 [") == 10
    assert f"{path}: 38 more NXR-005 findings not listed (--all-findings" in short.stdout
    assert re.search(r"NXR-005 +reflections-pixel-lengths +W +48", short.stdout)
    full = run_cli("check", path, "--select", "NXR-005", "--all-findings")
    assert full.stdout.count(": NXR-005 [") == 48 and "more NXR-005" not in full.stdout
    listed = json.loads(run_cli("check", path, "--select", "NXR-005", "--json").stdout)
    assert sum(f["rule"] == "NXR-005" for f in listed["findings"]) == 48
