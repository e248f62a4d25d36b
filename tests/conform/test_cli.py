"""The real ``jfconform`` console script: exit codes, formats, options."""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import pytest

from fixtures.broken import write_broken
from fixtures.clean import RunSpec, write_run
from jfconform.truth import TruthThresholds

JSON_FINDING_KEYS = {"rule", "symbol", "severity", "file", "path", "message", "hint"}


def test_clean_file_exits_0_with_summary_table(run_cli, clean_runs) -> None:
    result = run_cli("check", clean_runs["integrated"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Summary by file" in result.stdout
    assert "result: PASS" in result.stdout


def test_error_finding_exits_1_and_json_has_the_schema(run_cli, tmp_path: Path) -> None:
    broken = write_broken(tmp_path, "NXMX-021")
    result = run_cli("check", broken, "--json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert {"tool", "version", "files", "findings", "summary", "truth", "exit_code"} <= set(
        document
    )
    assert document["tool"] == "jfconform" and document["exit_code"] == 1
    assert document["truth"] is None
    assert all(set(f) == JSON_FINDING_KEYS for f in document["findings"])
    errors = {f["rule"] for f in document["findings"] if f["severity"] == "error"}
    assert errors == {"NXMX-021"}
    assert document["summary"]["by_rule"]["NXMX-021"] == 1
    assert document["files"][0]["errors"] == 1


def test_fail_on_warning_turns_a_warning_into_exit_1(run_cli, tmp_path: Path) -> None:
    broken = write_broken(tmp_path, "NXMX-023")
    assert run_cli("check", broken).returncode == 0
    assert run_cli("check", broken, "--fail-on", "warning").returncode == 1


def test_junit_output_parses_and_marks_failures(run_cli, tmp_path: Path, clean_runs) -> None:
    broken = write_broken(tmp_path, "NXT-002")
    out = tmp_path / "report.xml"
    result = run_cli("check", broken, clean_runs["vds"], "--format", "junit", "-o", out)
    assert result.returncode == 1
    root = ET.parse(out).getroot()
    suites = root.findall("testsuite")
    assert len(suites) == 2
    failures = {case.get("name"): case.find("failure") for case in suites[0].findall("testcase")}
    assert failures["NXT"] is not None and failures["NXT"].get("type") == "NXT-002"
    assert all(case.find("failure") is None for case in suites[1].findall("testcase"))
    assert not list(tmp_path.glob("*.tmp"))


def test_profile_option_raises_reader_rules(run_cli, clean_runs) -> None:
    assert run_cli("check", clean_runs["vds"], "--profile", "neggia").returncode == 1
    assert run_cli("check", clean_runs["vds"], "--profile", "dials").returncode == 0


def test_neggia_profile_passes_int16_images_whose_only_negative_is_the_error_value(
    run_cli, clean_runs
) -> None:
    """JUNGFRAU int16 files for Neggia: −32768 (the error value) is read as 32768, which the
    pixel mask covers; nothing else is negative, so the profile has nothing to raise."""
    signed = run_cli("check", clean_runs["legacy"], "--profile", "neggia", "--json")
    assert signed.returncode == 0, signed.stdout[-2000:]
    (note,) = [f for f in json.loads(signed.stdout)["findings"] if f["rule"] == "RD-NEGGIA-004"]
    assert (
        note["severity"] == "info" and "no negative value but the error value" in (note["message"])
    )


def test_neggia_profile_fails_negative_counts_and_says_what_to_do(run_cli, tmp_path) -> None:
    master = write_run(tmp_path, RunSpec(layout="legacy"))
    with h5py.File(tmp_path / "clean_data_000001.h5", "r+") as h5:
        h5["/entry/data/data"][0, 3, 4] = -5
    result = run_cli("check", master, "--profile", "neggia", "--json")
    assert result.returncode == 1
    (error,) = [f for f in json.loads(result.stdout)["findings"] if f["rule"] == "RD-NEGGIA-004"]
    assert error["severity"] == "error" and "lowest -5" in error["message"]
    assert "Durin" in error["hint"] and "unsigned" in error["hint"]


def test_select_and_ignore_on_the_command_line(run_cli, tmp_path: Path) -> None:
    broken = write_broken(tmp_path, "NXMX-021")
    assert run_cli("check", broken, "--ignore", "NXMX-02").returncode == 0
    assert run_cli("check", broken, "--select", "NXMX,NXT").returncode == 1
    unknown = run_cli("check", broken, "--select", "NOPE")
    assert unknown.returncode == 2 and "NOPE" in unknown.stderr


def test_usage_and_unreadable_files_exit_2(run_cli, tmp_path: Path) -> None:
    unknown_option = run_cli("check", "--no-such-option", "x.h5")
    assert unknown_option.returncode == 2
    assert unknown_option.stderr == (
        "jfconform check: error: unrecognized arguments: --no-such-option "
        "(see 'jfconform check --help')\n"
    )
    no_file = run_cli("check")
    assert no_file.returncode == 2 and no_file.stderr.count("\n") == 1
    assert no_file.stderr.startswith("jfconform check: error: the following arguments")
    missing = run_cli("check", tmp_path / "absent_master.h5")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    not_hdf5 = tmp_path / "notes_master.h5"
    not_hdf5.write_text("not an HDF5 file\n")
    result = run_cli("check", not_hdf5)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot open as HDF5" in result.stderr


def test_rules_lists_every_rule(run_cli) -> None:
    result = run_cli("rules", "--json")
    assert result.returncode == 0
    listed = json.loads(result.stdout)
    ids = [r["rule"] for r in listed]
    assert len(ids) == len(set(ids)) > 100
    assert {"NXMX-001", "NXT-002", "H5-006", "RD-NEGGIA-003", "TRUTH-003"} <= set(ids)
    assert "--profile" in run_cli("check", "--help").stdout


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--min-spot-recall", "2", "[0, 1]"),
        ("--min-spot-precision", "-0.1", "[0, 1]"),
        ("--min-indexing-rate", "-1", "[0, 1]"),
        ("--min-intensity-cc", "1.5", "[-1, 1]"),
        ("--max-misorientation-deg", "nan", "[0, 180]"),
        ("--max-cell-error", "-0.02", "[0, inf]"),
        ("--spot-radius-px", "0", "(0, inf]"),
    ],
)
def test_out_of_range_truth_threshold_is_a_usage_error(
    run_cli, clean_runs, option: str, value: str, allowed: str
) -> None:
    result = run_cli("check", clean_runs["integrated"], option, value)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert option in lines[0] and allowed in lines[0]
    assert result.stdout == ""


