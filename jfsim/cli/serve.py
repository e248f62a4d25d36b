"""``jfsim serve``: answer jfjoch_broker's REST API and stream each ``/start`` as it asks."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jfsim.stream import OnSlow, parse_duration_s, parse_rate_hz

DEFAULT_HTTP = "127.0.0.1:5232"
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5500"
FRAME_TIME = "frame-time"
EXIT_DATA_LOST = 1

_EPILOG = """\
examples:
  jfsim serve                                  # broker API on http://127.0.0.1:5232, JF4M,
                                               # images to tcp://127.0.0.1:5500
  jfsim write -R /data -f 5601 tcp://127.0.0.1:5500 &
  jfsim serve --detector JF1M --writer-files tcp://127.0.0.1:5601

  then, from Python (pip install jfjoch-client):
    import jfjoch_client
    api = jfjoch_client.DefaultApi(jfjoch_client.ApiClient(
        jfjoch_client.Configuration(host="http://127.0.0.1:5232")))
    api.initialize_post(); api.wait_till_done_post(timeout=10)
    api.start_post(jfjoch_client.DatasetSettings(beam_x_pxl=515.5, beam_y_pxl=530.5,
        detector_distance_mm=100, incident_energy_keV=12.4, ntrigger=100,
        file_prefix="run1/lyso"))
    api.wait_till_done_post(timeout=60)

