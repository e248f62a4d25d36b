"""The library API: everything ``jfconform check``, ``stream`` and ``rules`` do, from Python.

    import jfconform

    report = jfconform.check(["run_master.h5"], truth="run_truth.h5", profile="neggia")
    for finding in report.findings:
        print(finding.rule, finding.severity.word, finding.path, finding.message)
    print(jfconform.render(report, "junit"))
    raise SystemExit(report.exit_code)

The command line only parses its options into these calls and prints what they return.
Nothing here prints or exits: bad requests raise :class:`UsageError`, files that cannot be
opened are reported in the :class:`Report` (exit code 2), findings are data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import h5py

from jfconform.context import DEFAULT_READ_LIMIT_BYTES, FileContext
from jfconform.engine import CheckOptions, FileReport, check_files, exit_status, make_finding
from jfconform.model import Finding, Severity
from jfconform.registry import FAMILIES, Rule, all_rules, get_rule, matches
from jfconform.stream.inputs import InputError, group_files, is_endpoint
from jfconform.stream.judge import JudgeOptions
from jfconform.stream.run import RunOptions, judge_endpoints, judge_files
from jfconform.truth import THRESHOLD_RANGES, TruthThresholds, score


class UsageError(ValueError):
    """A request that cannot be carried out (a missing file, a rule prefix that matches
    nothing, a value out of range); ``parameter`` names the argument at fault."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter

    def __str__(self) -> str:
        return f"{self.parameter}: {self.message}" if self.parameter else self.message


@dataclass(frozen=True, slots=True)
class Report:
    """Everything a check found: per-file findings, the truth scores, and the policy.

    Attributes:
        files: one report per checked file, in the order given.
        fail_on: the lowest severity that makes :attr:`exit_code` 1.
        truth: with ``truth=``, the scores and the frame comparison (schema in
            docs/conform.md), else ``None``.
        stream: for a judged stream, its statistics (then each file is one input: an
            endpoint or a recording), else ``None``.
    """

    files: list[FileReport]
    fail_on: Severity
    truth: dict[str, Any] | None = None
    stream: dict[str, Any] | None = None

    @property
    def findings(self) -> list[Finding]:
        return [f for report in self.files for f in report.findings]

    @property
    def exit_code(self) -> int:
        """0 clean, 1 a finding at or above ``fail_on``, 2 a file could not be opened."""
        return exit_status(self.files, self.fail_on)


def check(
    paths: str | Path | Iterable[str | Path],
    *,
    select: str | Iterable[str] = (),
    ignore: str | Iterable[str] = (),
    profile: str | Iterable[str] = (),
    truth: str | Path | None = None,
    thresholds: TruthThresholds | Mapping[str, float] | None = None,
    fail_on: Severity | str = Severity.ERROR,
    sample: int = 2,
    max_read_mb: float = DEFAULT_READ_LIMIT_BYTES / 2**20,
    strict: bool | None = None,
    fail_on_missing: bool = False,
    progress: Callable[[int, int, Path], None] | None = None,
    truth_stage: Callable[[str], None] | None = None,
) -> Report:
    """Check files read-only against every selected rule, and score one against its truth.

    Args:
        paths: HDF5 files: masters, integrated files or data files.
        select: rule-ID prefixes to run (``"NXMX"``, ``"H5-00"``); all when empty. A
            comma-separated string is split.
        ignore: rule-ID prefixes to skip.
        profile: reader profiles (``nxmx``, ``crystfel``, ``dials``, ``neggia``,
            ``durin``, ``all``) whose reader rules become errors.
        truth: a simulator truth file (``PREFIX_truth.h5``) to score the one file against.
        thresholds: the truth pass thresholds (``TruthThresholds`` or a mapping of its
            field names, e.g. ``{"min_spot_recall": 0.8}``); defaults otherwise.
        fail_on: lowest severity that makes the exit code 1 (``"error"``, ``"W"``, ...).
        sample: frames per image dataset that pixel-level rules decode.
        max_read_mb: the most MiB one whole-dataset read may allocate (H5-014 lists the
            datasets skipped).
        strict: re-raise a rule's own failure (a jfconform bug) as ``RuleError``; ``None``
            follows ``JFCONFORM_STRICT``.
        fail_on_missing: frames a writer never wrote (H5-012, information by default) are
            errors, for runs that must not lose an image.
        progress: called as ``progress(index, total, path)`` before each file.
        truth_stage: called with a short description as each step of the truth scoring
            begins (a long run's frames alone take a minute).

    Returns:
        The :class:`Report`; render it with :func:`jfconform.render`.

    Raises:
        UsageError: a file or the truth file does not exist, a prefix matches no rule,
            a profile or severity is unknown, or a number is out of range.
    """
    files = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    if not files:
        raise UsageError("give at least one file to check", "paths")
    for path in files:
        _require_file(path, "paths", "give the path of an HDF5 file")
    truth_path = None if truth is None else Path(truth)
    if truth_path is not None:
        _require_file(truth_path, "truth", "give the PREFIX_truth.h5 of this run")
        if not h5py.is_hdf5(truth_path):
            raise UsageError(
                f"{truth_path}: not an HDF5 file; give the PREFIX_truth.h5 of this run", "truth"
            )
        if len(files) != 1:
            raise UsageError("scores one run: give exactly one file with it", "truth")
    options = _options(select, ignore, profile, sample, max_read_mb, strict, fail_on_missing)
    limits = _thresholds(thresholds)
    policy = _severity(fail_on)
    reports = check_files(files, options, progress)
    summary = None
    if truth_path is not None and reports[0].opened:
        summary = _score_truth(reports[0], truth_path, limits, options, truth_stage)
    return Report(reports, policy, summary)


