"""Streaming a rendered experiment: pool frames from jfsim.sim, fields from jfsim.series."""

from __future__ import annotations

import dataclasses

import pytest

from jfsim.experiment import experiment_preset
from jfsim.protocol import decode
from jfsim.series import image_message
from jfsim.sim import Scene
from jfsim.stream import StreamOptionError
from jfsim.stream.experiment_source import ExperimentSource
from jfsim.truth_analysis import analysis_from_truth


@pytest.fixture(scope="module")
def small_experiment():
    return experiment_preset("small-jf1m")


def test_streamed_images_equal_the_series_messages(
    small_experiment, start_stream, connect, stream_v2_check
):
    source = ExperimentSource(small_experiment, device="cpu")
    stream, (endpoint,) = start_stream(source, number_of_images=5, pool_size=2)
    receiver = connect(endpoint)
    frames = [receiver.receive(timeout_s=60.0) for _ in range(7)]
    summary = stream.result()

    start = stream_v2_check(frames[0])
    assert start["number_of_images"] == 5
    assert start["image_size_x"] == small_experiment.detector.width_pxl
    scene = Scene(small_experiment)
    pool = stream.streamer.prepare()
    for image_id, frame in enumerate(frames[1:6]):
        stream_v2_check(frame)
        slot = image_id % 2
        truth, _spots = scene.image(slot)
        expected = image_message(
            small_experiment,
            image_id,
            pool[slot].pixels,
            analysis_from_truth(truth, small_experiment),
        )
        assert decode(frame) == expected
    assert stream_v2_check(frames[6])["images_collected"] == 5
    assert summary.images_sent == 5


def test_unstreamable_compression_is_refused(small_experiment):
    dataset = dataclasses.replace(small_experiment.dataset, compression="gzip")
    with pytest.raises(StreamOptionError, match="compression 'gzip' cannot be streamed"):
        ExperimentSource(dataclasses.replace(small_experiment, dataset=dataset))
