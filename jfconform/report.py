"""Reports are views of findings: text (grouped by severity + summary), JSON, JUnit XML.

The JSON schema is documented in docs/conform.md; keep the two in step.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import TYPE_CHECKING, Any

from jfconform.model import Finding, Severity
from jfconform.registry import FAMILIES, all_rules
from jfconform.version import __version__

if TYPE_CHECKING:
    from jfconform.api import Report

FORMATS = ("text", "json", "junit")
#: Findings of one rule listed per file in the text report before "N more".
FINDINGS_PER_RULE = 10


def _counts(findings: list[Finding]) -> dict[str, int]:
    tally = Counter(f.severity for f in findings)
    return {
        s.word + "s": tally.get(s, 0) for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)
    }


def as_dict(run: Report) -> dict[str, Any]:
    """The JSON document (schema in docs/conform.md)."""
    files = []
    for report in run.files:
        files.append(
            {
                "file": report.file,
                "opened": report.opened,
                "role": report.role,
                "layout": report.layout,
                **_counts(report.findings),
            }
        )
    by_rule = Counter(f.rule for f in run.findings)
    document = {
        "tool": "jfconform",
        "version": __version__,
        "files": files,
        "findings": [f.as_dict() for f in run.findings],
        "summary": {
            **_counts(run.findings),
            "by_rule": dict(sorted(by_rule.items())),
            "fail_on": run.fail_on.word,
        },
        "truth": run.truth,
        "exit_code": run.exit_code,
    }
    if run.stream is not None:
        document["stream"] = run.stream
    return document


def render_json(run: Report) -> str:
    return json.dumps(as_dict(run), indent=2, allow_nan=False, default=str) + "\n"


def _table(rows: list[list[Any]], header: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return out


def render_text(run: Report, *, all_findings: bool = False) -> str:
    """Findings grouped by severity, then per-file and per-rule summary tables. Unless
    ``all_findings``, a rule lists its first ``FINDINGS_PER_RULE`` findings per file and
    then how many more: one rule over 3600 reflection tables would bury everything else."""
    lines: list[str] = []
    for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO):
        group = [f for f in run.findings if f.severity == severity]
        if not group:
            continue
        lines.append(f"{severity.name}S ({len(group)})")
        shown: Counter[tuple[str, str]] = Counter()
        for f in group:
            shown[f.file, f.rule] += 1
            if all_findings or shown[f.file, f.rule] <= FINDINGS_PER_RULE:
                lines.append(f"  {f.file}:{f.path}: {f.rule} [{f.symbol}] {f.message}")
                lines.append(f"      hint: {f.hint}")
        lines += [
            f"  {file}: {n - FINDINGS_PER_RULE} more {rule} findings not listed "
            "(--all-findings or --json lists them)"
            for (file, rule), n in shown.items()
            if not all_findings and n > FINDINGS_PER_RULE
        ]
        lines.append("")
    lines.append("Summary by file")
    rows = []
    for report in run.files:
        counts = _counts(report.findings)
        state = report.layout or report.role or "unreadable"
        if not report.opened:
            state = "unreadable"
        rows.append([report.file, state, counts["errors"], counts["warnings"], counts["infos"]])
    lines += _table(rows, ["file", "kind", "errors", "warnings", "infos"])
    if run.findings:
        lines.append("")
        lines.append("Summary by rule")
        tally = Counter((f.rule, f.symbol, f.severity.letter) for f in run.findings)
        rows = [[r, s, sev, n] for (r, s, sev), n in sorted(tally.items())]
        lines += _table(rows, ["rule", "symbol", "sev", "count"])
    if run.truth is not None:
        lines.append("")
        lines.append("Truth scores")
        scores = run.truth.get("scores", {})
        rows = [
            [name, _fmt(score.get("value")), score.get("threshold", ""), _verdict(score)]
            for name, score in scores.items()
        ]
        lines += _table(rows, ["score", "value", "threshold", "result"])
        lines += [
            f"  skipped {name}: {score['skipped']}"
            for name, score in scores.items()
            if score.get("skipped")
        ]
        lines += [
            f"  {name}: matched in the setting {score['reindexed']} (another indexing choice)"
            for name, score in scores.items()
            if score.get("reindexed")
        ]
    if run.stream is not None:
        lines.append("")
        lines.append("Stream statistics")
        rows = [[name, _fmt(value)] for name, value in _stream_rows(run.stream)]
        lines += _table(rows, ["quantity", "value"])
    verdict = {0: "PASS", 1: "FAIL", 2: "ERROR (unreadable file)"}[run.exit_code]
    lines.append("")
    lines.append(
        f"result: {verdict} (exit {run.exit_code}; failing at {run.fail_on.word} and above)"
    )
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _verdict(score: dict[str, Any]) -> str:
    if score.get("skipped"):
        return "skipped"
    return "pass" if score.get("passed") else "FAIL"


def _stream_rows(statistics: dict[str, Any]) -> list[tuple[str, Any]]:
    """The scalar statistics of a stream run, in a stable order, skipping absent ones."""
    rows = [(name, statistics.get(name)) for name in STREAM_TABLE]
    by_type = statistics.get("by_type") or {}
    rows += [(f"{name} messages", count) for name, count in sorted(by_type.items())]
    return [(name, "-" if value is None else value) for name, value in rows]


#: The statistics of ``jfconform stream`` shown in the text report.
STREAM_TABLE = (
    "stopped_by",
    "messages",
    "bytes",
    "duration_s",
    "image_rate_hz",
    "pause_mean_ms",
    "pause_p99_ms",
    "pause_max_ms",
    "decompressed",
)


def render_junit(run: Report) -> str:
    """One testsuite per file (or stream input), one testcase per rule family that applies;
    findings >= fail-on fail it."""
    scope = {"stream"} if run.stream is not None else {"master", "data"}
    families = sorted(
        {r.family for r in all_rules() if scope & set(r.roles)}, key=list(FAMILIES).index
    )
    suites = ET.Element("testsuites", name="jfconform")
    for report in run.files:
        failing = [f for f in report.findings if f.severity >= run.fail_on]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=report.file,
            tests=str(len(families)),
            failures=str(len({f.rule.split("-")[0] for f in failing})),
            errors="0" if report.opened else "1",
        )
        for family in families:
            case = ET.SubElement(suite, "testcase", classname=report.file, name=family)
            mine = [f for f in failing if f.rule.split("-")[0] == family]
            if mine:
                failure = ET.SubElement(
                    case,
                    "failure",
                    type=mine[0].rule,
                    message=f"{len(mine)} finding(s) at {run.fail_on.word} or above",
                )
                failure.text = "\n".join(
                    f"{f.rule} {f.path}: {f.message} (hint: {f.hint})" for f in mine
                )
        if not report.opened:
            unreadable = "input cannot be read" if run.stream else "file cannot be opened as HDF5"
            ET.SubElement(suite, "error", message=unreadable)
    if run.truth is not None:
        _truth_suite(suites, run.truth)
    return _xml_safe(ET.tostring(suites, encoding="unicode", xml_declaration=True)) + "\n"


#: Characters XML 1.0 cannot hold (ElementTree writes them as they are): control characters
#: and the surrogates Python uses for file-name bytes that are not UTF-8.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    """``text`` with every character XML cannot hold written as a backslash escape (a file
    name's undecodable byte 0xff as ``\\xff``)."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for a byte
            return f"\\x{code - 0xDC00:02x}"
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _NOT_XML.sub(escape, text)


def _truth_suite(suites: ET.Element, truth: dict[str, Any]) -> None:
    """One test case per truth score: failed, skipped (with the reason) or passed."""
    scores = truth.get("scores", {})
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"truth: {truth.get('truth_file', '')}",
        tests=str(len(scores)),
        failures=str(sum(score.get("passed") is False for score in scores.values())),
        skipped=str(sum(bool(score.get("skipped")) for score in scores.values())),
        errors="1" if truth.get("error") else "0",
    )
    if truth.get("error"):
        ET.SubElement(suite, "error", message=str(truth["error"]))
    for name, score in scores.items():
        case = ET.SubElement(suite, "testcase", classname="truth", name=name)
        if score.get("skipped"):
            ET.SubElement(case, "skipped", message=str(score["skipped"]))
        elif score.get("passed") is False:
            ET.SubElement(
                case,
                "failure",
                type="truth",
                message=f"{name} = {_fmt(score.get('value'))}, threshold {score['threshold']}",
            )


def render(run: Report, format_name: str = "text", *, all_findings: bool = False) -> str:
    """The report as ``text``, ``json`` or ``junit`` (``all_findings``: see render_text)."""
    if format_name == "text":
        return render_text(run, all_findings=all_findings)
    return {"json": render_json, "junit": render_junit}[format_name](run)
