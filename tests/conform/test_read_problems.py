"""Absent, unreadable and present are three cases; a rule's own bug is not a file finding.

An object that exists but cannot be read gets its own finding (H5-013, with the HDF5 error)
and is never reported as "missing"; strict mode (on in this whole test suite) re-raises an
exception from a rule's own code, while h5py failing on a damaged file stays a finding.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from fixtures.broken import damage_object_header, write_broken
from fixtures.clean import DETECTOR, RunSpec, write_run
from jfconform.context import FileContext
from jfconform.engine import CheckOptions, RuleError, _run_rule, check_file
from jfconform.model import Issue, Severity
from jfconform.registry import Rule


def test_absent_unreadable_and_present_are_three_cases(tmp_path: Path) -> None:
    master = write_broken(tmp_path, "H5-013")  # sensor_material's object header is damaged
    with h5py.File(master, "r") as h5:
        ctx = FileContext(master, h5)
        detector = h5[DETECTOR]
        # present
        assert ctx.exists("description", detector)
        assert ctx.dataset("description", detector) is not None
        # absent: no link, nothing recorded
        assert ctx.missing("sensor_colour", detector)
        assert ctx.dataset("sensor_colour", detector) is None
        assert not ctx.unreadable
        # unreadable: the link exists, the object does not open, the HDF5 error is kept
        assert ctx.exists("sensor_material", detector)
        assert not ctx.missing("sensor_material", detector)
        assert ctx.dataset("sensor_material", detector) is None
        (problem,) = ctx.unreadable.values()
        assert problem.path == f"{DETECTOR}/sensor_material"
        assert "object header" in problem.detail


def test_an_unreadable_required_field_is_reported_as_unreadable_not_missing(
    tmp_path: Path,
) -> None:
    master = write_broken(tmp_path, "H5-013")
    findings = check_file(master).findings
    rules = {f.rule for f in findings}
    assert "NXMX-021" not in rules  # "sensor_material is missing" would be false
    (unreadable,) = [f for f in findings if f.rule == "H5-013"]
    assert unreadable.severity == Severity.ERROR
    assert unreadable.path == f"{DETECTOR}/sensor_material"
    assert "cannot read" in unreadable.message and "object header" in unreadable.message


def test_an_absent_required_field_is_still_missing(tmp_path: Path) -> None:
    master = write_broken(tmp_path, "NXMX-021")
    findings = check_file(master).findings
    assert {f.rule for f in findings if f.severity >= Severity.WARNING} == {"NXMX-021"}


def _checked_with(master: Path, check, *, strict: bool) -> list[Issue]:
    rule = Rule("H5-998", "test-rule", Severity.ERROR, "test", "test", "test", check)
    with h5py.File(master, "r") as h5:
        context = FileContext(master, h5)
        try:
            return _run_rule(rule, context, strict=strict)
        finally:
            context.close()


def test_strict_mode_is_on_in_the_test_suite() -> None:
    assert CheckOptions().strict is True


def test_strict_mode_re_raises_a_bug_in_a_rule(tmp_path: Path) -> None:
    master = write_run(tmp_path, RunSpec())

    def buggy(ctx: FileContext):
        yield Issue("/entry", "found before the bug")
        ctx.detectors[0].name.no_such_attribute  # noqa: B018 - the bug under test

    with pytest.raises(RuleError, match="H5-998 raised"):
        _checked_with(master, buggy, strict=True)
    issues = _checked_with(master, buggy, strict=False)
    assert issues[0].message == "found before the bug"
    assert issues[1].severity == Severity.WARNING and "AttributeError" in issues[1].message


def test_strict_mode_keeps_h5py_failures_as_findings(tmp_path: Path) -> None:
    """A rule that lets h5py fail on damaged content is reported, not raised, even strict."""
    master = write_broken(tmp_path, "H5-013")

    def reads_the_damaged_object(ctx: FileContext):
        yield from ()
        ctx.h5[f"{DETECTOR}/sensor_material"]  # h5py raises inside h5py

    (issue,) = _checked_with(master, reads_the_damaged_object, strict=True)
    assert issue.severity == Severity.WARNING and "could not evaluate H5-998" in issue.message


def test_cli_strict_flag(clean_runs: dict[str, Path], run_cli) -> None:
    result = run_cli("check", "--strict", clean_runs["vds"])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "field", ["x_pixel_size", "distance", "beam_center_x", "count_time", "depends_on"]
)
def test_every_rule_copes_with_an_unreadable_detector_field(tmp_path: Path, field: str) -> None:
    """Strict (as this whole suite runs): no rule may trip over a field that exists but
    cannot be opened (RD-NEGGIA-006 once read the dtype of what it got back, None); the
    field is H5-013's and nobody calls it missing."""
    master = write_run(tmp_path, RunSpec())
    damage_object_header(f"{DETECTOR}/{field}")(master)
    findings = check_file(master, CheckOptions(strict=True)).findings
    assert [f.path for f in findings if f.rule == "H5-013"] == [f"{DETECTOR}/{field}"]
    assert not [f for f in findings if "missing" in f.message and f.path.endswith(field)]


