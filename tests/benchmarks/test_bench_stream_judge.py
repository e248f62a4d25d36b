"""``jfconform stream`` judging a JUNGFRAU 4M stream at ``--rate max``, as a ratio.

Run: ``.venv/bin/python -m pytest -m benchmark --benchmark-enable -s
tests/benchmarks/test_bench_stream_judge.py``.

The same streamer (``--rate max``, ``--on-slow block``, so every image is delivered and the
receiver sets the pace) sends ``JUDGE_IMAGES`` bslz4 JF4M frames to, in turn:

* a plain PULL receiver in its own process that only counts (the baseline),
* ``jfconform stream ENDPOINT --json`` (the console script, its own process),
* ``jfconform stream ENDPOINT --decompress --json``.

Each rate is images per second between the first and the last image as the receiver saw
them; the figure is judge / baseline (goal >= 0.5 without decompression). Two frame kinds:
pixels only, and pixels plus 250 spots per image (what ``jfsim stream --preset ...`` sends).
Each side runs twice, alternating; the ranges are reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jfsim.protocol import Message
from jfsim.stream import MessageListSource, OnSlow, StreamConfig, Streamer

from .test_bench_stream import POOL_FRAMES, _detector_series, _receiver_result, _start_receiver

pytestmark = pytest.mark.benchmark

JUDGE_IMAGES = int(os.environ.get("JFSIM_BENCH_JUDGE_IMAGES", "3000"))
JFCONFORM = Path(sys.executable).with_name("jfconform")
SPOTS = [{"x": float(i), "y": 2.5 * i, "I": 100.0 + i, "indexed": False} for i in range(250)]


def _with_spots(series: list[Message]) -> list[Message]:
    return [
        Message("image", {**m.fields, "spots": SPOTS, "spot_count": 250}) if m.type == "image"
        else m
        for m in series
    ]  # fmt: skip


def _stream_to(series: list[Message], start_consumer) -> object:
    streamer = Streamer(
        StreamConfig(
            endpoints=("tcp://127.0.0.1:*",),
            pool_size=POOL_FRAMES,
            rate_hz=None,
            number_of_images=JUDGE_IMAGES,
            on_slow=OnSlow.BLOCK,
            start_timeout_s=120.0,
            send_timeout_s=120.0,
        ),
        MessageListSource(series, description="JF4M synthetic"),
    )
    streamer.prepare()
    (endpoint,) = streamer.bind()
    consumer = start_consumer(endpoint)
    summary = streamer.run()
    assert summary.images_sent == JUDGE_IMAGES
    return consumer


def _baseline_hz(series: list[Message]) -> float:
    result = _receiver_result(_stream_to(series, _start_receiver))
    assert result["images"] == JUDGE_IMAGES
    return (result["images"] - 1) / result["seconds"]


def _judge_hz(series: list[Message], *options: str) -> float:
    def start(endpoint: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(JFCONFORM), "stream", endpoint, "--json", "--timeout", "120s", *options],
            stdout=subprocess.PIPE,
            text=True,
        )

    judge = _stream_to(series, start)
    stdout, _ = judge.communicate(timeout=900)
    report = json.loads(stdout)
    assert judge.returncode == 0, report["findings"][:3]
    assert report["stream"]["by_type"]["image"] == JUDGE_IMAGES
    return report["stream"]["image_rate_hz"]


@pytest.fixture(scope="module")
def jf4m_frames() -> list[Message]:
    return _detector_series("JF4M", POOL_FRAMES)


@pytest.mark.parametrize("spots", [False, True], ids=["pixels", "pixels+250-spots"])
def test_judge_rate_against_a_counting_receiver(benchmark, jf4m_frames, spots: bool) -> None:
    series = _with_spots(jf4m_frames) if spots else jf4m_frames

    def measure() -> dict:
        runs: dict[str, list[float]] = {"baseline": [], "judge": [], "judge_decompress": []}
        for _ in range(2):
            runs["baseline"].append(_baseline_hz(series))
            runs["judge"].append(_judge_hz(series))
            runs["judge_decompress"].append(_judge_hz(series, "--decompress"))
        return runs

    runs = benchmark.pedantic(measure, rounds=1, iterations=1)
    figures = {
        "images": JUDGE_IMAGES,
        "baseline_hz": [round(v, 1) for v in runs["baseline"]],
        "judge_hz": [round(v, 1) for v in runs["judge"]],
        "judge_decompress_hz": [round(v, 1) for v in runs["judge_decompress"]],
        "ratio": [round(j / b, 3) for j, b in zip(runs["judge"], runs["baseline"], strict=True)],
        "ratio_decompress": [
            round(j / b, 3) for j, b in zip(runs["judge_decompress"], runs["baseline"], strict=True)
        ],
        "load_average_1min": os.getloadavg()[0],
    }
    benchmark.extra_info.update(figures)
    print(f"\njudge ({'with' if spots else 'without'} spots): {json.dumps(figures)}")
    assert min(figures["ratio"]) > 0
