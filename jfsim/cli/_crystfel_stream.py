"""``jfsim stream --format crystfel``: the options and the run of the CrystFEL feed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from jfsim.cli._summary import print_summary
from jfsim.crystfel.frame import CrystfelDtype
from jfsim.stream import parse_duration_s, parse_rate_hz
from jfsim.stream.crystfel import (
    DEFAULT_CRYSTFEL_ENDPOINT,
    PUB_TOPIC,
    CrystfelConfig,
    CrystfelMode,
    CrystfelProgress,
    CrystfelServer,
    CrystfelSummary,
)
from jfsim.stream.errors import StreamOptionError
from jfsim.stream.sources import FrameSource

EXIT_INCOMPLETE = 1

#: Options of the Jungfraujoch image stream that a CrystFEL feed does not have.
_JUNGFRAUJOCH_ONLY = ("preview", "metadata", "truth_out")


class StatusLine(Protocol):
    def show(self, text: str) -> None: ...

    def done(self) -> None: ...

    def counter(self, what: str, unit: str) -> Callable[[int, int], None]: ...


def add_crystfel_options(parser: argparse.ArgumentParser) -> None:
    """``--format`` and the options that only ``--format crystfel`` reads."""
    parser.add_argument(
        "--format",
        choices=("jungfraujoch", "crystfel"),
        default="jungfraujoch",
        help="jungfraujoch (default): CBOR messages on PUSH sockets, as jfjoch_broker; "
        "crystfel: MessagePack frames for indexamajig --zmq-input (CrystFEL's online data input)",
    )
    crystfel = parser.add_argument_group("--format crystfel")
    crystfel.add_argument(
        "--crystfel-mode",
        choices=[mode.value for mode in CrystfelMode],
        default=CrystfelMode.REP.value,
        help="rep (default): answer each request (indexamajig --zmq-request=next) with one "
        "image; pub: publish every image under the prefix "
        f"{PUB_TOPIC.decode()} (indexamajig --zmq-subscribe={PUB_TOPIC.decode()})",
    )
    crystfel.add_argument(
        "--crystfel-dtype",
        choices=[dtype.value for dtype in CrystfelDtype],
        default=CrystfelDtype.INT32.value,
        help="pixel type of the frames: int32 (<i4, default; error pixels read -1, or "
        "-32768 for JUNGFRAU) or float32 (<f4; error pixels are NaN)",
    )
    crystfel.add_argument(
        "--idle-timeout",
        metavar="DURATION",
        help="rep: stop when no request came for this long (default: wait for ever)",
    )


def _config(args: argparse.Namespace) -> CrystfelConfig:
    for name in _JUNGFRAUJOCH_ONLY:
        if getattr(args, name) is not None:
            raise StreamOptionError(
                f"--{name.replace('_', '-')} is for the Jungfraujoch image stream; leave it "
                "out with --format crystfel"
            )
    endpoints = args.endpoint or [DEFAULT_CRYSTFEL_ENDPOINT]
    if len(endpoints) != 1:
        raise StreamOptionError(
            "--format crystfel binds one socket; give --endpoint once "
            "(start indexamajig with several workers, -j N, to share it)"
        )
    idle = args.idle_timeout
    return CrystfelConfig(
        endpoint=endpoints[0],
        mode=CrystfelMode(args.crystfel_mode),
        rate_hz=parse_rate_hz(args.rate),
        number_of_images=args.images,
        pool_size=args.pool,
        dtype=CrystfelDtype(args.crystfel_dtype),
        start_timeout_s=parse_duration_s(args.start_timeout, what="--start-timeout"),
        idle_timeout_s=None if idle is None else parse_duration_s(idle, what="--idle-timeout"),
        end_timeout_s=parse_duration_s(args.end_timeout, what="--end-timeout"),
        progress_interval_s=0.5 if sys.stderr.isatty() else 5.0,
    )


def _rows(summary: CrystfelSummary) -> dict[str, Any]:
    return {
        "endpoint": f"{summary.endpoint} ({summary.mode})",
        "images sent": f"{summary.images_sent} of {summary.images_requested}",
        "images dropped": summary.images_dropped,
        "requests": summary.requests,
        "rate": f"{summary.achieved_rate_hz:.1f} Hz",
        "gap mean / max": f"{summary.mean_gap_ms:.3f} / {summary.max_gap_ms:.3f} ms",
        "bytes sent": summary.bytes_sent,
        "duration": f"{summary.duration_s:.3f} s",
        "pool": f"{summary.pool_size} frames",
        "pixel type": summary.pixel_type,
        "stopped by": summary.stopped_by or "-",
    }


def run_crystfel(
    args: argparse.Namespace,
    source: FrameSource,
    status: StatusLine,
    stop_on_signals: Callable[[Any], AbstractContextManager[None]],
) -> int:
    """Serve CrystFEL until every image went out (or a stop); print the summary."""
    config = _config(args)

    def progress(state: CrystfelProgress) -> None:
        status.show(
            f"stream: {state.images_done}/{state.images_total} images  "
            f"{state.rate_hz:8.1f} Hz  dropped {state.images_dropped}"
        )

    server = CrystfelServer(config, source, on_progress=None if args.json else progress)
    server.prepare(None if args.json else status.counter("rendering pool", "frames"))
    status.done()
    endpoint = server.bind()  # '*' ports resolved: the line tells where to point CrystFEL
    wait_for = "a request" if config.mode is CrystfelMode.REP else "a subscriber"
    status.show(f"stream: waiting for {wait_for} on {endpoint}")
    with stop_on_signals(server):
        try:
            summary = server.run()
        finally:
            status.done()
    print_summary(_rows(summary), summary.to_dict(), as_json=args.json)
    stopped_early = summary.stopped_by is not None and summary.stopped_by not in (
        "SIGINT",
        "SIGTERM",
    )
    return EXIT_INCOMPLETE if summary.images_dropped or stopped_early else 0
