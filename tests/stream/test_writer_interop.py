"""``jfsim stream`` into the reference writer ``jfsim write``: both real subprocesses."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 - registers the bitshuffle filter for reading
import numpy as np
import pytest

from fixtures.clean import read_frames
from jfsim.experiment import experiment_preset
from jfsim.protocol import Compression, Message, PixelArray
from jfsim.recording import RecordingWriter
from jfsim.series import ImageAnalysis, end_message, image_message, start_message

JFSIM = Path(sys.executable).with_name("jfsim")


def test_two_writers_store_every_image_the_streamer_sends(tmp_path, start_streamer):
    experiment = experiment_preset("small-jf1m")
    dataset = dataclasses.replace(
        experiment.dataset, file_prefix="run/tiny", images_per_file=3, file_format="legacy"
    )
    experiment = dataclasses.replace(experiment, dataset=dataset)
    rng = np.random.default_rng(1)
    recording = tmp_path / "tiny.cbors"
    with RecordingWriter(recording) as writer:
        writer.write(start_message(experiment))
        for image_id in range(4):
            pixels = rng.poisson(0.5, experiment.detector.shape).astype(np.int16)
            writer.write(
                image_message(
                    experiment, image_id, PixelArray.from_numpy(pixels, Compression.BSLZ4)
                )
            )
        writer.write(end_message(experiment, 4))

    stream = start_streamer(
        "--recording", str(recording), "--images", "10",
        "--rate", "500Hz", "--start-timeout", "60s", "--json",
        sockets=2,
    )  # fmt: skip
    roots = [tmp_path / "writer0", tmp_path / "writer1"]
    writers = []
    for endpoint, root in zip(stream.endpoints, roots, strict=True):
        root.mkdir()
        command = [str(JFSIM), "write", "-R", str(root), "--once", "--json", "--timeout", "60"]
        writers.append(
            subprocess.Popen(
                [*command, endpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    stream_code, stream_stdout, stream_stderr = stream.finish(120)
    results = []
    for writer in writers:
        stdout, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
        results.append(json.loads(stdout))

    assert stream_code == 0, stream_stderr
    assert json.loads(stream_stdout)["images_per_socket"] == [6, 4]  # files 0, 2 | 1, 3
    for result in results:
        assert result["state"] == "completed"
        assert result["images_expected"] == 10
    assert [result["images_written"] for result in results] == [6, 4]
    masters = [
        [name for name in result["files"] if name.endswith("_master.h5")] for result in results
    ]
    assert masters == [["run/tiny_master.h5"], []]


# --------------------------------------------- a recording longer than any pool, replayed

N_RECORDED = 100
IMAGES_PER_FILE = 25


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """100 distinct JF1M images, each with one spot at x = its image id, and no file_format
    in the start message (the writer's --format chooses the layout)."""
    experiment = experiment_preset("small-jf1m")
    dataset = dataclasses.replace(
        experiment.dataset, file_prefix="run/long", images_per_file=IMAGES_PER_FILE
    )
    experiment = dataclasses.replace(experiment, dataset=dataset)
    rng = np.random.default_rng(16)
    pixels = rng.integers(0, 4, (N_RECORDED, *experiment.detector.shape), dtype=np.int16)
    path = tmp_path_factory.mktemp("long") / "long.cbors"
    with RecordingWriter(path) as writer:
        start = start_message(experiment)
        writer.write(
            Message("start", {k: v for k, v in start.fields.items() if k != "file_format"})
        )
        for image_id, image in enumerate(pixels):
            analysis = ImageAnalysis(
                spot_x_pxl=np.array([float(image_id)]),
                spot_y_pxl=np.array([2.0]),
                spot_intensity=np.array([100.0]),
            )
            compressed = PixelArray.from_numpy(image, Compression.BSLZ4)
            writer.write(image_message(experiment, image_id, compressed, analysis))
        writer.write(end_message(experiment, N_RECORDED))
    return path, pixels


def _stream_into_writers(
    start_streamer, recording: Path, roots: list[Path], layout: str, *extra: str
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Replay ``recording`` through one image socket per root, each into a ``jfsim write``
    connected to the port the streamer bound (and keeps)."""
    stream = start_streamer(
        "--recording", str(recording), "--rate", "max", "--on-slow", "block",
        "--start-timeout", "60s", "--json", *extra,
        sockets=len(roots),
    )  # fmt: skip
    writers = []
    for root, endpoint in zip(roots, stream.endpoints, strict=True):
        command = [str(JFSIM), "write", "-R", str(root), "--once", "--json"]
        command += ["--timeout", "120", "--format", layout, endpoint]
        writers.append(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    try:
        code, stdout, stderr = stream.finish(180)
        results = []
        for writer in writers:
            out, err = writer.communicate(timeout=180)
            assert writer.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for writer in writers:
            writer.kill()
    assert code == 0, stderr
    return subprocess.CompletedProcess(stream.process.args, code, stdout, stderr), results


def _written(master: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame through the master (links or VDS) and the first spot's x of each frame."""
    with h5py.File(master, "r") as h5:
        group = h5["/entry/data"]
        links = sorted(name for name in group if name.startswith("data_"))
        if links:  # legacy: /entry/MX lives in the data files
            spots = [group[name].file["/entry/MX/peakXPosRaw"][:, 0] for name in links]
        else:
            spots = [h5["/entry/MX/peakXPosRaw"][:, 0]]
    return read_frames(master), np.concatenate(spots)


@pytest.mark.parametrize("layout", ["legacy", "vds", "integrated"])
def test_a_long_recording_is_written_pixel_for_pixel_in_every_layout(
    tmp_path, long_recording, start_streamer, layout
):
    recording, pixels = long_recording
    stream, (result,) = _stream_into_writers(start_streamer, recording, [tmp_path], layout)

    assert json.loads(stream.stdout)["repeated_images"] == 0
    assert "repeat" not in stream.stderr
    assert result["images_written"] == N_RECORDED
    frames, spot_x = _written(tmp_path / "run" / "long_master.h5")
    assert frames.shape == pixels.shape
    for image_id in range(N_RECORDED):
        np.testing.assert_array_equal(frames[image_id], pixels[image_id], err_msg=f"{image_id}")
    np.testing.assert_array_equal(spot_x, np.arange(N_RECORDED))  # analysis follows pixels


def test_a_long_recording_into_two_writers_keeps_every_image(
    tmp_path, long_recording, start_streamer
):
    recording, pixels = long_recording
    stream, results = _stream_into_writers(
        start_streamer, recording, [tmp_path, tmp_path], "legacy"
    )

    assert json.loads(stream.stdout)["images_per_socket"] == [50, 50]  # files 1, 3 | 2, 4
    assert [result["images_written"] for result in results] == [50, 50]
    frames, spot_x = _written(tmp_path / "run" / "long_master.h5")
    np.testing.assert_array_equal(frames, pixels)
    np.testing.assert_array_equal(spot_x, np.arange(N_RECORDED))


def test_more_images_than_recorded_repeat_announced_with_their_analysis(
    tmp_path, long_recording, start_streamer
):
    recording, pixels = long_recording
    stream, (result,) = _stream_into_writers(
        start_streamer, recording, [tmp_path], "integrated", "--images", "300"
    )

    assert (
        "stream: images 100–299 repeat recorded images 0–99: image k carries the pixels and "
        "analysis fields of recorded image k mod 100" in stream.stderr
    )
    assert json.loads(stream.stdout)["repeated_images"] == 200
    assert result["images_written"] == 300
    frames, spot_x = _written(tmp_path / "run" / "long_master.h5")
    for image_id in range(300):
        np.testing.assert_array_equal(frames[image_id], pixels[image_id % N_RECORDED])
    np.testing.assert_array_equal(spot_x, np.arange(300) % N_RECORDED)


# --------------------------------------------- the end of a series into a slowed writer


def test_a_slowed_writer_gets_the_whole_queue_and_the_end(tmp_path, long_recording, start_streamer):
    """Issue 9: the real writer, frozen 100 ms out of every 120 ms once the series began
    (SIGSTOP/SIGCONT, the slowness under test) and keeping only 2 images in its receive
    queue, still writes all 600 images: the stream waits while the writer takes the 500
    queued at the end, though that outlasts --end-timeout (the stream used to discard the
    queue after it, and the writer waited for ever for the missing images and the end)."""
    recording, _pixels = long_recording
    stream = start_streamer(
        "--recording", str(recording), "--images", "600", "--rate", "max",
        "--on-slow", "block", "--sndhwm", "500", "--send-timeout", "120s",
        "--end-timeout", "500ms", "--start-timeout", "60s", "--json",
    )  # fmt: skip
    root = tmp_path / "slow"
    root.mkdir()
    command = [str(JFSIM), "write", "-R", str(root), "--once", "--json", "--timeout", "120"]
    writer = subprocess.Popen(
        [*command, "-w", "2", stream.endpoints[0]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    streaming = threading.Event()
    streaming.set()

    def slow_down() -> None:
        while streaming.is_set() and writer.poll() is None and not any(root.rglob("*.h5*")):
            time.sleep(0.02)  # until the start message made the writer create its files
        while streaming.is_set() and writer.poll() is None:
            writer.send_signal(signal.SIGSTOP)
            time.sleep(0.1)
            writer.send_signal(signal.SIGCONT)
            time.sleep(0.02)

    slower = threading.Thread(target=slow_down, daemon=True)
    slower.start()
    try:
        code, stdout, stderr = stream.finish(300)
    finally:
        streaming.clear()
        slower.join(10.0)
        writer.send_signal(signal.SIGCONT)
    try:
        writer_out, writer_err = writer.communicate(timeout=180)
    finally:
        writer.kill()

    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["end_delivered"] == [True] and summary["images_lost_in_queue"] == 0
    assert summary["end_wait_s"] > 0.5  # the queue outlasted --end-timeout, and was waited for
    assert writer.returncode == 0, writer_err
    result = json.loads(writer_out)
    assert result["state"] == "completed"
    assert result["images_expected"] == 600 and result["images_written"] == 600
