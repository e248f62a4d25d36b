"""The writer service over real sockets, in-process: receive, write, notify, republish, HTTP."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 - bitshuffle for reading images
import numpy as np
import pytest
import zmq
from writer_helpers import check_analysis, make_series, tiny_experiment, tree

from jfsim.protocol import Message, PixelArray, encode
from jfsim.writer import FileFormat, WriterConfig, WriterError, WriterService

RECEIVE_TIMEOUT_MS = 10_000


class RunningService:
    """A WriterService looping in a thread; ``join`` returns its series summaries."""

    def __init__(self, config: WriterConfig, **run_kwargs) -> None:
        self.service = WriterService(config)
        self.summaries: list = []
        self.thread = threading.Thread(target=self._run, kwargs=run_kwargs, daemon=True)
        self.thread.start()

    def _run(self, **run_kwargs) -> None:
        self.summaries = self.service.run(**run_kwargs)

    def join(self, timeout_s: float = 30.0) -> list:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "writer service did not finish in time"
        self.service.close()
        return self.summaries

    def http(self, method: str, path: str) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.service.http_port}{path}", method=method
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def wait_for(predicate, timeout_s: float = 10.0) -> None:
    """Poll ``predicate`` every 20 ms (a condition, not a sleep) until true or time out."""
    event = threading.Event()
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        event.wait(0.02)
    raise AssertionError("condition not reached in time")


def config(endpoint: str, root: Path, **kwargs) -> WriterConfig:
    return WriterConfig(endpoint=endpoint, root_dir=root, bind_host="127.0.0.1", **kwargs)


@pytest.mark.parametrize("file_format", ["legacy", "vds", "integrated"])
def test_series_over_zeromq_is_written_bit_identical(tmp_path, sender, file_format):
    series = make_series(tiny_experiment(file_format=file_format))
    running = RunningService(config(sender.endpoint, tmp_path), max_series=1, timeout_s=60)
    sender.send_all(series.encoded())
    [summary] = running.join()
    assert summary.state == "completed" and summary.images_written == 7
    with h5py.File(tmp_path / "run/tiny_master.h5", "r") as h5:
        data = h5["entry/data"]
        if file_format == "legacy":
            images = np.concatenate([data[f"data_00000{k}"][()] for k in (1, 2, 3)])
        else:
            images = data["data"][()]
            check_analysis(h5["entry"], series, range(7))
        assert np.array_equal(images, np.stack(series.pixels))
        detector = h5["entry/instrument/detector"]
        assert detector["beam_center_x"][()] == series.start["beam_center_x"]


def test_notifications_republish_and_http_status(tmp_path, sender):
    series = make_series(tiny_experiment(file_format="legacy"))
    running = RunningService(
        config(sender.endpoint, tmp_path, http_port=0, file_port=0, repub_port=0),
        max_series=1,
        timeout_s=60,
    )
    service = running.service
    context = zmq.Context.instance()
    subscriber = context.socket(zmq.SUB)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"")
    subscriber.setsockopt(zmq.RCVTIMEO, RECEIVE_TIMEOUT_MS)
    subscriber.setsockopt(zmq.LINGER, 0)
    handshake = subscriber.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    subscriber.connect(service.notifier.endpoint)
    assert handshake.poll(RECEIVE_TIMEOUT_MS), "SUB never connected to the notification PUB"
    subscriber.disable_monitor()
    handshake.close()
    puller = context.socket(zmq.PULL)
    puller.setsockopt(zmq.RCVTIMEO, RECEIVE_TIMEOUT_MS)
    puller.setsockopt(zmq.LINGER, 0)
    puller.connect(service.republisher.endpoint)
    try:
        assert running.http("GET", "/status")["state"] == "idle"
        # PUB/SUB joins late: after the handshake, the subscription travels while the
        # start message is handled, before the first data file can close.
        sender.send(encode(series.start))
        wait_for(lambda: running.http("GET", "/status")["state"] == "acquiring")
        status = running.http("GET", "/status")
        assert status["file_prefix"] == "run/tiny" and status["images_expected"] == 7
        frames = series.encoded()
        sender.send_all(frames[1:])
        [summary] = running.join()
        notes = [json.loads(subscriber.recv_string()) for _ in range(3)]
        republished = [puller.recv() for _ in range(len(frames))]
    finally:
        subscriber.close()
        puller.close()
    assert summary.state == "completed"
    assert [note["filename"] for note in notes] == [f"run/tiny_data_00000{k}.h5" for k in (1, 2, 3)]
    assert [note["file_number"] for note in notes] == [0, 1, 2]
    assert [note["nimages"] for note in notes] == [3, 3, 1]
    first = notes[0]
    assert first["beam_x_pxl"] == series.start["beam_center_x"]
    assert first["detector_width_pxl"] == 48 and first["detector_height_pxl"] == 52
    assert first["user_data"]["hdf5"]["beamline"] == "X06SA"
    assert first["unit_cell"]["a"] == pytest.approx(79.1)
    assert first["underload"] == -32768 and first["saturation"] == 32767
    assert republished == frames  # every message, byte for byte, in order


def test_http_cancel_closes_a_series_whose_sender_died(tmp_path, sender):
    series = make_series(tiny_experiment(file_format="vds"))
    running = RunningService(config(sender.endpoint, tmp_path, http_port=0), timeout_s=60)
    sender.send_all(series.encoded()[:5])  # start + 4 images, then silence
    wait_for(lambda: running.http("GET", "/status")["images_written"] == 4)
    reply = running.http("POST", "/cancel")
    assert reply == {"cancel": "done", "series_was_open": True}
    status = running.http("GET", "/status")
    assert status["state"] == "idle" and status["last_series"]["state"] == "cancelled"
    running.service.stop()
    [summary] = running.join()
    assert summary.state == "cancelled" and summary.images_written == 4
    assert not [name for name in tree(tmp_path) if name.endswith(".tmp")]
    with h5py.File(tmp_path / "run/tiny_master.h5", "r") as h5:
        specific = h5["entry/instrument/detector/detectorSpecific"]
        assert specific["series_state"][()].decode() == "cancelled"
        # cut short: the series ends with the second data file (3 images per file)
        assert list(specific["image_received"][()]) == [1, 1, 1, 1, 0, 0]
        assert h5["entry/data/data"].shape[0] == 6
        assert np.array_equal(h5["entry/data/data"][3], series.pixels[3])
        assert np.all(h5["entry/data/data"][5] == -32768)


def test_malformed_messages_are_counted_and_the_service_survives(tmp_path, sender):
    series = make_series(tiny_experiment(file_format="integrated", number_of_images=2))
    running = RunningService(config(sender.endpoint, tmp_path, http_port=0), max_series=1)
    frames = series.encoded()
    garbage = [b"", b"\xff\x00not cbor", frames[1][:40], b"\xd9\xd9\xf7\xa1\x64type\x63bad"]
    sender.send_all([frames[1], *garbage, frames[0], frames[1], frames[1], frames[2], frames[3]])
    [summary] = running.join()
    counters = running.service.counters
    assert counters.malformed >= 3
    assert counters.ignored >= 1  # the image before any start
    assert summary.state == "completed"
    assert summary.images_written == 2 and summary.duplicates == 1


def test_a_new_start_closes_the_open_series(tmp_path, sender):
    first = make_series(tiny_experiment(file_prefix="a/first", file_format="vds"))
    second = make_series(tiny_experiment(file_prefix="b/second", series_id=2, file_format="vds"))
    running = RunningService(config(sender.endpoint, tmp_path), max_series=2, timeout_s=60)
    sender.send_all(first.encoded()[:3])  # start + 2 images, no end
    sender.send_all(second.encoded())
    summaries = running.join()
    assert [s.state for s in summaries] == ["interrupted", "completed"]
    assert summaries[0].images_written == 2
    assert (tmp_path / "a/first_master.h5").exists() and (tmp_path / "b/second_master.h5").exists()


def test_refused_series_writes_nothing_and_the_next_one_works(tmp_path, sender):
    bad = make_series(tiny_experiment(file_prefix="../outside", number_of_images=2), extras=False)
    good = make_series(tiny_experiment(file_prefix="ok", number_of_images=2), extras=False)
    root = tmp_path / "root"
    root.mkdir()
    running = RunningService(
        config(sender.endpoint, root, default_format=FileFormat.VDS), max_series=2, timeout_s=60
    )
    sender.send_all(bad.encoded() + good.encoded())
    summaries = running.join()
    assert [s.state for s in summaries] == ["refused", "completed"]
    assert "climbs out" in summaries[0].errors[0]
    assert tree(tmp_path) == ["root/ok_data_000001.h5", "root/ok_master.h5"]
    assert running.service.counters.series_refused == 1


def test_progress_lines_and_a_stale_end_from_another_series(tmp_path, sender, caplog):
    series = make_series(tiny_experiment(file_format="integrated", number_of_images=3))
    stale = make_series(tiny_experiment(series_id=99, number_of_images=1), extras=False)
    caplog.set_level("INFO", logger="jfsim.writer")
    running = RunningService(
        config(sender.endpoint, tmp_path, http_port=0), max_series=1, progress_interval_s=0.05
    )
    frames = series.encoded()
    sender.send_all(frames[:2])
    wait_for(lambda: "images written" in caplog.text and "series 1: 1/3" in caplog.text)
    sender.send_all([encode(stale.end), encode(stale.images[0]), *frames[2:]])
    [summary] = running.join()
    assert summary.state == "completed" and summary.images_written == 3
    assert summary.rejected == 1  # the image of series 99
    assert "end of series 99 while series 1 is open: ignored" in caplog.text


def test_republish_without_a_puller_never_blocks_the_writer(tmp_path, sender):
    series = make_series(tiny_experiment(file_format="legacy", number_of_images=3), extras=False)
    running = RunningService(config(sender.endpoint, tmp_path, repub_port=0), max_series=1)
    sender.send_all(series.encoded())
    [summary] = running.join()
    assert summary.state == "completed" and summary.images_written == 3
    assert running.service.republisher.dropped == 5  # start, 3 images, end: nobody pulled


def test_calibration_messages_land_in_the_master(tmp_path, sender):
    series = make_series(tiny_experiment(file_format="vds", number_of_images=2), extras=False)
    pedestal = np.arange(48 * 52, dtype="f4").reshape(52, 48)
    calibration = Message(
        "calibration",
        {
            "series_id": 1,
            "name": "pedestal_g0",
            "data": {"default": PixelArray.from_numpy(pedestal)},
        },
    )
    running = RunningService(config(sender.endpoint, tmp_path), max_series=1)
    frames = series.encoded()
    sender.send_all([frames[0], encode(calibration), *frames[1:]])
    [summary] = running.join()
    assert summary.state == "completed"
    with h5py.File(tmp_path / "run/tiny_master.h5", "r") as h5:
        stored = h5["entry/instrument/detector/calibration/pedestal_g0"]
        assert np.array_equal(stored[()], pedestal)


def test_mutated_frames_never_stop_the_service(tmp_path):
    """Random byte flips and truncations of real messages: every frame is either handled or
    counted as malformed; the service object survives all of them."""
    series = make_series(tiny_experiment(file_format="integrated", number_of_images=2))
    frames = series.encoded()
    rng = np.random.default_rng(11)
    config_ = WriterConfig(endpoint="inproc://mutations-unused", root_dir=tmp_path)
    with WriterService(config_) as service:
        for _ in range(300):
            frame = bytearray(frames[int(rng.integers(len(frames)))])
            for _ in range(int(rng.integers(1, 4))):
                frame[int(rng.integers(len(frame)))] = int(rng.integers(256))
            if rng.random() < 0.3:
                frame = frame[: int(rng.integers(1, len(frame)))]
            service.handle_frame(bytes(frame))
        counters = service.counters
        assert counters.messages == 300
        assert counters.malformed > 0
    assert not [name for name in tree(tmp_path) if name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rcv_watermark": 0}, r"^-w/rcv_watermark 0: a watermark must be at least 1"),
        ({"repub_watermark": -1}, r"^-W/repub_watermark -1: a watermark must be at least 1"),
        ({"rcv_watermark": 2.5}, r"^-w/rcv_watermark 2\.5: a watermark"),
        ({"http_port": 70000}, r"^-H/http_port 70000: a port must be within 0\.\.65535"),
        ({"file_port": -1}, r"^-f/file_port -1: a port must be within"),
        ({"endpoint": ""}, r"^endpoint: empty"),
        ({"max_message_bytes": 0}, r"^--max-message-size/max_message_bytes 0: at least 1 MiB"),
    ],
)
def test_a_writer_config_refuses_what_the_command_line_refuses(tmp_path, options, message):
    """A library user's 0 would be ZeroMQ's "unlimited": refused when the config is built,
    before any socket exists."""
    with pytest.raises(WriterError, match=message):
        WriterConfig(**{"endpoint": "tcp://127.0.0.1:5500", "root_dir": tmp_path, **options})


def test_a_writer_config_at_the_limits_is_accepted(tmp_path):
    made = WriterConfig("tcp://127.0.0.1:5500", tmp_path, http_port=0, file_port=65535,
                        rcv_watermark=1, repub_watermark=1)  # fmt: skip
    assert (made.rcv_watermark, made.file_port) == (1, 65535)