def test_truth_thresholds_refuse_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="min_spot_recall"):
        TruthThresholds(min_spot_recall=2.0)
    assert TruthThresholds(min_intensity_cc=-1.0).min_intensity_cc == -1.0


#: ``jfconform rules --json`` as it was before the rules became data (issue 11); rules added
#: since are appended, existing rows never change.
RULES_SNAPSHOT = Path(__file__).with_name("data") / "rules_snapshot.json"
#: What a rule is to its users: changing any of these breaks baselines and CI selections.
STABLE_KEYS = ("rule", "symbol", "severity", "family", "roles", "profile_raises")


def test_rules_keep_their_ids_symbols_severities_and_roles(run_cli) -> None:
    listed = json.loads(run_cli("rules", "--json").stdout)
    snapshot = json.loads(RULES_SNAPSHOT.read_text(encoding="utf-8"))
    now = {r["rule"]: {k: r[k] for k in STABLE_KEYS} for r in listed}
    before = {r["rule"]: {k: r[k] for k in STABLE_KEYS} for r in snapshot}
    assert sorted(now) == sorted(before), "rules added or removed: update the snapshot by appending"
    changed = {
        rule_id: (before[rule_id], now[rule_id])
        for rule_id in before
        if now[rule_id] != before[rule_id]
    }
    assert not changed


def test_reports_for_any_file_name_and_any_output_name(clean_runs, run_cli, tmp_path) -> None:
    """Outside review: a master whose name is not UTF-8 gave JUnit that does not parse, and
    a traceback (leaving a temporary file) with ``-o``; an output name near the longest a
    name can be failed because of its temporary name."""
    source = clean_runs["vds"]
    odd = tmp_path / os.fsdecode(b"\xff\xfe_master.h5")
    shutil.copy(source, odd)
    for data_file in source.parent.glob("*_data_*.h5"):
        shutil.copy(data_file, tmp_path)
    result = run_cli("check", odd, "--format", "junit")
    assert "Traceback" not in result.stderr
    suites = ET.fromstring(result.stdout.encode("utf-8", "surrogateescape"))
    assert suites[0].get("name", "").endswith("\\xff\\xfe_master.h5")
    for format_name, name in (("junit", "r" * 250 + ".xml"), ("text", "report.txt")):
        result = run_cli("check", odd, "--format", format_name, "-o", tmp_path / name)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert (tmp_path / name).stat().st_size > 0
    result = run_cli("check", source, "-o", tmp_path / "no/such/folder/report.txt")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("cannot write the report: No such file or directory")
    assert not [p for p in tmp_path.rglob("*.tmp")]