Each /start renders the experiment its DatasetSettings describe on --detector (a pool of
--pool frames, reused while the geometry stays the same) and streams start, images and end
to the --endpoint PUSH sockets, paced at the series' own frame time. With --writer-files,
/statistics reports the images the writers wrote and /wait_till_done waits for their
files. Ctrl-C or SIGTERM ends a running series with its end message, then stops.
exit status: 0, 1 if a series lost data (dropped images, missing files, an error),
2 bad options.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="answer jfjoch_broker's REST API (jfjoch-client) and stream what /start asks",
        description=(
            "Act as jfjoch_broker for a beamline control system: serve its REST API "
            "(initialize, start, cancel, wait, status, statistics, settings, image buffer, "
            "plots) over HTTP, and stream every series a /start describes as Jungfraujoch "
            "CBOR over ZeroMQ, like 'jfsim stream'."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--http",
        default=DEFAULT_HTTP,
        metavar="HOST:PORT",
        help=f"where the API listens (default {DEFAULT_HTTP}; port 0 = any free port)",
    )
    parser.add_argument(
        "--detector", default="JF4M", metavar="NAME", help="detector preset (default JF4M)"
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        metavar="ENDPOINT",
        help=f"image PUSH socket with a fixed port; repeatable (default {DEFAULT_ENDPOINT})",
    )
    parser.add_argument(
        "--preview", metavar="ENDPOINT", help="enable the preview PUB socket at this address"
    )
    parser.add_argument(
        "--metadata", metavar="ENDPOINT", help="enable the metadata PUB socket at this address"
    )
    parser.add_argument(
        "--writer-files",
        action="append",
        metavar="ENDPOINT",
        help="a writer's finalized-file PUB socket (jfsim write -f PORT, jfjoch_writer -f); "
        "repeat per writer",
    )
    parser.add_argument(
        "--writer-timeout",
        default="30s",
        metavar="DURATION",
        help="how long a series waits for the writers to announce its files (default 30s)",
    )
    parser.add_argument(
        "--rate",
        default=FRAME_TIME,
        help="images per second: frame-time (default: each series' image_time_us), "
        "a rate such as 2kHz, or max",
    )
    parser.add_argument(
        "--pool", type=int, default=32, metavar="K", help="distinct frames per series (default 32)"
    )
    parser.add_argument(
        "--device", default="auto", choices=("cpu", "gpu", "auto"), help="rendering engine"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of every series (default 1)")
    parser.add_argument(
        "--sndhwm", type=int, default=100, metavar="N", help="send high-water mark (default 100)"
    )
    parser.add_argument(
        "--on-slow",
        choices=[mode.value for mode in OnSlow],
        default=OnSlow.DROP.value,
        help="when a writer falls behind: drop (default, as jfjoch_broker) drops an image "
        "once the next is due; catch-up lets images wait and sends them late, dropping only "
        "those more than 1s behind the schedule; block waits for the writer",
    )
    parser.add_argument(
        "--start-timeout",
        default="5s",
        metavar="DURATION",
        help="wait this long for writers at each /start (default 5s); then Error",
    )
    parser.add_argument(
        "--end-timeout",
        default="5s",
        metavar="DURATION",
        help="after a series' last image, give up on a writer that took nothing (no queued "
        "image, nor the end message) for this long (default 5s)",
    )
    parser.add_argument(
        "--image-buffer",
        type=int,
        default=1000,
        metavar="N",
        help="images kept for /image_buffer (default 1000)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON at exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    parser.set_defaults(func=run)


@contextmanager
def _signals_absorbed() -> Iterator[None]:
    """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; let that one pass
    quietly so the summary is still printed (the series was already stopped)."""
    previous = {
        signum: signal.signal(signum, lambda *_: None) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'run':>5}  {'state':<10} {'sent':>8} {'dropped':>8} {'written':>8} {'of':>8}  prefix")
    for row in rows:
        written = "-" if row["images_written"] is None else row["images_written"]
        print(
            f"{row['run_number']:>5}  {row['state']:<10} {row['images_sent']:>8} "
            f"{row['images_dropped']:>8} {written:>8} {row['images_expected']:>8}  "
            f"{row['file_prefix']}"
        )
        if row["message"]:
            print(f"{'':>7}{row['message']}")


def _lost_data(row: dict[str, Any]) -> bool:
    written = row["images_written"]
    return (
        row["state"] == "error"
        or row["images_dropped"] > 0
        or (written is not None and written < row["images_sent"])
    )


def run(args: argparse.Namespace) -> int:
    from jfsim.serve import (
        BrokerService,
        ServeConfig,
        StreamOptions,
        bind_http,
        parse_http_address,
        run_server,
    )

    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="jfsim serve: %(message)s",
        stream=sys.stderr,
    )
    rate = None if args.rate == FRAME_TIME else parse_rate_hz(args.rate)
    options = StreamOptions(
        endpoints=tuple(args.endpoint or (DEFAULT_ENDPOINT,)),
        rate_hz=rate,
        unpaced=args.rate.strip().lower() == "max",
        pool_size=args.pool,
        sndhwm=args.sndhwm,
        on_slow=OnSlow(args.on_slow),
        start_timeout_s=parse_duration_s(args.start_timeout, what="--start-timeout"),
        end_timeout_s=parse_duration_s(args.end_timeout, what="--end-timeout"),
        writer_timeout_s=parse_duration_s(args.writer_timeout, what="--writer-timeout"),
        device=args.device,
        seed=args.seed,
    )
    config = ServeConfig(
        detector=args.detector,
        stream=options,
        preview_endpoint=args.preview,
        metadata_endpoint=args.metadata,
        writer_file_endpoints=tuple(args.writer_files or ()),
        image_buffer_slots=args.image_buffer,
    )
    host, port = parse_http_address(args.http)
    sock = bind_http(host, port)
    service = BrokerService(config)
    bound_host, bound_port = sock.getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(
        f"jfsim serve: broker API on http://{shown_host}:{bound_port} (detector "
        f"{args.detector}; images to {', '.join(options.endpoints)}); Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    with _signals_absorbed():
        run_server(service, sock)
    rows = [collection.row() for collection in service.collections]
    if args.json:
        print(json.dumps({"series": rows}, indent=2))
    else:
        _print_table(rows)
    return EXIT_DATA_LOST if any(_lost_data(row) for row in rows) else 0
