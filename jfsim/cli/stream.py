"""``jfsim stream``: stream a series as Jungfraujoch CBOR over ZeroMQ PUSH, at a paced rate."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jfsim.cli._crystfel_stream import add_crystfel_options, run_crystfel
from jfsim.cli._experiment_options import add_experiment_options, experiment_from_options
from jfsim.cli._summary import print_summary
from jfsim.stream import (
    DEFAULT_ENDPOINT,
    DEFAULT_MAX_LAG_S,
    DEFAULT_SNDHWM,
    OnSlow,
    StreamConfig,
    Streamer,
    StreamProgress,
    StreamSummary,
    parse_duration_s,
    parse_rate_hz,
    recording_source,
)
from jfsim.stream.crystfel import DEFAULT_CRYSTFEL_ENDPOINT
from jfsim.stream.errors import StreamOptionError
from jfsim.stream.sources import FrameSource

EXIT_INCOMPLETE = 1

_EPILOG = """\
examples:
  jfsim stream --preset lysozyme-rotation-jf4m --rate 2kHz --images 20000 \\
      --truth-out run_truth.h5
      renders a pool of 32 frames, waits for a writer on this machine (jfsim write
      tcp://127.0.0.1:5500), then sends start, 20000 images at 2 kHz (image k: frame
      k mod 32), and end; writes the ground truth of what was sent for
      jfconform check --truth
  jfsim stream --preset lysozyme-rotation-jf4m --endpoint tcp://0.0.0.0:5500
      the same for writers on other machines (jfsim write tcp://THIS-HOST:5500)
  jfsim stream --recording run1.cbors --rate max --json
      replays every recorded image, in order, from the file
  jfsim stream --preset small-jf1m --endpoint tcp://127.0.0.1:5500 \\
      --endpoint tcp://127.0.0.1:5501 --preview tcp://127.0.0.1:5600 \\
      --metadata tcp://127.0.0.1:5601
  jfsim stream --format crystfel --preset lysozyme-stills-jf4m --endpoint tcp://127.0.0.1:5002
      answers each indexamajig request with one MessagePack frame; pair it with
      jfsim geometry --crystfel lysozyme-stills-jf4m -o run.geom and
      indexamajig --zmq-input=tcp://127.0.0.1:5002 --zmq-request=next -g run.geom ...

Images beyond the distinct frames (--images larger than the recording, or than --pool)
repeat frames; the run says so before it starts, and each repeat carries the pixels and
analysis fields of the frame it repeats, with its own id and timing.

Every socket binds exactly the address given; the default endpoint is loopback only.
The endpoints are bound before the frame pool is rendered, so a busy port fails at once.

Writers connect PULL sockets to the endpoints; with several endpoints each gets whole data
files (file number modulo sockets) and all get start and end. A writer that stalls first
fills the send queue (--sndhwm images); then, with --on-slow catch-up (default), images
wait and are sent back to back once it reads again, until the stream is on schedule:
only an image more than --max-lag (1s) behind its slot is dropped. --on-slow drop keeps
the schedule instead (as jfjoch_broker: an image without room is dropped once the next is
due); --on-slow block never drops and slows the stream. Dropped images are counted, named
on stderr and give exit status 1. Ctrl-C or SIGTERM stops early and still sends the end
message.

After the last image the stream waits until the end message and every image queued before
it have left ZeroMQ for the writers (handed to the connection), however long a slow writer
takes, as long as it keeps taking them: only when a writer takes nothing for --end-timeout
(5s) are the images still queued for it given up, counted as lost (exit status 1, one line
on stderr). Ctrl-C during that wait gives it up at once, likewise counted.
exit status: 0 complete (or stopped on request), 1 images dropped, images or the end message
lost in the send queue, or a stalled writer; 2 bad options or no writer.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stream",
        help="stream a series over ZeroMQ at kHz rates (jfjoch_broker image stream)",
        description=(
            "Act as jfjoch_broker's image stream: bind PUSH sockets, send the start message "
            "once a writer is connected, then the images on an absolute schedule, then the "
            "end message. A recording is replayed image by image from its file; an "
            "experiment is rendered into a pool of K pre-compressed frames reused in turn "
            "(each message keeps its own image id and timing), so the rate is limited by the "
            "transport, not by rendering."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    add_experiment_options(parser, source)
    source.add_argument(
        "--recording", metavar="FILE.cbors", help="replay the images of a recording"
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        metavar="ENDPOINT",
        help=f"image PUSH socket to bind; repeat for several (default {DEFAULT_ENDPOINT}, "
        "loopback only; tcp://0.0.0.0:PORT for writers on other machines; with --format "
        f"crystfel one REP/PUB socket, default {DEFAULT_CRYSTFEL_ENDPOINT})",
    )
    add_crystfel_options(parser)
    parser.add_argument(
        "--rate",
        default="2kHz",
        help="images per second: 2kHz (default), 500Hz, 2000, 1.5kHz or max",
    )
    parser.add_argument(
        "--images", type=int, metavar="N", help="images to send (default: the source's number)"
    )
    parser.add_argument(
        "--pool",
        type=int,
        metavar="K",
        help="distinct frames: --preset/--experiment render K (default 32); --recording "
        "replays every recorded image unless K keeps only the first K",
    )
    parser.add_argument(
        "--truth-out",
        type=Path,
        metavar="PREFIX_truth.h5",
        help="with --preset/--experiment: write the ground truth of the images as streamed "
        "(image k = frame k mod K), for jfconform check --truth",
    )
    parser.add_argument(
        "--keep-arm-date",
        action="store_true",
        help="with --recording: keep the recorded arm_date and end_date (default: stamp "
        "both at replay time)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("cpu", "gpu", "auto"),
        help="engine rendering the pool for --preset/--experiment (default auto)",
    )
    parser.add_argument(
        "--sndhwm",
        type=int,
        default=DEFAULT_SNDHWM,
        metavar="N",
        help=f"images queued per socket before a slow writer makes the next one wait "
        f"(default {DEFAULT_SNDHWM}; each queued image holds one frame's memory, made "
        "before the stream starts)",
    )
    parser.add_argument(
        "--on-slow",
        choices=[mode.value for mode in OnSlow],
        default=OnSlow.CATCH_UP.value,
        help="when a writer's queue is full: catch-up (default) waits for room, then sends "
        "the late images back to back until on schedule, dropping (and counting) only "
        "images more than --max-lag late; drop (as jfjoch_broker) keeps the schedule and "
        "drops an image once the next one is due; block waits for the writer (stop if it "
        "stalls longer than --send-timeout)",
    )
    parser.add_argument(
        "--max-lag",
        metavar="DURATION",
        help=f"with catch-up: how far behind its slot an image may still be sent "
        f"(default {DEFAULT_MAX_LAG_S:g}s; a writer stall this long beyond the send queue "
        "loses nothing, and the stream ends at most this late)",
    )
    parser.add_argument(
        "--send-timeout",
        metavar="DURATION",
        help="longest wait of one image for a writer: with block (default 10s), and with "
        "catch-up or drop at --rate max (default 1s)",
    )
    parser.add_argument(
        "--start-timeout", default="5s", metavar="DURATION", help="wait for writers (default 5s)"
    )
    parser.add_argument(
        "--end-timeout",
        default="5s",
        metavar="DURATION",
        help="after the last image, wait for the writers to take the queued images and the "
        "end message as long as they keep taking them; give up (and count what is still "
        "queued as lost) once a writer took nothing for this long (default 5s)",
    )
    parser.add_argument("--preview", metavar="ENDPOINT", help="bind a preview PUB socket")
    parser.add_argument(
        "--preview-period",
        default="1s",
        metavar="DURATION",
        help="one preview image per period (default 1s)",
    )
    parser.add_argument("--metadata", metavar="ENDPOINT", help="bind a metadata PUB socket")
    parser.add_argument(
        "--metadata-period",
        default="1s",
        metavar="DURATION",
        help="one metadata message per period (default 1s)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def _source(args: argparse.Namespace, progress: Callable[[int, int], None] | None) -> FrameSource:
    """The source the options name; ``progress`` sees (bytes, total) while a recording is
    indexed."""
    if args.recording:
        if args.truth_out is not None:
            raise StreamOptionError(
                "--truth-out: only with --preset/--experiment/--broker-settings; a recording's "
                "truth is the PREFIX_truth.h5 that jfsim simulate wrote beside it"
            )
        return recording_source(args.recording, keep_dates=args.keep_arm_date, on_progress=progress)
    if args.keep_arm_date:
        raise StreamOptionError("--keep-arm-date: only with --recording (a dated recording)")
    if args.truth_out is not None and not args.truth_out.parent.is_dir():
        raise StreamOptionError(
            f"--truth-out {args.truth_out}: folder {args.truth_out.parent} does not exist; "
            "create it or choose another path"
        )
    from jfsim.stream.experiment_source import ExperimentSource

    return ExperimentSource(experiment_from_options(args), device=args.device)


def _config(args: argparse.Namespace) -> StreamConfig:
    send_timeout = (
        None
        if args.send_timeout is None
        else parse_duration_s(args.send_timeout, what="--send-timeout")
    )
    on_slow = OnSlow(args.on_slow)
    max_lag_s = DEFAULT_MAX_LAG_S
    if args.max_lag is not None:
        if on_slow is not OnSlow.CATCH_UP:
            raise StreamOptionError(
                f"--max-lag: only with --on-slow catch-up (--on-slow {on_slow.value} "
                "never sends a late image); drop --max-lag or use --on-slow catch-up"
            )
        max_lag_s = parse_duration_s(args.max_lag, what="--max-lag")
    return StreamConfig(
        endpoints=tuple(args.endpoint or (DEFAULT_ENDPOINT,)),
        rate_hz=parse_rate_hz(args.rate),
        number_of_images=args.images,
        pool_size=args.pool,
        sndhwm=args.sndhwm,
        on_slow=on_slow,
        max_lag_s=max_lag_s,
        send_timeout_s=send_timeout,
        start_timeout_s=parse_duration_s(args.start_timeout, what="--start-timeout"),
        end_timeout_s=parse_duration_s(args.end_timeout, what="--end-timeout"),
        preview_endpoint=args.preview,
        preview_period_s=parse_duration_s(args.preview_period, what="--preview-period"),
        metadata_endpoint=args.metadata,
        metadata_period_s=parse_duration_s(args.metadata_period, what="--metadata-period"),
        progress_interval_s=0.5 if sys.stderr.isatty() else 5.0,
    )


class _StatusLine:
    """Progress on stderr: one rewritten line on a terminal, short separate lines otherwise."""

    def __init__(self) -> None:
        self.interactive = sys.stderr.isatty()
        self._open = False

    def show(self, text: str) -> None:
        if self.interactive:
            print(f"\r\x1b[K{text}", end="", file=sys.stderr, flush=True)
            self._open = True
        else:
            print(text, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self._open:
            print(file=sys.stderr, flush=True)
            self._open = False

    def counter(self, what: str, unit: str) -> Callable[[int, int], None]:
        """A progress callback (done, total) shown at most twice a second on a terminal,
        every 5 s otherwise, and at the end: ``stream: {what} {done}/{total} {unit}``."""
        last_shown = [0.0]

        def show(done: int, total: int) -> None:
            now = time.monotonic()
            if done == total or now - last_shown[0] >= (0.5 if self.interactive else 5.0):
                last_shown[0] = now
                self.show(f"stream: {what} {done}/{total} {unit}")

        return show

    def stream(self, progress: StreamProgress) -> None:
        if progress.images_queued_at_end is not None:
            self.show(
                f"stream: {progress.images_done}/{progress.images_total} images done; "
                f"waiting for the writers to take the last {progress.images_queued_at_end} "
                "queued and the end message"
            )
            return
        self.show(
            f"stream: {progress.images_done}/{progress.images_total} images  "
            f"{progress.rate_hz:8.1f} Hz  {progress.bytes_per_s / 1e9:5.2f} GB/s  "
            f"dropped {progress.images_dropped}"
        )


@contextmanager
def _stop_on_signals(streamer: Streamer) -> Iterator[None]:
    """SIGINT and SIGTERM end the image loop; the end message and summary still follow."""
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(
            signum, lambda number, _frame: streamer.request_stop(signal.Signals(number).name)
        )
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _rows(summary: StreamSummary, config: StreamConfig) -> dict[str, Any]:
    target = "max" if summary.target_rate_hz is None else f"{summary.target_rate_hz:g} Hz"
    lag = f"{summary.max_lag_ms:.3f} ms"
    if config.on_slow is OnSlow.CATCH_UP and config.rate_hz is not None:
        lag += f" (--max-lag {config.max_lag_s:g} s)"
    return {
        "endpoints": ", ".join(summary.endpoints),
        "images sent": f"{summary.images_sent} of {summary.images_requested}",
        "images dropped": summary.images_dropped,
        "sends that waited": summary.sends_blocked,
        "images per socket": " / ".join(str(n) for n in summary.images_per_socket),
        "rate": f"{summary.achieved_rate_hz:.1f} Hz (target {target})",
        "gap mean / p99 / max": (
            f"{summary.mean_gap_ms:.3f} / {summary.p99_gap_ms:.3f} / {summary.max_gap_ms:.3f} ms"
        ),
        "bytes sent": f"{summary.bytes_sent} ({summary.gbytes_per_s:.3f} GB/s)",
        "duration": f"{summary.duration_s:.3f} s",
        "max lag behind schedule": lag,
        "pool": f"{summary.pool_size} frames",
        "repeated images": summary.repeated_images,
        "images lost in send queue": summary.images_lost_in_queue,
        "writers that left mid-series": _departures(summary),
        "end delivered": " / ".join("yes" if ok else "NO" for ok in summary.end_delivered),
        "end wait": f"{summary.end_wait_s:.3f} s"
        + (f" (given up: {summary.end_given_up_by})" if summary.end_given_up_by else ""),
        "preview / metadata messages": f"{summary.preview_messages} / {summary.metadata_messages}",
        "stopped by": summary.stopped_by or "-",
    }


def _departures(summary: StreamSummary) -> str:
    """The summary row of writers that disconnected during the series."""
    departed = sum(summary.writer_disconnects)
    if not departed:
        return "0"
    return f"{departed} (about {summary.images_lost_on_disconnect} images lost with them)"


def _departure_advice(summary: StreamSummary, bound: list[str]) -> str:
    """One line on stderr naming the sockets whose writer left during the series."""
    left = [
        endpoint
        for endpoint, departed in zip(bound, summary.writer_disconnects, strict=True)
        if departed
    ]
    return (
        f"a writer disconnected from {', '.join(left)} during the series; ZeroMQ discards what "
        f"was queued for it (about {summary.images_lost_on_disconnect} images): check that "
        "writer's log and its summary of missing images"
    )


def _drop_advice(summary: StreamSummary, config: StreamConfig) -> str:
    """One line on stderr saying that images were lost, why, and what to change."""
    lost = f"{summary.images_dropped} of {summary.images_requested} images dropped"
    if config.rate_hz is None:
        why = f"a writer took none for --send-timeout {config.effective_send_timeout_s:g} s"
        hint = "check the writer or use --on-slow block"
    elif config.on_slow is OnSlow.DROP:
        why = "a writer had no room for them when the next image was due (--on-slow drop)"
        hint = "use --on-slow catch-up (default) or block"
    else:
        why = f"a writer fell more than --max-lag {config.max_lag_s:g} s behind the schedule"
        hint = "raise --max-lag or --sndhwm, lower --rate, or use --on-slow block"
    return f"{lost}: {why}; {hint}"


def _end_advice(summary: StreamSummary, config: StreamConfig, bound: list[str]) -> str:
    """One line on stderr saying what the end wait gave up, why, and what to do
    (``bound``: the image endpoints as bound, ports resolved)."""
    lost_end = [
        endpoint for endpoint, ok in zip(bound, summary.end_delivered, strict=True) if not ok
    ]
    what, verb, pronoun = "the end message", "is", "it was"
    if summary.images_lost_in_queue:
        what = (
            f"{summary.images_lost_in_queue} of {summary.images_requested} images and the end "
            "message"
        )
        verb, pronoun = "are", "they were"
    if summary.end_given_up_by == "end-timeout":
        why = f"its writer took nothing for --end-timeout {config.end_timeout_s:g} s"
        hint = "check the writer, raise --end-timeout, or lower --sndhwm"
    else:
        why = f"the wait for its writer was given up ({summary.end_given_up_by})"
        hint = "let the wait finish next time, or check the writer"
    return (
        f"{what} {verb} lost: {pronoun} still queued for {', '.join(lost_end)} when {why}; {hint}"
    )


def run(args: argparse.Namespace) -> int:
    if args.format == "crystfel":
        return run_crystfel(args, _source(args, None), _StatusLine(), _stop_on_signals)
    config = _config(args)
    status = _StatusLine()
    indexing = status.counter("indexing the recording", "%")
    source = _source(
        args, None if args.json else lambda done, total: indexing(100 * done // total, 100)
    )
    status.done()
    streamer = Streamer(config, source, on_progress=None if args.json else status.stream)
    bound = streamer.bind()  # a busy port fails now, not after rendering; '*' ports resolved
    try:
        streamer.prepare(None if args.json else status.counter("rendering pool", "frames"))
    except BaseException:
        streamer.close()
        raise
    status.done()
    announcement = streamer.frame_reuse.announcement()
    if announcement is not None:
        print(f"stream: {announcement}", file=sys.stderr, flush=True)
    status.show(f"stream: waiting for writers on {', '.join(bound)}")
    with _stop_on_signals(streamer):
        try:
            summary = streamer.run()
        finally:
            status.done()
    document = summary.to_dict()
    rows = _rows(summary, config)
    if args.truth_out is not None:
        from jfsim.stream.experiment_source import ExperimentSource

        assert isinstance(source, ExperimentSource)  # _source refuses --truth-out otherwise
        streamed = summary.images_sent + summary.images_dropped
        progress = None if args.json else status.counter("writing the truth of", "images")
        path = source.write_truth(args.truth_out, streamed, progress)
        status.done()
        document["truth_file"] = rows["truth file"] = str(path)
    print_summary(rows, document, as_json=args.json)
    if summary.images_dropped:
        print(f"stream: {_drop_advice(summary, config)}", file=sys.stderr, flush=True)
    if not all(summary.end_delivered):
        print(f"stream: {_end_advice(summary, config, bound)}", file=sys.stderr, flush=True)
    if any(summary.writer_disconnects):
        print(f"stream: {_departure_advice(summary, bound)}", file=sys.stderr, flush=True)
    stalled = summary.stopped_by is not None and summary.stopped_by not in ("SIGINT", "SIGTERM")
    lost = summary.images_dropped or summary.images_lost_in_queue or any(summary.writer_disconnects)
    if lost or not all(summary.end_delivered) or stalled:
        return EXIT_INCOMPLETE
    return 0
