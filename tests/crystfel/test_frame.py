"""The MessagePack map of one frame, read with the msgpack package as CrystFEL reads it."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from jfsim.crystfel import (
    DATA_KEY,
    DISTANCE_MM_KEY,
    FRAME_KEYS,
    PEAK_LIST_KEY,
    PHOTON_ENERGY_EV_KEY,
    CrystfelDtype,
    frame_map,
    pack_frame,
    pixels_for_crystfel,
)


def test_no_key_is_the_beginning_of_another() -> None:
    """CrystFEL matches keys by prefix (strncmp with the map key's length)."""
    for key in FRAME_KEYS:
        for other in FRAME_KEYS:
            assert key == other or not other.startswith(key), (key, other)


def test_frame_is_one_map_as_seed_004_describes() -> None:
    pixels = np.arange(12, dtype="<i4").reshape(3, 4)
    spots = [{"x": 1.0, "y": 2.5, "I": 30.0}, {"x": 3.25, "y": 0.0, "I": 7.0}]
    packed = pack_frame(
        frame_map(pixels, image_id=5, photon_energy_eV=12400.0, distance_mm=120.0, spots=spots)
    )
    frame = msgpack.unpackb(packed, raw=False)
    assert isinstance(frame, dict)
    image = frame[DATA_KEY]
    assert set(image) == {"type", "shape", "data"}
    assert image["type"] == "<i4"
    assert image["shape"] == [3, 4]  # [slow, fast]
    assert isinstance(image["data"], bytes)
    np.testing.assert_array_equal(
        np.frombuffer(image["data"], dtype=image["type"]).reshape(image["shape"]), pixels
    )
    assert frame[PHOTON_ENERGY_EV_KEY] == 12400.0
    assert frame[DISTANCE_MM_KEY] == 120.0
    peaks = frame[PEAK_LIST_KEY]
    assert peaks == {"fs": [1.0, 3.25], "ss": [2.5, 0.0], "intensity": [30.0, 7.0]}
    assert frame["image_id"] == 5


def test_peak_coordinates_are_msgpack_doubles() -> None:
    """CrystFEL reads fs, ss and intensity as f64 whatever their MessagePack type."""
    packed = pack_frame(
        frame_map(
            np.zeros((2, 2), "<i4"),
            image_id=0,
            photon_energy_eV=1e4,
            distance_mm=1e2,
            spots=[{"x": 1, "y": 2, "I": 3}],
        )
    )
    position = packed.index(b"\xa2fs") + 3
    assert packed[position] == 0x91  # fixarray of one
    assert packed[position + 1] == 0xCB  # float 64


@pytest.mark.parametrize(
    ("dtype", "error_value", "bad"),
    [("<i2", -32768, -32768), ("<u4", 2**32 - 1, -1), ("<u2", 2**16 - 1, -1)],
)
def test_int32_frames_mark_error_pixels_below_every_count(dtype, error_value, bad) -> None:
    image = np.array([[0, 5, error_value], [7, np.iinfo(dtype).max - 1, 1]], dtype=dtype)
    converted = pixels_for_crystfel(image, error_value)
    assert converted.dtype.str == "<i4"
    assert converted[0, 2] == bad
    assert converted[converted != bad].min() >= 0
    assert converted[1, 1] == min(int(np.iinfo(dtype).max) - 1, 2**31 - 1)


def test_float32_frames_mark_error_pixels_as_nan() -> None:
    image = np.array([[1, -32768], [3, 4]], dtype="<i2")
    converted = pixels_for_crystfel(image, -32768, CrystfelDtype.FLOAT32)
    assert converted.dtype.str == "<f4"
    assert np.isnan(converted[0, 1])
    assert converted[1, 1] == 4.0


def test_frame_refuses_other_pixel_types() -> None:
    with pytest.raises(ValueError, match="<i4 or <f4"):
        frame_map(np.zeros((2, 2), "<i2"), image_id=0, photon_energy_eV=1.0, distance_mm=1.0)
