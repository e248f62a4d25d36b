"""Absent, unreadable and present are three cases; a rule's own bug is not a file finding.

An object that exists but cannot be read gets its own finding (H5-013, with the HDF5 error)
and is never reported as "missing"; strict mode (on in this whole test suite) re-raises an
exception from a rule's own code, while h5py failing on a damaged file stays a finding.
"""

from __future__ import annotations

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
