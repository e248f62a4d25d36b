"""Run the registered rules over files; return findings. No printing, no exit codes here."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from jfconform.context import DEFAULT_READ_LIMIT_BYTES, FileContext, ReadProblem
from jfconform.model import Finding, Issue, Severity
from jfconform.registry import Rule, all_rules, get_rule, matches

#: ``JFCONFORM_STRICT=1`` makes strict the default (the test suite sets it).
STRICT_ENV = "JFCONFORM_STRICT"
#: Where h5py's own code lives: an exception raised in there is the file's fault.
_H5PY_DIR = str(Path(h5py.__file__).resolve().parent)

#: Reader profiles and the RD groups each one raises to error (docs/conform.md).
PROFILES: dict[str, tuple[str, ...]] = {
    "nxmx": (),
    "crystfel": ("CFL",),
    "dials": ("DIALS", "DXTBX"),
    "neggia": ("NEGGIA",),
    "durin": ("DURIN",),
    "all": ("CFL", "DIALS", "DXTBX", "NEGGIA", "DURIN"),
}

#: Rule that records a file which cannot be opened at all (H5-001).
UNREADABLE_RULE = "H5-001"
#: Rules the engine reports from what the context recorded while the other rules read.
UNREADABLE_OBJECT_RULE = "H5-013"
READ_LIMIT_RULE = "H5-014"
#: Frames a writer never wrote (missed images); ``fail_on_missing`` makes them errors.
MISSING_FRAMES_RULE = "H5-012"


class RuleError(Exception):
    """A rule raised on content it should have handled: a bug in jfconform (strict mode)."""


def _strict_default() -> bool:
    return os.environ.get(STRICT_ENV, "") == "1"


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """What to check and how.

    Attributes:
        select: rule-ID prefixes to run (empty = all).
        ignore: rule-ID prefixes to skip.
        profiles: reader profiles whose RD warnings become errors.
        sample: frames per image store that pixel-level rules may decode.
        read_limit_bytes: the most bytes one whole-dataset read may allocate; larger
            datasets are not read (H5-014 lists them).
        strict: re-raise an exception from a rule's own code (a jfconform bug) as
            :class:`RuleError` instead of reporting "could not evaluate"; exceptions raised
            inside h5py (the file's fault) stay findings. Default: ``JFCONFORM_STRICT=1``.
        fail_on_missing: frames never written (H5-012, information by default) become
            errors, for CI runs that must not lose an image.
    """

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    sample: int = 2
    read_limit_bytes: int = DEFAULT_READ_LIMIT_BYTES
    strict: bool = field(default_factory=_strict_default)
    fail_on_missing: bool = False

    def __post_init__(self) -> None:
        unknown = [p for p in self.profiles if p not in PROFILES]
        if unknown:
            raise ValueError(f"unknown profile {unknown[0]!r}; use one of: {', '.join(PROFILES)}")
        if self.sample < 0:
            raise ValueError(f"sample must be >= 0, got {self.sample}")
        if self.read_limit_bytes < 1:
            raise ValueError(f"read_limit_bytes must be >= 1, got {self.read_limit_bytes}")

    def selects(self, rule_id: str) -> bool:
        """Whether ``select`` and ``ignore`` (ID prefixes) let this rule run."""
        chosen = not self.select or matches(rule_id, self.select)
        return chosen and not matches(rule_id, self.ignore)

    def rules(self) -> list[Rule]:
        return [r for r in all_rules() if self.selects(r.id)]

    def effective_severity(self, rule_obj: Rule, issue: Issue) -> Severity:
        if self.fail_on_missing and rule_obj.id == MISSING_FRAMES_RULE:
            return Severity.ERROR
        severity = issue.severity or rule_obj.severity
        group = rule_obj.profile_group
        raised = {g for p in self.profiles for g in PROFILES[p]}
        if rule_obj.profile_raises and issue.profile_raises and group in raised:
            return Severity.ERROR
        return severity


@dataclass(slots=True)
class FileReport:
    """The outcome for one file: its findings, and whether it could be opened at all."""

    file: str
    opened: bool
    findings: list[Finding] = field(default_factory=list)
    role: str | None = None
    layout: str | None = None


def make_finding(rule_obj: Rule, issue: Issue, file_label: str, options: CheckOptions) -> Finding:
    severity = options.effective_severity(rule_obj, issue)
    file_name = file_label
    if issue.file is not None:  # a linked data file, named as the master names it
        file_name = str(Path(file_label).parent / issue.file)
    return Finding(
        rule=rule_obj.id,
        symbol=rule_obj.symbol,
        severity=severity,
        file=file_name,
        path=issue.path,
        message=issue.message,
        hint=issue.hint or rule_obj.hint,
    )


def check_file(path: Path, options: CheckOptions | None = None) -> FileReport:
    """Check one file read-only and return its findings; never raises for bad content."""
    options = options or CheckOptions()
    label = str(path)
    rules = options.rules()
    report = FileReport(file=label, opened=False)
    try:
        h5 = h5py.File(path, "r")
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        unreadable = [r for r in rules if r.id == UNREADABLE_RULE]
        if unreadable:
            issue = Issue(
                "/",
                f"cannot open as HDF5: {reason}",
                "check that the file is complete (not truncated) and is HDF5",
            )
            report.findings.append(make_finding(unreadable[0], issue, label, options))
        return report
    report.opened = True
    context = FileContext(
        path, h5, sample=options.sample, read_limit_bytes=options.read_limit_bytes
    )
    try:
        report.role = context.role
        report.layout = context.layout if context.role == "master" else None
        for rule_obj in rules:
            if rule_obj.check is None or context.role not in rule_obj.roles:
                continue
            context.current_rule = rule_obj.id
            for issue in _run_rule(rule_obj, context, strict=options.strict):
                report.findings.append(make_finding(rule_obj, issue, label, options))
        context.current_rule = None
        selected = {r.id for r in rules}
        for rule_id, issues in (
            (UNREADABLE_OBJECT_RULE, _unreadable_issues(context)),
            (READ_LIMIT_RULE, _read_limit_issues(context)),
        ):
            if rule_id in selected:
                rule_obj = get_rule(rule_id)
                report.findings += [make_finding(rule_obj, i, label, options) for i in issues]
    finally:
        context.close()
        h5.close()
    return report


def _needed_by(problem: ReadProblem) -> str:
    return f" (needed by {', '.join(sorted(problem.rules))})" if problem.rules else ""


def _unreadable_issues(context: FileContext) -> list[Issue]:
    """H5-013: every object that exists but could not be read, with the HDF5 error."""
    return [
        Issue(
            problem.path,
            f"cannot read: {problem.detail}{_needed_by(problem)}",
            file=problem.file_name,
        )
        for problem in context.unreadable.values()
    ]


def _read_limit_issues(context: FileContext) -> list[Issue]:
    """H5-014: every dataset not read because it declares more than the read limit."""
    limit_mb = context.read_limit_bytes / 2**20
    return [
        Issue(
            problem.path,
            f"declares {problem.detail}, over the {limit_mb:.4g} MiB read limit: not "
            f"checked{_needed_by(problem)}",
            file=problem.file_name,
        )
        for problem in context.too_large.values()
    ]


def _raised_inside_h5py(error: BaseException) -> bool:
    """Whether the exception comes from h5py reading the file (the file's fault), not from
    a rule's own code."""
    for frame, _line in traceback.walk_tb(error.__traceback__):
        filename = frame.f_code.co_filename
        if filename.startswith(_H5PY_DIR) or filename.startswith("h5py/"):
            return True
    return False


def _run_rule(rule_obj: Rule, context: FileContext, *, strict: bool = False) -> list[Issue]:
    """Run one rule, keeping what it found before any failure.

    A rule that cannot evaluate (h5py failing on damaged content, even with
    ``MemoryError``) becomes a warning that says so: it must not fail a file on its own.
    In ``strict`` mode an exception from the rule's own code is a bug and is re-raised.
    """
    issues: list[Issue] = []
    if rule_obj.check is None:  # evaluated outside the file walk (H5-013, H5-014, TRUTH)
        return issues
    try:
        issues.extend(rule_obj.check(context))
    except Exception as error:
        if strict and not _raised_inside_h5py(error):
            raise RuleError(f"{rule_obj.id} raised on {context.path}: {error!r}") from error
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        issues.append(
            Issue(
                "/",
                f"could not evaluate {rule_obj.id}: {type(error).__name__}: {first_line}",
                "the object this rule reads is unreadable; repair or rewrite the file",
                severity=Severity.WARNING,
            )
        )
    return issues


def check_files(
    paths: list[Path],
    options: CheckOptions | None = None,
    progress: Callable[[int, int, Path], None] | None = None,
) -> list[FileReport]:
    """Check several files in order; ``progress(index, total, path)`` is called before each."""
    reports = []
    for index, path in enumerate(paths):
        if progress is not None:
            progress(index, len(paths), path)
        reports.append(check_file(path, options))
    return reports


EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_UNREADABLE = 2


def exit_status(reports: list[FileReport], fail_on: Severity) -> int:
    """The policy: 2 if a file could not be opened, 1 if a finding reaches ``fail_on``, else 0."""
    if any(not report.opened for report in reports):
        return EXIT_UNREADABLE
    if any(f.severity >= fail_on for report in reports for f in report.findings):
        return EXIT_FINDINGS
    return EXIT_CLEAN
