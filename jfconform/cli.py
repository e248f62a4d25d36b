"""The ``jfconform`` command: parse, call the library, render, map to an exit status."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import traceback
from dataclasses import fields
from pathlib import Path
from typing import NoReturn

from jfconform.api import UsageError, check, list_rules, rule_as_dict
from jfconform.context import DEFAULT_READ_LIMIT_BYTES
from jfconform.engine import EXIT_UNREADABLE, PROFILES, STRICT_ENV, RuleError
from jfconform.report import FINDINGS_PER_RULE, FORMATS, render
from jfconform.truth import TruthThresholds
from jfconform.version import __version__

CHECK_EPILOG = """\
examples:
  jfconform check run_master.h5
  jfconform check run_master.h5 --profile neggia --format junit -o report.xml
  jfconform check run_master.h5 --select NXMX,NXT --ignore NXMX-014 --json
  jfconform check run_master.h5 --truth run_truth.h5 --min-spot-recall 0.8
  jfconform check run_master.h5 --fail-on-missing      # a lost image fails CI

exit status: 0 clean, 1 findings at or above --fail-on, 2 usage error or unreadable file,
3 a rule itself failed (only with --strict)
"""

#: Exit status when a rule's own code fails under --strict (a bug in jfconform).
EXIT_RULE_ERROR = 3

THRESHOLD_HELP = {
    "min_spot_recall": "fraction of true spots found within the radius (default %(default)s)",
    "min_spot_precision": "fraction of listed spots near a true one (default %(default)s)",
    "min_indexing_rate": "fraction of hit images indexed correctly (default %(default)s)",
    "max_cell_error": "relative Niggli cell-length error (default %(default)s)",
    "max_cell_angle_error_deg": "Niggli cell-angle error in degrees (default %(default)s)",
    "max_misorientation_deg": "orientation error in degrees (default %(default)s)",
    "min_intensity_cc": "Pearson r of integrated vs true intensity (default %(default)s)",
    "min_merged_intensity_cc": "Pearson r of merged vs true full intensity (default %(default)s)",
    "spot_radius_px": "match radius for spots in pixels (default %(default)s)",
    "min_true_photons": "true reflections weaker than this are not expected as spots "
    "(default %(default)s)",
    "min_true_snr": "true reflections with a lower expected I/sigma(I) are not expected as "
    "spots (0 = off, default %(default)s; see docs/conform.md)",
}


def add_report_options(parser: argparse.ArgumentParser, *, example_prefixes: str) -> None:
    """The options every judging command shares: report format and file, the exit-status
    policy, and rule selection by ID prefix."""
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format")
    parser.add_argument("--json", action="store_true", help="alias of --format json")
    parser.add_argument(
        "-o", "--output", type=Path, metavar="OUT", help="write the report to OUT instead of stdout"
    )
    parser.add_argument(
        "--all-findings",
        action="store_true",
        help=f"text report: list every finding (by default the first {FINDINGS_PER_RULE} of "
        "each rule per file, then how many more; JSON and JUnit always list all)",
    )
    parser.add_argument(
        "--fail-on",
        choices=("error", "warning", "info"),
        default="error",
        help="lowest severity that makes the exit status 1 (default error)",
    )
    parser.add_argument(
        "--select",
        action="append",
        metavar="RULES",
        help=f"comma-separated rule-ID prefixes to run (e.g. {example_prefixes})",
    )
    parser.add_argument(
        "--ignore",
        action="append",
        metavar="RULES",
        help="comma-separated rule-ID prefixes to skip",
    )


class _OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors in one line that names the command and its ``--help`` (argparse
    would print the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_UNREADABLE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="jfconform",
        description="Judge NXmx / Jungfraujoch HDF5 files against the specifications "
        "(NXmx, NXtransformations, NXreflections, CXI, Jungfraujoch layout, HDF5 mechanics, "
        "reader needs) and, optionally, against simulator ground truth; judge live streams "
        "and recordings of Stream V2 / Jungfraujoch CBOR messages.",
        epilog="Run 'jfconform check --help', 'jfconform stream --help' or "
        "'jfconform rules --help' for details.",
    )
    parser.add_argument("--version", action="version", version=f"jfconform {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check",
        help="check files and report findings",
        description="Check NXmx masters, integrated files or data files read-only. Every "
        "finding has a rule ID, a severity, the file and HDF5 path, a message and a hint.",
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE", help="HDF5 files")
    check.add_argument(
        "--truth",
        type=Path,
        metavar="PREFIX_truth.h5",
        help="score spots, lattices and intensities against this truth file",
    )
    add_report_options(check, example_prefixes="NXMX,H5-00")
    check.add_argument(
        "--fail-on-missing",
        action="store_true",
        help="report frames never written (H5-012, missed images) as errors, not information",
    )
    check.add_argument(
        "--profile",
        action="append",
        choices=tuple(PROFILES),
        help="make this reader's RD rules errors (repeatable)",
    )
    check.add_argument(
        "--sample",
        type=int,
        default=2,
        metavar="N",
        help="frames per image dataset that pixel-level rules decode (default 2)",
    )
    check.add_argument(
        "--max-read-mb",
        type=float,
        default=DEFAULT_READ_LIMIT_BYTES / 2**20,
        metavar="MB",
        help="read no dataset larger than this whole (default %(default)g MiB); larger ones "
        "are listed as H5-014 with the rules that skipped them",
    )
    check.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="stop with a traceback when a rule itself fails (a jfconform bug) instead of "
        f"reporting 'could not evaluate'; also on with {STRICT_ENV}=1",
    )
    truth = check.add_argument_group("truth thresholds (with --truth)")
    for spec_field in fields(TruthThresholds):
        truth.add_argument(
            f"--{spec_field.name.replace('_', '-')}",
            type=float,
            default=spec_field.default,
            metavar="X",
            help=THRESHOLD_HELP[spec_field.name],
        )
    check.set_defaults(func=run_check)

    rules = commands.add_parser(
        "rules",
        help="list every rule",
        description="List the registered rules: ID, symbol, severity and summary.",
        epilog="examples:\n  jfconform rules\n  jfconform rules --select RD --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rules.add_argument("--json", action="store_true", help="print JSON")
    rules.add_argument("--select", action="append", metavar="RULES", help="ID prefixes")
    rules.set_defaults(func=run_rules)

    from jfconform.stream.command import add_stream_parser  # imports this module's helpers

    add_stream_parser(commands)
    return parser


def _progress(index: int, total: int, path: Path) -> None:
    print(f"[{index + 1}/{total}] {path}", file=sys.stderr, flush=True)


def _write(text: str, output: Path | None) -> None:
    """The report on stdout, or into ``output`` through a temporary file beside it (never a
    half-written report under its name). File names that are not UTF-8 keep their bytes."""
    data = text.encode("utf-8", "surrogateescape")
    if output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    # a short name of its own: OUTPUT plus a suffix may be longer than a name can be
    temporary = output.parent / f".jfconform-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    created = False
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        created = True
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, output)
    except OSError as error:
        if created:
            temporary.unlink(missing_ok=True)
        raise UsageError(f"{output}: cannot write the report: {error.strerror or error}") from error


def _truth_stage(description: str) -> None:
    print(f"truth: {description} ...", file=sys.stderr, flush=True)


def run_check(args: argparse.Namespace) -> int:
    show_progress = len(args.files) > 1 and sys.stderr.isatty()
    report = check(
        args.files,
        select=args.select or (),
        ignore=args.ignore or (),
        profile=args.profile or (),
        truth=args.truth,
        thresholds={f.name: getattr(args, f.name) for f in fields(TruthThresholds)},
        fail_on=args.fail_on,
        sample=args.sample,
        max_read_mb=args.max_read_mb,
        strict=args.strict,
        fail_on_missing=args.fail_on_missing,
        progress=_progress if show_progress else None,
        truth_stage=_truth_stage if args.truth is not None and sys.stderr.isatty() else None,
    )
    _write(
        render(report, "json" if args.json else args.format, all_findings=args.all_findings),
        args.output,
    )
    for file_report in report.files:
        if not file_report.opened:
            first = file_report.findings[0].message if file_report.findings else "cannot open"
            print(f"jfconform check: error: {file_report.file}: {first}", file=sys.stderr)
    return report.exit_code


def run_rules(args: argparse.Namespace) -> int:
    selected = list_rules(args.select or ())
    if args.json:
        sys.stdout.write(json.dumps([rule_as_dict(r) for r in selected], indent=2) + "\n")
        return 0
    width = max((len(r.id) for r in selected), default=8)
    symbol_width = max((len(r.symbol) for r in selected), default=8)
    for r in selected:
        sys.stdout.write(
            f"{r.id.ljust(width)}  {r.symbol.ljust(symbol_width)}  "
            f"{r.severity.letter}  {r.summary}\n"
        )
    sys.stdout.write(f"\n{len(selected)} rules\n")
    return 0


def _usage_message(error: UsageError) -> str:
    """A library usage error in the command's own words (``--max-read-mb`` for
    ``max_read_mb``; the files and the prefixes speak for themselves)."""
    if error.parameter in (None, "paths", "inputs", "select", "ignore"):
        return error.message
    return f"--{error.parameter.replace('_', '-')} {error.message}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # blamed on the subcommand they follow, not on jfconform itself
            command = f"jfconform {args.command}"
            print(
                f"{command}: error: unrecognized arguments: {' '.join(unknown)} "
                f"(see '{command} --help')",
                file=sys.stderr,
            )
            return EXIT_UNREADABLE
    except SystemExit as stop:  # usage errors, --help and --version (exit 2 or 0)
        return int(stop.code or 0)
    try:
        return int(args.func(args))
    except UsageError as error:
        print(f"jfconform {args.command}: error: {_usage_message(error)}", file=sys.stderr)
        return EXIT_UNREADABLE
    except RuleError as error:  # strict mode: a rule's own code failed (a jfconform bug)
        traceback.print_exception(error)
        print(f"jfconform {args.command}: internal error: {error}", file=sys.stderr)
        return EXIT_RULE_ERROR
    except KeyboardInterrupt:
        print(f"jfconform {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
