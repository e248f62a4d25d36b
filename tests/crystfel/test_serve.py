"""``jfsim stream --format crystfel`` over real loopback sockets, read with msgpack.

The REQ and SUB sides behave as indexamajig's ``--zmq-request=next`` and
``--zmq-subscribe=ondaframedata`` (seed 004): one request, one map; or two frames, the
topic and the map.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from jfsim.crystfel import DATA_KEY, DISTANCE_MM_KEY, PEAK_LIST_KEY, PHOTON_ENERGY_EV_KEY
from jfsim.recording import RecordingWriter
from jfsim.stream.crystfel import (
    PUB_TOPIC,
    CrystfelConfig,
    CrystfelMode,
    CrystfelServer,
    CrystfelSummary,
)
from jfsim.stream.errors import NoWriterError

from .conftest import ERROR_VALUE, SHAPE, crystfel_series

JFSIM = Path(sys.executable).with_name("jfsim")
WAITING = re.compile(r"^stream: waiting for a request on (\S+)$", re.MULTILINE)
TIMEOUT_MS = 60_000


class Serving:
    """A server running in a thread; ``result()`` joins it."""

    def __init__(self, server: CrystfelServer) -> None:
        self.server = server
        self.summary: CrystfelSummary | None = None
        self.error: BaseException | None = None
        self.endpoint = server.bind()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.summary = self.server.run()
        except BaseException as error:
            self.error = error

    def result(self) -> CrystfelSummary:
        self._thread.join(120)
        if self._thread.is_alive():
            self.server.request_stop("test timeout")
            self._thread.join(30)
            raise AssertionError("the server did not finish")
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary


def _serve(source, **config) -> Serving:
    config.setdefault("endpoint", "tcp://127.0.0.1:*")
    config.setdefault("start_timeout_s", 60.0)
    return Serving(CrystfelServer(CrystfelConfig(**config), source))


def _check_frame(frame: dict, image_id: int) -> None:
    assert frame["image_id"] == image_id
    image = frame[DATA_KEY]
    assert image["type"] == "<i4"
    assert image["shape"] == list(SHAPE)
    pixels = np.frombuffer(image["data"], dtype="<i4").reshape(image["shape"])
    assert (pixels[:, 32] == ERROR_VALUE).all()
    assert pixels[:, :32].min() >= 0
    assert frame[PHOTON_ENERGY_EV_KEY] == 12400.0
    assert frame[DISTANCE_MM_KEY] == pytest.approx(120.0)
    assert frame[PEAK_LIST_KEY] == {
        "fs": [image_id + 0.25],
        "ss": [3.0],
        "intensity": [100.0 + image_id],
    }


def test_rep_answers_each_request_with_one_map(crystfel_source) -> None:
    serving = _serve(crystfel_source, mode=CrystfelMode.REP)
    with zmq.Context() as context, context.socket(zmq.REQ) as request:
        request.setsockopt(zmq.LINGER, 0)
        request.connect(serving.endpoint)
        for image_id in range(5):
            request.send(b"next")
            assert request.poll(TIMEOUT_MS), "no reply"
            _check_frame(msgpack.unpackb(request.recv()), image_id)
    summary = serving.result()
    assert (summary.images_sent, summary.requests, summary.stopped_by) == (5, 5, None)


def test_rep_shares_images_between_workers(crystfel_source) -> None:
    """Two indexamajig workers (two REQ sockets): each image goes to exactly one."""
    serving = _serve(crystfel_source, mode=CrystfelMode.REP)
    seen: list[int] = []
    with zmq.Context() as context:
        workers = [context.socket(zmq.REQ) for _ in range(2)]
        for worker in workers:
            worker.setsockopt(zmq.LINGER, 0)
            worker.connect(serving.endpoint)
        for turn in range(5):
            worker = workers[turn % 2]
            worker.send(b"next")
            assert worker.poll(TIMEOUT_MS)
            seen.append(msgpack.unpackb(worker.recv())["image_id"])
        for worker in workers:
            worker.close()
    serving.result()
    assert sorted(seen) == [0, 1, 2, 3, 4]


def test_pub_publishes_topic_and_map_after_a_subscription(crystfel_source) -> None:
    serving = _serve(crystfel_source, mode=CrystfelMode.PUB, rate_hz=200.0)
    with zmq.Context() as context, context.socket(zmq.SUB) as subscriber:
        subscriber.setsockopt(zmq.LINGER, 0)
        subscriber.setsockopt(zmq.SUBSCRIBE, PUB_TOPIC)
        subscriber.connect(serving.endpoint)
        for image_id in range(5):
            assert subscriber.poll(TIMEOUT_MS), "nothing published"
            topic, payload = subscriber.recv_multipart()
            assert topic == b"ondaframedata"
            _check_frame(msgpack.unpackb(payload), image_id)
    summary = serving.result()
    assert summary.images_sent + summary.images_dropped == 5


def test_no_client_within_the_start_timeout_is_a_clear_error(crystfel_source) -> None:
    serving = _serve(crystfel_source, start_timeout_s=0.2)
    with pytest.raises(NoWriterError, match="--zmq-request=next"):
        serving.result()


def test_cli_serves_a_recording_and_prints_a_json_summary(tmp_path) -> None:
    recording = tmp_path / "series.cbors"
    with RecordingWriter(recording) as writer:
        for message in crystfel_series(3):
            writer.write(message)
    stderr_path = tmp_path / "stream.stderr"
    with stderr_path.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [
                str(JFSIM), "stream", "--format", "crystfel", "--recording", str(recording),
                "--endpoint", "tcp://127.0.0.1:*", "--start-timeout", "120s", "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )  # fmt: skip
    try:
        endpoint = _bound_endpoint(process, stderr_path)
        with zmq.Context() as context, context.socket(zmq.REQ) as request:
            request.setsockopt(zmq.LINGER, 0)
            request.connect(endpoint)
            for image_id in range(3):
                request.send(b"next")
                assert request.poll(120_000), "no reply from jfsim stream"
                _check_frame(msgpack.unpackb(request.recv()), image_id)
        stdout, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, stderr_path.read_text()
    summary = json.loads(stdout)
    assert summary["mode"] == "rep"
    assert summary["endpoint"] == endpoint
    assert summary["images_sent"] == 3
    assert summary["pixel_type"] == "<i4"


def _bound_endpoint(process: subprocess.Popen, stderr_path: Path) -> str:
    """The endpoint ``jfsim stream`` bound ('*' resolved), from its waiting line."""
    waiting = threading.Event()
    for _ in range(2400):
        found = WAITING.search(stderr_path.read_text(encoding="utf-8"))
        if found:
            return found.group(1)
        assert process.poll() is None, stderr_path.read_text()
        waiting.wait(0.05)
    raise AssertionError("jfsim stream --format crystfel did not bind")


def test_cli_refuses_options_of_the_jungfraujoch_stream(tmp_path) -> None:
    done = subprocess.run(
        [
            str(JFSIM), "stream", "--format", "crystfel", "--preset", "small-jf1m",
            "--preview", "tcp://127.0.0.1:5999",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--preview" in done.stderr and len(done.stderr.strip().splitlines()) == 1
