"""Start, image and end messages built from an experiment carry the experiment's values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jfsim.experiment import experiment_from_dict, experiment_preset, experiment_to_dict
from jfsim.protocol import PixelArray, decode, encode
from jfsim.series import ImageAnalysis, end_message, image_message, start_message


@pytest.fixture(scope="module")
def experiment():
    return experiment_preset("small-jf1m")


def test_start_message_carries_the_experiment_in_wire_units(experiment):
    start = decode(encode(start_message(experiment)))
    assert start.type == "start"
    assert start["image_size_x"] == 1030 and start["image_size_y"] == 1064
    assert start["beam_center_x"] == pytest.approx(515.5)
    assert start["detector_distance"] == pytest.approx(0.080)
    assert start["incident_energy"] == pytest.approx(12400.0)
    assert start["incident_wavelength"] == pytest.approx(0.99987, rel=1e-4)
    assert start["pixel_size_x"] == pytest.approx(75e-6)
    assert start["saturation_value"] == 32767 and start["error_value"] == -32768
    assert start["image_dtype"] == "int16"
    assert start["channels"] == ["default"]
    assert start["images_per_file"] == 5 and start["number_of_images"] == 10
    assert start["goniometer"]["omega"]["increment"] == pytest.approx(0.5)
    assert start["unit_cell"]["c"] == pytest.approx(37.9)
    mask = start["pixel_mask"]["default"].to_numpy()
    np.testing.assert_array_equal(mask, experiment.detector.pixel_mask())


def test_header_appendix_goes_to_user_data_user(experiment):
    appendix = {"hdf5": {"beamline": "X06DA", "ring_current_mA": 400.5}}
    with_appendix = dataclasses.replace(
        experiment,
        dataset=dataclasses.replace(
            experiment.dataset, header_appendix=appendix, image_appendix=[1, "💙"]
        ),
    )
    start = decode(encode(start_message(with_appendix)))
    assert start["user_data"] == {"user": appendix}
    pixels = PixelArray.from_numpy(np.zeros(experiment.detector.shape, np.int16))
    image = decode(encode(image_message(with_appendix, 0, pixels)))
    assert image["user_data"] == [1, "💙"]


def test_image_message_timing_and_pixels(experiment):
    rng = np.random.default_rng(1)
    frame = rng.integers(-5, 300, size=experiment.detector.shape, dtype=np.int16)
    image = decode(encode(image_message(experiment, 7, PixelArray.from_numpy(frame))))
    assert image["image_id"] == 7
    np.testing.assert_array_equal(image["data"]["default"].to_numpy(), frame)
    start, stop = image["start_time"], image["stop_time"]
    assert start.numerator / start.denominator == pytest.approx(7 * experiment.dataset.frame_time_s)
    assert (stop.numerator - start.numerator) / stop.denominator == pytest.approx(
        experiment.dataset.count_time_s
    )


def test_analysis_keeps_the_most_intense_spots_up_to_max_spot_count(experiment):
    limited = dataclasses.replace(
        experiment, dataset=dataclasses.replace(experiment.dataset, max_spot_count=3)
    )
    intensities = np.array([5.0, 50.0, 1.0, 20.0, 30.0])
    analysis = ImageAnalysis(
        spot_x_pxl=np.arange(5, dtype=float),
        spot_y_pxl=np.arange(5, dtype=float) * 2,
        spot_intensity=intensities,
        spot_hkl=np.array([[i, 0, 1] for i in range(5)]),
        lattice_A=np.diag([79.1, 79.1, 37.9]),
        indexed=True,
    )
    pixels = PixelArray.from_numpy(np.zeros(experiment.detector.shape, np.int16))
    image = decode(encode(image_message(limited, 0, pixels, analysis)))
    assert [spot["I"] for spot in image["spots"]] == [50.0, 30.0, 20.0]
    assert [spot["h"] for spot in image["spots"]] == [1, 4, 3]
    assert image["spot_count"] == 5
    assert image["indexing_result"] is True
    assert image["indexing_lattice"] == pytest.approx([79.1, 0, 0, 0, 79.1, 0, 0, 0, 37.9])
    assert image["indexing_unit_cell"]["gamma"] == pytest.approx(90.0)
    assert image["analysis_source"] == "jfsim-truth"


def test_end_message(experiment):
    end = decode(encode(end_message(experiment, 9)))
    assert end.type == "end"
    assert end["images_collected"] == 9
    assert end["series_unique_id"] == start_message(experiment)["series_unique_id"]


def test_grid_scans_describe_their_raster():
    document = experiment_to_dict(experiment_preset("small-jf1m"))
    document["scan"] = {
        "type": "grid",
        "n_fast": 4,
        "n_slow": 3,
        "step_x_um": 5.0,
        "step_y_um": 7.5,
        "snake": True,
    }
    start = decode(encode(start_message(experiment_from_dict(document))))
    assert start["grid_scan"] == {
        "n_fast": 4,
        "n_slow": 3,
        "step_x_um": 5.0,
        "step_y_um": 7.5,
        "snake": True,
        "vertical": False,
    }
    assert "goniometer" not in start
