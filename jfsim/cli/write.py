"""``jfsim write``: the jfjoch_writer-compatible NXmx writer service."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from jfsim.writer import FileFormat, WriterConfig, WriterError, WriterService
from jfsim.writer.receiver import DEFAULT_MAX_MESSAGE_BYTES
from jfsim.writer.service import LOOPBACK

#: Seconds between progress lines of an open series (only when stderr is a terminal).
PROGRESS_INTERVAL_S = 5.0
#: Exit statuses (2 = usage error, as for every jfsim command).
EXIT_OK = 0
EXIT_INCOMPLETE = 1  # a series refused, cancelled, interrupted or failed
EXIT_IMAGES_MISSING = 3  # every series completed, but images announced were not written

EPILOG = """\
examples:
  # write every series sent by a DCU into /data, HTTP status on port 5234
  jfsim write -R /data -H 5234 tcp://dcu-address:5500

  # one series in the VDS layout, then exit with a JSON summary
  jfsim write -R out --format vds --once --json tcp://127.0.0.1:5500

  # republish every message on port 5600, announce finished files on port 5601
  jfsim write -r 5600 -f 5601 tcp://127.0.0.1:5500

  # let other machines reach the status/cancel port (it has no authentication)
  jfsim write --bind-host 0.0.0.0 -H 5234 tcp://dcu-address:5500

  curl http://localhost:5234/status        # state, prefix, images received/written
  curl -X POST http://localhost:5234/cancel  # close the open files (sender died)

Files: <prefix>_master.h5 and <prefix>_data_000001.h5 ... below the root directory; each
file is written as <name>.<random>.tmp and renamed when complete. An existing file is never
replaced without --overwrite (an existing master refuses the series, an existing data file
its images). A prefix's missing subdirectories are created below the root; a prefix that
leads outside the root (.., an absolute path, or a link) refuses the series. Several image
sockets: run one writer per socket on the same root; the first socket's writer writes the
master, which links every data file.

The -H, -r and -f ports listen on 127.0.0.1 unless --bind-host names another interface.

exit status: 0 every series completed with every image written; 1 a series was refused,
cancelled, interrupted or could not be finalised; 2 bad options, a busy port or an unusable
root; 3 every series completed but images were missing (the summary lists them).
"""


def port_number(text: str) -> int:
    """A TCP port (0..65535) given on the command line."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is outside 0..65535")
    return port


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "write",
        help="receive a CBOR image stream and write NXmx HDF5 files (jfjoch_writer)",
        description=(
            "Connect a PULL socket to a detector (jfjoch_broker or 'jfsim stream') and write "
            "each series as an NXmx master file plus data files, with the images stored as "
            "received (bitshuffle/LZ4 direct chunk writes). Runs until stopped (Ctrl-C), "
            "or for one series with --once."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("address", help="ZeroMQ endpoint of the DCU, e.g. tcp://dcu:5500")
    parser.add_argument(
        "-R",
        "--root_dir",
        type=Path,
        default=Path("."),
        help="root directory for files; prefixes are relative to it (default .)",
    )
    parser.add_argument(
        "-H",
        "--http_port",
        type=port_number,
        default=None,
        help="HTTP port for GET /status and POST /cancel (0 = any free port)",
    )
    parser.add_argument(
        "-r",
        "--zmq_repub_port",
        type=port_number,
        default=None,
        help="port of a PUSH socket republishing every received message",
    )
    parser.add_argument(
        "-f",
        "--zmq_file_port",
        type=port_number,
        default=None,
        help="port of a PUB socket announcing each finalized file (JSON)",
    )
    parser.add_argument(
        "--bind-host",
        default=LOOPBACK,
        metavar="HOST",
        help="interface of the -H, -r and -f sockets (default 127.0.0.1; 0.0.0.0 = every "
        "interface: anyone who can reach it may POST /cancel)",
    )
    parser.add_argument(
        "-w",
        "--rcv_watermark",
        type=int,
        default=100,
        help="receive high-water mark in messages (default 100)",
    )
    parser.add_argument(
        "-W",
        "--repub_watermark",
        type=int,
        default=1000,
        help="republish high-water mark in messages (default 1000)",
    )
    parser.add_argument(
        "--format",
        choices=[f.value for f in FileFormat],
        default=None,
        help="layout of every series, whatever the start message asks (logged); without "
        "it the start message's layout, else legacy",
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES >> 20,
        metavar="MIB",
        help=f"largest message accepted, in MiB (default {DEFAULT_MAX_MESSAGE_BYTES >> 20}); "
        "a larger one drops the sender's connection",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files instead of refusing the series (or a data file's images)",
    )
    parser.add_argument("--once", action="store_true", help="exit after one series")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds, closing any open series",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the series summaries as JSON on stdout at exit"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    parser.set_defaults(func=run)


def _print_table(summaries: list[dict]) -> None:
    header = (
        f"{'series':>6}  {'state':<11} {'written':>9} {'expected':>8} {'missing':>8} "
        f"{'rate/s':>8}  prefix"
    )
    print(header)
    for s in summaries:
        print(
            f"{s['series_id'] if s['series_id'] is not None else '-':>6}  {s['state']:<11} "
            f"{s['images_written']:>9} {s['images_expected']:>8} {s['images_missing']:>8} "
            f"{s['rate_hz']:>8.1f}  {s['file_prefix']}"
        )
    for s in summaries:
        if s["missing"]:
            ranges = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in s["missing"][:8])
            more = " …" if len(s["missing"]) > 8 else ""
            print(f"series {s['series_id']}: missing image ids {ranges}{more}")


def exit_status(summaries: list[dict], *, once: bool) -> int:
    """The documented exit status for these series summaries (see the epilog)."""
    if once and not summaries:
        return EXIT_INCOMPLETE
    if any(row["state"] != "completed" for row in summaries):
        return EXIT_INCOMPLETE
    if any(row["images_missing"] for row in summaries):
        return EXIT_IMAGES_MISSING
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="jfsim write: %(message)s",
        stream=sys.stderr,
    )
    if not 1 <= args.max_message_size <= 1 << 20:
        raise WriterError(f"--max-message-size {args.max_message_size}: give MiB in 1..{1 << 20}")
    config = WriterConfig(
        endpoint=args.address,
        root_dir=args.root_dir,
        http_port=args.http_port,
        repub_port=args.zmq_repub_port,
        file_port=args.zmq_file_port,
        rcv_watermark=args.rcv_watermark,
        repub_watermark=args.repub_watermark,
        format_override=FileFormat(args.format) if args.format else None,
        overwrite=args.overwrite,
        bind_host=args.bind_host,
        max_message_bytes=args.max_message_size << 20,
    )
    with WriterService(config) as service:
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signal_number, lambda *_: service.stop())
        parts = [f"connected to {args.address}", f"root {service.root_dir}"]
        if service.http_port is not None:
            parts.append(f"http port {service.http_port}")
        if service.republisher is not None:
            parts.append(f"republish {service.republisher.endpoint}")
        if service.notifier is not None:
            parts.append(f"file notifications {service.notifier.endpoint}")
        logging.getLogger("jfsim.writer").info("%s", ", ".join(parts))
        summaries = service.run(
            max_series=1 if args.once else None,
            timeout_s=args.timeout,
            progress_interval_s=PROGRESS_INTERVAL_S if sys.stderr.isatty() else None,
        )
    rows = [summary.as_dict() for summary in summaries]
    if args.json:
        print(json.dumps(rows[0] if args.once and len(rows) == 1 else rows, indent=2))
    elif rows:
        _print_table(rows)
    return exit_status(rows, once=args.once)
