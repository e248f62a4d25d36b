"""``jfsim serve``: /start latency, /status throughput while streaming, cost of polling.

Run: ``.venv/bin/python -m pytest -m benchmark --benchmark-enable -s
tests/benchmarks/test_bench_serve.py``; ``JFSIM_BENCH_SERVE_SECONDS`` sets the length of each
streaming run (default 5 s). ``jfsim serve`` runs as a subprocess (JF4M, pool of 8 frames),
driven through jfjoch-client, as a beamline would.

* latency: ``/start`` request to the first image on a PULL socket, cold (the pool is
  rendered) and warm (the pool is reused), over the same measure for ``jfsim.stream`` used
  as a library with its pool prepared beforehand (baseline, same run).
* ``/status`` requests per second from one client while JF4M streams at 2 kHz, over the
  rate when the broker is idle (same run).
* polling cost, two ways (goal: < 1 %): the stream's rate as received (own process,
  ``--on-slow block``) with ``/status`` polled at 10 Hz over the rate without polling
  (three runs of each, alternated, best of each: sensitive to the machine's load); and the
  server CPU that 10 requests/s take (CPU per request, from /proc, times 10) over the CPU
  the server spends per second streaming.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jfjoch_client as jc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "serve"))

from serve_helpers import Puller, ServeProcess, free_ports
from test_bench_stream import _receiver_result, _start_receiver

from jfsim.experiment import experiment_from_broker_settings
from jfsim.stream import StreamConfig, Streamer
from jfsim.stream.experiment_source import ExperimentSource

pytestmark = pytest.mark.benchmark

SECONDS = float(os.environ.get("JFSIM_BENCH_SERVE_SECONDS", "5"))
RATE_HZ = 2000
POOL = 8
POLL_HZ = 10
ROUNDS = 3
LATENCY_IMAGES = 20
BODY = {
    "beam_x_pxl": 1090.0,
    "beam_y_pxl": 1100.0,
    "detector_distance_mm": 100.0,
    "incident_energy_keV": 12.4,
    "image_time_us": 1_000_000 // RATE_HZ,
}


def _first_image_after(puller: Puller, start: Callable[[], object]) -> float:
    """Seconds from calling ``start`` to the first image message on ``puller``."""
    arrived: list[float] = []

    def receive() -> None:
        while b"\x64type\x65image" not in puller.receive()[:16]:
            pass
        arrived.append(time.monotonic())

    thread = threading.Thread(target=receive)
    thread.start()
    t0 = time.monotonic()
    start()
    thread.join(timeout=600)
    return arrived[0] - t0


def _drain_until_end(puller: Puller) -> None:
    while b"\x64type\x63end" not in puller.receive()[:16]:
        pass


def _library_latency_s(endpoint: str, puller: Puller) -> float:
    """Baseline: the streamer as a library, pool prepared, ``run()`` to the first image."""
    experiment = experiment_from_broker_settings(
        BODY | {"ntrigger": LATENCY_IMAGES, "file_prefix": "bench"}, detector="JF4M"
    )
    streamer = Streamer(
        StreamConfig(endpoints=(endpoint,), rate_hz=RATE_HZ, pool_size=POOL),
        ExperimentSource(experiment),
    )
    streamer.prepare()
    runner: list[threading.Thread] = []

    def start() -> None:
        runner.append(threading.Thread(target=streamer.run))
        runner[0].start()

    latency = _first_image_after(puller, start)
    _drain_until_end(puller)
    runner[0].join()
    return latency


def _series(api: jc.DefaultApi, n_images: int, prefix: str) -> None:
    api.start_post(jc.DatasetSettings(**BODY, ntrigger=n_images, file_prefix=prefix))


def test_start_latency_status_rate_and_polling_cost(benchmark):
    image_port, stream_port = free_ports(2)
    latency_endpoint = f"tcp://127.0.0.1:{image_port}"
    serve = ServeProcess("--detector", "JF4M", "--pool", str(POOL), "--endpoint", latency_endpoint)
    api = serve.api
    api.initialize_post()

    def measure() -> dict:
        figures: dict = {"seconds_per_run": SECONDS, "load_average_1min": os.getloadavg()[0]}
        puller = Puller(latency_endpoint)
        try:
            cold = _first_image_after(puller, lambda: _series(api, LATENCY_IMAGES, "cold"))
            _drain_until_end(puller)
            api.wait_till_done_post(timeout=60)
            warm = []
            for round_ in range(3):
                warm.append(
                    _first_image_after(
                        puller, lambda r=round_: _series(api, LATENCY_IMAGES, f"warm{r}")
                    )
                )
                _drain_until_end(puller)
                api.wait_till_done_post(timeout=60)
        finally:
            puller.close()
        serve_stopped = serve.stop()
        assert serve_stopped[0] == 0, serve_stopped[2]
        puller = Puller(latency_endpoint)
        try:
            library = [_library_latency_s(latency_endpoint, puller) for _ in range(3)]
        finally:
            puller.close()
        figures |= {
            "start_cold_ms": cold * 1e3,
            "start_warm_ms": [w * 1e3 for w in warm],
            "library_run_ms": [b * 1e3 for b in library],
            "warm_over_library": statistics.median(warm) / statistics.median(library),
        }
        figures |= _streaming_figures(f"tcp://127.0.0.1:{stream_port}")
        return figures

    figures = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    print(f"\nserve: {json.dumps(figures)}")
    assert figures["status_rate_idle_hz"] > 0


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_flood(api: jc.DefaultApi, pid: int, seconds: float) -> tuple[float, float]:
    """/status as fast as one client can while idle: (requests/s, server CPU ms/request)."""
    requests, cpu0, t0 = 0, _cpu_s(pid), time.monotonic()
    while time.monotonic() - t0 < seconds:
        api.status_get()
        requests += 1
    elapsed = time.monotonic() - t0
    return requests / elapsed, (_cpu_s(pid) - cpu0) * 1e3 / requests


def _streaming_figures(endpoint: str) -> dict:
    """JF4M at 2 kHz: received rate with and without 10 Hz polling, /status rate.

    ``--on-slow block``: every image is delivered, so the rate is what broker, transport
    and receiver sustain together on this machine, and any cost of polling shows in it."""
    serve = ServeProcess(
        "--detector", "JF4M", "--pool", str(POOL), "--endpoint", endpoint, "--on-slow", "block"
    )
    api = serve.api
    api.initialize_post()
    n_images = int(RATE_HZ * SECONDS)
    pid = serve.process.pid
    rates: dict[str, list[float]] = {"quiet": [], "polled": []}
    status_busy: list[float] = []
    stream_cpu: list[float] = []  # serve's CPU seconds per second while streaming

    def run(prefix: str, poll_hz: float | None) -> float:
        receiver = _start_receiver(endpoint)
        done = threading.Event()
        polls = [0]

        def poll() -> None:
            while not done.is_set():
                api.status_get()
                polls[0] += 1
                if poll_hz:
                    done.wait(1.0 / poll_hz)

        poller = threading.Thread(target=poll) if poll_hz is not None else None
        started, cpu0 = time.monotonic(), _cpu_s(pid)
        _series(api, n_images, prefix)
        if poller is not None:
            poller.start()
        result = _receiver_result(receiver)
        done.set()
        if poller is not None:
            poller.join()
            if not poll_hz:
                status_busy.append(polls[0] / (time.monotonic() - started))
        if poll_hz is None:
            stream_cpu.append((_cpu_s(pid) - cpu0) / (time.monotonic() - started))
        api.wait_till_done_post(timeout=600)
        return (result["images"] - 1) / result["seconds"]

    try:
        idle_before = _status_flood(api, pid, 2.0)
        run("warmup", None)  # renders the pool
        for round_ in range(ROUNDS):
            rates["quiet"].append(run(f"quiet{round_}", None))
            rates["polled"].append(run(f"polled{round_}", POLL_HZ))
        run("flood", 0)  # /status as fast as one client can
        idle_after = _status_flood(api, pid, 2.0)
    finally:
        status, _, log = serve.stop()
    assert status == 0, log
    quiet, polled = max(rates["quiet"]), max(rates["polled"])
    status_idle = max(idle_before[0], idle_after[0])
    cpu_ms_per_request = min(idle_before[1], idle_after[1])
    stream_cpu_per_s = statistics.median(stream_cpu[1:])
    return {
        "rate_quiet_hz": rates["quiet"],
        "rate_polled_10hz_hz": rates["polled"],
        "polling_cost_rate": 1.0 - polled / quiet,
        "status_cpu_ms_per_request": cpu_ms_per_request,
        "serve_cpu_s_per_s_streaming": stream_cpu_per_s,
        "polling_cpu_fraction_of_core": POLL_HZ * cpu_ms_per_request / 1e3,
        "polling_cost_cpu": POLL_HZ * cpu_ms_per_request / 1e3 / stream_cpu_per_s,
        "status_rate_streaming_hz": status_busy[0],
        "status_rate_idle_hz": status_idle,
        "status_streaming_over_idle": status_busy[0] / status_idle,
    }
