"""``jfconform stream``: the options, and the run mapped to a report and an exit status."""

from __future__ import annotations

import argparse
import re
import sys

from jfconform.api import UsageError, judge_stream
from jfconform.cli import _write, add_report_options
from jfconform.report import render

__all__ = ["add_stream_parser", "run_stream"]

EPILOG = """\
examples:
  jfconform stream tcp://127.0.0.1:5500
      connect PULL to a DCU's image socket (jfsim stream, jfjoch_broker, a DECTRIS DCU on
      port 31001) and judge one series: start, images, end
  jfconform stream tcp://dcu:5500 tcp://dcu:5501 --json -o stream.json
      a broker with two image sockets: each gets start and end, images by data file
  jfconform stream --sub tcp://127.0.0.1:5600 --timeout 5s
      a preview or metadata PUB socket (joining mid-series is information, not an error)
  jfconform stream run.cbors
  jfconform stream --excerpt 000001.cbor 000002.cbor 000011.cbor
      loose messages of a series whose start is not at hand
  jfconform stream tcp://127.0.0.1:5500 --decompress --min-rate 1kHz --max-pause 50ms

A live run stops once the series has ended on every socket (--follow: keeps going), after
--max-messages, or after --timeout without a message. Rule IDs: 'jfconform rules --select
STR'.
exit status: 0 clean, 1 findings at or above --fail-on, 2 usage error or unreadable input
"""

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|ms|us|min)?\s*$")
_DURATION_S = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "min": 60.0}
_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(hz|khz|mhz)?\s*$", re.I)
_RATE_HZ = {None: 1.0, "hz": 1.0, "khz": 1e3, "mhz": 1e6}


class StreamUsageError(Exception):
    """Bad options or inputs; one line on stderr and exit status 2."""


def parse_duration_s(text: str, option: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise StreamUsageError(
            f"{option} {text!r}: give seconds with an optional unit (10, 2.5s, 500ms, 2min)"
        )
    return float(match.group(1)) * _DURATION_S[match.group(2)]


def parse_rate_hz(text: str, option: str) -> float:
    match = _RATE.match(text)
    if match is None:
        raise StreamUsageError(f"{option} {text!r}: give a rate (500, 500Hz, 2kHz)")
    return float(match.group(1)) * _RATE_HZ[(match.group(2) or "").lower() or None]


def add_stream_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``jfconform stream`` to the command's subparsers."""
    parser = commands.add_parser(
        "stream",
        help="judge a live ZeroMQ stream or recorded messages",
        description="Judge every message of a DECTRIS Stream V2 / Jungfraujoch CBOR stream: "
        "its encoding (55799 tag, a map with type first, RFC 8746 arrays, tag 56500), its "
        "fields and their types, array sizes, and the order of each series (start, images "
        "with unique increasing ids, end with consistent counts). Inputs are endpoints "
        "(connected PULL, or SUB with --sub) or recordings (.cbors, .cbor).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="ENDPOINT_OR_FILE",
        help="tcp://HOST:PORT endpoints (one socket each), or files: each .cbors recording "
        "is one input, all other files together make one more, in the order given",
    )
    parser.add_argument(
        "--sub",
        action="store_true",
        help="connect SUB (preview/metadata PUB sockets) instead of PULL; implies --excerpt",
    )
    parser.add_argument(
        "--excerpt",
        action="store_true",
        help="the messages are part of a series: a missing start or end is information, "
        "and holes and end counts are not judged",
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="live: keep judging further series (stop with --max-messages, --timeout or Ctrl-C)",
    )
    parser.add_argument(
        "--max-messages", type=int, metavar="N", help="stop after N messages (all inputs)"
    )
    parser.add_argument(
        "--timeout",
        default="10s",
        metavar="DURATION",
        help="live: stop after this long without a message (default 10s)",
    )
    parser.add_argument(
        "--decompress",
        action="store_true",
        help="LZ4-decode every compressed array and check its blocks (slower)",
    )
    parser.add_argument(
        "--min-rate", metavar="RATE", help="images must arrive at least this fast (STR-027)"
    )
    parser.add_argument(
        "--max-pause",
        metavar="DURATION",
        help="no pause between messages may be longer (STR-028)",
    )
    parser.add_argument(
        "--max-findings-per-rule",
        type=int,
        default=100,
        metavar="N",
        help="list at most N findings per rule and input; count the rest (default 100)",
    )
    add_report_options(parser, example_prefixes="STR-00,STR-012")
    parser.set_defaults(func=run_stream)


def _progress(messages: int, elapsed_s: float) -> None:
    print(
        f"\r\x1b[Kstream: {messages} messages judged in {elapsed_s:.1f} s",
        end="",
        file=sys.stderr,
        flush=True,
    )


def run_stream(args: argparse.Namespace) -> int:
    """Judge the inputs (:func:`jfconform.api.judge_stream`), write the report; returns the
    exit status."""
    try:
        timeout_s = parse_duration_s(args.timeout, "--timeout")
        if not timeout_s > 0:
            raise StreamUsageError("--timeout must be > 0")
        min_rate = None if args.min_rate is None else parse_rate_hz(args.min_rate, "--min-rate")
        max_pause = None
        if args.max_pause is not None:
            max_pause = parse_duration_s(args.max_pause, "--max-pause")
    except StreamUsageError as error:
        raise UsageError(str(error)) from None
    show_progress = sys.stderr.isatty() and not args.json
    try:
        report = judge_stream(
            args.inputs,
            select=args.select or (),
            ignore=args.ignore or (),
            fail_on=args.fail_on,
            subscribe=args.sub,
            excerpt=args.excerpt,
            follow=args.follow,
            max_messages=args.max_messages,
            timeout_s=timeout_s,
            decompress=args.decompress,
            min_rate_hz=min_rate,
            max_pause_s=max_pause,
            max_findings_per_rule=args.max_findings_per_rule,
            progress=_progress if show_progress else None,
        )
    finally:
        if show_progress:
            print(file=sys.stderr)
    _write(
        render(report, "json" if args.json else args.format, all_findings=args.all_findings),
        args.output,
    )
    return report.exit_code