def judge_stream(
    inputs: str | Path | Iterable[str | Path],
    *,
    select: str | Iterable[str] = (),
    ignore: str | Iterable[str] = (),
    fail_on: Severity | str = Severity.ERROR,
    subscribe: bool = False,
    excerpt: bool = False,
    follow: bool = False,
    max_messages: int | None = None,
    timeout_s: float = 10.0,
    decompress: bool = False,
    min_rate_hz: float | None = None,
    max_pause_s: float | None = None,
    max_findings_per_rule: int = 100,
    progress: Callable[[int, float], None] | None = None,
) -> Report:
    """Judge a live stream or recorded messages, as ``jfconform stream`` does.

    Args:
        inputs: endpoints (``tcp://host:port``, one socket each) or files (each ``.cbors``
            recording is one input, all other files together one more), not both.
        select, ignore, fail_on: as for :func:`check`, over the STR rules.
        subscribe: connect SUB sockets (preview, metadata) instead of PULL; implies
            ``excerpt``.
        excerpt: the messages are part of a series (no start or end required).
        follow: live: keep judging further series.
        max_messages: stop after this many messages.
        timeout_s: live: stop after this long without a message.
        decompress: LZ4-decode every compressed array.
        min_rate_hz, max_pause_s: live: judge the image rate and the pauses (STR-027/028).
        max_findings_per_rule: findings listed per rule and input; the rest are counted.
        progress: called as ``progress(messages, elapsed_s)`` now and then.

    Returns:
        A :class:`Report` with one file per input and the statistics in ``stream``.

    Raises:
        UsageError: as for :func:`check`, and for endpoints mixed with files, timing
            limits on files, or an endpoint ZeroMQ refuses.
    """
    chosen = _prefixes(select, "select", family="STR")
    skipped = _prefixes(ignore, "ignore", family="STR")
    given = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    endpoints = [str(item) for item in given if is_endpoint(str(item))]
    files = [Path(item) for item in given if not is_endpoint(str(item))]
    if endpoints and files:
        raise UsageError("give endpoints or files, not both", "inputs")
    if not endpoints and not files:
        raise UsageError("give endpoints or files to judge", "inputs")
    if files and (min_rate_hz is not None or max_pause_s is not None):
        raise UsageError("--min-rate and --max-pause judge arrival times: give endpoints")
    for path in files:
        _require_file(path, "inputs", "give a .cbors recording or .cbor messages")
    for value, parameter in (
        (max_messages, "max_messages"),
        (max_findings_per_rule, "max_findings_per_rule"),
    ):
        if value is not None and value < 1:
            raise UsageError(f"must be >= 1, got {value}", parameter)
    if not timeout_s > 0:
        raise UsageError(f"must be > 0 s, got {timeout_s:g}", "timeout_s")
    policy = _severity(fail_on)
    try:
        run_options = RunOptions(
            judge=JudgeOptions(
                complete_series=not (subscribe or excerpt),
                decompress=decompress,
                min_rate_hz=min_rate_hz,
                max_pause_s=max_pause_s,
                max_findings_per_rule=max_findings_per_rule,
                timeout_s=timeout_s,
            ),
            subscribe=subscribe,
            follow=follow,
            max_messages=max_messages,
            timeout_s=timeout_s,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        if endpoints:
            labels, role = endpoints, "stream"
            result = judge_endpoints(endpoints, run_options, progress)
        else:
            sources = group_files(files)
            labels, role = [source.label for source in sources], "recording"
            result = judge_files(sources, run_options, progress)
    except InputError as error:
        raise UsageError(str(error)) from None
    options = CheckOptions(select=chosen, ignore=skipped)
    reports = []
    for label, issues in zip(labels, result.issues, strict=True):
        report = FileReport(file=label, opened=True, role=role)
        report.findings += [
            make_finding(get_rule(rule_id), issue, label, options)
            for rule_id, issue in issues
            if options.selects(rule_id)
        ]
        reports.append(report)
    return Report(reports, policy, stream=result.statistics)


def list_rules(select: str | Iterable[str] = ()) -> list[Rule]:
    """The registered rules whose IDs start with one of ``select`` (all when empty)."""
    prefixes = _prefixes(select, "select")
    return [r for r in all_rules() if not prefixes or matches(r.id, prefixes)]


def rule_as_dict(rule: Rule) -> dict[str, Any]:
    """A rule as ``jfconform rules --json`` lists it."""
    return {
        "rule": rule.id,
        "symbol": rule.symbol,
        "severity": rule.severity.word,
        "family": rule.family,
        "family_name": FAMILIES[rule.family],
        "spec": rule.spec,
        "summary": rule.summary,
        "hint": rule.hint,
        "profile_raises": rule.profile_raises,
        "roles": list(rule.roles),
    }


def _require_file(path: Path, parameter: str, advice: str) -> None:
    if not path.exists():
        raise UsageError(f"{path}: no such file; {advice}", parameter)
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file; {advice}", parameter)


def _prefixes(
    value: str | Iterable[str], parameter: str, family: str | None = None
) -> tuple[str, ...]:
    """Rule-ID prefixes, comma-separated strings split; each must match a rule (of
    ``family`` when given)."""
    items = [value] if isinstance(value, str) else list(value)
    prefixes = tuple(p.strip() for item in items for p in item.split(",") if p.strip())
    known = [r.id for r in all_rules() if family in (None, r.family)]
    listing = f"jfconform rules --select {family}" if family else "jfconform rules"
    for prefix in prefixes:
        if not any(matches(rule_id, [prefix]) for rule_id in known):
            kind = "stream rule" if family == "STR" else "rule"
            raise UsageError(f"no {kind} ID starts with {prefix!r}; see '{listing}'", parameter)
    return prefixes


def _severity(value: Severity | str) -> Severity:
    try:
        return value if isinstance(value, Severity) else Severity.parse(value)
    except ValueError as error:
        raise UsageError(str(error), "fail_on") from None


def _options(
    select: str | Iterable[str],
    ignore: str | Iterable[str],
    profile: str | Iterable[str],
    sample: int,
    max_read_mb: float,
    strict: bool | None,
    fail_on_missing: bool,
) -> CheckOptions:
    if sample < 0:
        raise UsageError(f"must be >= 0, got {sample}", "sample")
    if not max_read_mb > 0 or math.isinf(max_read_mb):
        raise UsageError(f"must be > 0, got {max_read_mb:g}", "max_read_mb")
    profiles = (profile,) if isinstance(profile, str) else tuple(profile)
    chosen, skipped = _prefixes(select, "select"), _prefixes(ignore, "ignore")
    try:
        return CheckOptions(
            select=chosen,
            ignore=skipped,
            profiles=profiles,
            sample=sample,
            read_limit_bytes=max(1, int(max_read_mb * 2**20)),
            fail_on_missing=fail_on_missing,
            **({} if strict is None else {"strict": strict}),
        )
    except ValueError as error:
        raise UsageError(str(error), "profile") from None


def _thresholds(given: TruthThresholds | Mapping[str, float] | None) -> TruthThresholds:
    if isinstance(given, TruthThresholds):
        return given
    values = dict(given or {})
    names = {f.name for f in fields(TruthThresholds)}
    for name, value in values.items():
        if name not in names:
            raise UsageError(f"unknown threshold; use one of {', '.join(sorted(names))}", name)
        if not THRESHOLD_RANGES[name].admits(value):
            allowed = THRESHOLD_RANGES[name]
            raise UsageError(f"{value:g} is out of range; use a value in {allowed}", name)
    return TruthThresholds(**values)


def _score_truth(
    report: FileReport,
    truth_path: Path,
    thresholds: TruthThresholds,
    options: CheckOptions,
    stage: Callable[[str], None] | None,
) -> dict[str, Any]:
    """Score the checked file against its truth; the TRUTH findings join its report."""
    path = Path(report.file)
    with h5py.File(path, "r") as h5:
        context = FileContext(
            path, h5, sample=options.sample, read_limit_bytes=options.read_limit_bytes
        )
        try:
            issues, summary = score(context, truth_path, thresholds, stage)
        finally:
            context.close()
    report.findings += [
        make_finding(get_rule(rule_id), issue, report.file, options)
        for rule_id, issue in issues
        if options.selects(rule_id)
    ]
    return summary
