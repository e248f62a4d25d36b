"""``jfsim write``: the jfjoch_writer-compatible NXmx writer service."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from jfsim.writer import FileFormat, WriterConfig, WriterService

#: Seconds between progress lines of an open series (only when stderr is a terminal).
PROGRESS_INTERVAL_S = 5.0

EPILOG = """\
examples:
  # write every series sent by a DCU into /data, HTTP status on port 5234
  jfsim write -R /data -H 5234 tcp://dcu-address:5500

  # one series in the VDS layout, then exit with a JSON summary
  jfsim write -R out --format vds --once --json tcp://127.0.0.1:5500

  # republish every message on port 5600, announce finished files on port 5601
  jfsim write -r 5600 -f 5601 tcp://127.0.0.1:5500

  curl http://localhost:5234/status        # state, prefix, images received/written
  curl -X POST http://localhost:5234/cancel  # close the open files (sender died)

Files: <prefix>_master.h5 and <prefix>_data_000001.h5 ... below the root directory; each
file is written as <name>.<random>.tmp and renamed when complete. An existing file is never
replaced without --overwrite (an existing master refuses the series, an existing data file
its images). Several image sockets: run one writer per socket on the same root; the first
socket's writer writes the master, which links every data file.
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
        default="legacy",
        help="layout when the start message names none (default legacy)",
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
    header = f"{'series':>6}  {'state':<11} {'written':>9} {'expected':>8} {'rate/s':>8}  prefix"
    print(header)
    for s in summaries:
        print(
            f"{s['series_id'] if s['series_id'] is not None else '-':>6}  {s['state']:<11} "
            f"{s['images_written']:>9} {s['images_expected']:>8} {s['rate_hz']:>8.1f}  "
            f"{s['file_prefix']}"
        )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="jfsim write: %(message)s",
        stream=sys.stderr,
    )
    config = WriterConfig(
        endpoint=args.address,
        root_dir=args.root_dir,
        http_port=args.http_port,
        repub_port=args.zmq_repub_port,
        file_port=args.zmq_file_port,
        rcv_watermark=args.rcv_watermark,
        repub_watermark=args.repub_watermark,
        default_format=FileFormat(args.format),
        overwrite=args.overwrite,
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
    completed = all(row["state"] == "completed" for row in rows)
    return 0 if completed and (rows or not args.once) else 1