@pytest.mark.parametrize("layout", ["legacy", "vds", "integrated"])
@pytest.mark.parametrize("damaged", ["/entry", "data file /entry/data"])
def test_a_damaged_group_header_is_h5_013_in_every_layout(
    tmp_path: Path, run_cli, layout: str, damaged: str
) -> None:
    """Outside review: a damaged header in a data file passed with warnings only (h5py
    cannot hash such an object, so every rule that met it "could not evaluate")."""
    master = write_run(tmp_path, RunSpec(layout=layout))
    target, path = master, damaged
    if damaged.startswith("data file "):
        path = damaged.removeprefix("data file ")
        data_files = sorted(master.parent.glob("*_data_*.h5"))
        target = data_files[0] if data_files else master
    damage_object_header(path)(target)
    result = run_cli("check", "--json", master)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    errors = {f["rule"] for f in report["findings"] if f["severity"] == "error"}
    assert errors & {"H5-013", "H5-001", "H5-006", "H5-007"}, errors


@pytest.mark.parametrize("layout", ["vds", "integrated"])
def test_a_root_header_with_a_bad_checksum_is_a_finding_not_a_crash(
    tmp_path: Path, run_cli, layout: str
) -> None:
    """Outside review: one flipped byte in the root group's header (HDF5 1.10 format: the
    header has a checksum) opened the file, then ``check`` died with a traceback."""
    master = write_run(tmp_path, RunSpec(layout=layout))
    with h5py.File(master, "r") as h5:
        address = h5py.h5o.get_info(h5["/"].id).addr
    unreadable_root = 0
    for offset in range(48):
        damaged = master.with_name(f"damaged{offset}_master.h5")
        data = bytearray(master.read_bytes())
        data[address + offset] ^= 0xFF
        damaged.write_bytes(bytes(data))
        result = run_cli("check", "--json", damaged)
        assert "Traceback" not in result.stderr, (offset, result.stderr[-2000:])
        if result.returncode == 2:
            assert "cannot open as HDF5" in result.stderr, (offset, result.stderr)
            continue
        report = json.loads(result.stdout)  # a report, whatever the damage
        unreadable_root += any(
            f["rule"] == "H5-013" and f["path"] == "/" for f in report["findings"]
        )
    assert unreadable_root  # the review's case: the file opens, its root group does not


def test_a_data_file_whose_frames_cannot_be_read_never_passes(tmp_path: Path, run_cli) -> None:
    """Outside review: one flipped byte in a data file's root header left its frames
    unreadable, yet ``check --strict`` passed (every rule that met the object "could not
    evaluate" it: h5py cannot hash a damaged object)."""
    master = write_run(tmp_path, RunSpec(layout="vds"))
    data_file = sorted(master.parent.glob("*_data_*.h5"))[0]
    pristine = data_file.read_bytes()
    with h5py.File(data_file, "r") as h5:
        address = h5py.h5o.get_info(h5["/"].id).addr
    unreadable_frames = 0
    for offset in range(48):
        data = bytearray(pristine)
        data[address + offset] ^= 0xFF
        data_file.write_bytes(bytes(data))
        try:
            with h5py.File(master, "r") as h5:
                h5["/entry/data/data"][0]
            readable = True
        except (OSError, RuntimeError, KeyError, ValueError, TypeError):
            readable = False
        result = run_cli("check", "--strict", "--json", master)
        assert "Traceback" not in result.stderr and "cannot be hashed" not in result.stdout
        if not readable:
            unreadable_frames += 1
            assert result.returncode != 0, offset
    assert unreadable_frames  # the review's case was met
