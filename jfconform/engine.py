"""Run the registered rules over files; return findings. No printing, no exit codes here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from jfconform.context import FileContext
from jfconform.model import Finding, Issue, Severity
from jfconform.registry import Rule, iter_selected

#: Reader profiles and the RD groups each one raises to error (conformance.md §7.8).
PROFILES: dict[str, tuple[str, ...]] = {
    "nxmx": (),
    "crystfel": ("CFL",),
    "dials": ("DIALS", "DXTBX"),
    "neggia": ("NEGGIA",),
    "durin": ("DURIN",),
    "all": ("CFL", "DIALS", "DXTBX", "NEGGIA", "DURIN"),
}

#: Rule that records a file which cannot be opened at all (conformance.md §7.7 H5-001).
UNREADABLE_RULE = "H5-001"
#: Frames a writer never wrote (missed images); ``fail_on_missing`` makes them errors.
MISSING_FRAMES_RULE = "H5-012"


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """What to check and how.

    Attributes:
        select: rule-ID prefixes to run (empty = all).
        ignore: rule-ID prefixes to skip.
        profiles: reader profiles whose RD warnings become errors.
        sample: frames per image store that pixel-level rules may decode.
        fail_on_missing: frames never written (H5-012, information by default) become
            errors, for CI runs that must not lose an image.
    """

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    sample: int = 2
    fail_on_missing: bool = False

    def __post_init__(self) -> None:
        unknown = [p for p in self.profiles if p not in PROFILES]
        if unknown:
            raise ValueError(f"unknown profile {unknown[0]!r}; use one of: {', '.join(PROFILES)}")
        if self.sample < 0:
            raise ValueError(f"sample must be >= 0, got {self.sample}")

    def rules(self) -> list[Rule]:
        return list(iter_selected(list(self.select), list(self.ignore)))

    def effective_severity(self, rule_obj: Rule, severity: Severity) -> Severity:
        if self.fail_on_missing and rule_obj.id == MISSING_FRAMES_RULE:
            return Severity.ERROR
        group = rule_obj.profile_group
        raised = {g for p in self.profiles for g in PROFILES[p]}
        if rule_obj.profile_raises and group in raised:
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
    severity = options.effective_severity(rule_obj, issue.severity or rule_obj.severity)
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
    context = FileContext(path, h5, sample=options.sample)
    try:
        report.role = context.role
        report.layout = context.layout if context.role == "master" else None
        for rule_obj in rules:
            if rule_obj.check is None or context.role not in rule_obj.roles:
                continue
            for issue in _run_rule(rule_obj, context):
                report.findings.append(make_finding(rule_obj, issue, label, options))
    finally:
        context.close()
        h5.close()
    return report


def _run_rule(rule_obj: Rule, context: FileContext) -> list[Issue]:
    """Run one rule, keeping what it found before any failure.

    A rule that cannot evaluate (unreadable content, or h5py failing, even with
    ``MemoryError``) becomes a warning that says so: it must not fail a file on its own.
    """
    issues: list[Issue] = []
    try:
        issues.extend(rule_obj.check(context))
    except Exception as error:
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
