"""Keys inside container fields: Float coercion on the wire and the tabled inferred names."""

from __future__ import annotations

import cbor2
import numpy as np
import pytest

from jfsim.protocol import Message, PixelArray, ProtocolError, Rational, decode, encode
from jfsim.protocol.schema import MEMBERS, SCHEMA, Confidence, WireType


def _image_fields(**extra: object) -> dict:
    return {
        "series_id": 1,
        "series_unique_id": "u",
        "image_id": 0,
        "data": {"default": PixelArray.from_numpy(np.zeros((4, 8), dtype="<i2"))},
    } | extra


def _raw(message: Message) -> dict:
    """The encoded message as cbor2 sees it: the CBOR types really on the wire."""
    return cbor2.loads(encode(message))


def test_spot_and_reflection_floats_travel_as_cbor_floats_and_integers_stay() -> None:
    fields = _image_fields(
        spots=[{"x": 12, "y": np.int64(7), "I": 300, "h": 1, "k": -2, "l": 3, "indexed": True}],
        reflections=[{"h": 1, "k": 2, "l": 3, "d": 2, "I": 50, "sigma": np.float32(1.5)}],
    )
    wire = _raw(Message("image", fields))
    spot, reflection = wire["spots"][0], wire["reflections"][0]
    assert [type(spot[k]) for k in ("x", "y", "I")] == [float, float, float]
    assert spot["x"] == 12.0 and [type(spot[k]) for k in ("h", "k", "l")] == [int, int, int]
    assert spot["indexed"] is True
    assert type(reflection["d"]) is float and type(reflection["I"]) is float
    assert reflection["sigma"] == 1.5 and type(reflection["h"]) is int


def test_unknown_keys_inside_spots_are_kept_as_sent() -> None:
    wire = _raw(Message("image", _image_fields(spots=[{"x": 1, "y": 2, "I": 3, "custom": 4}])))
    assert wire["spots"][0]["custom"] == 4 and type(wire["spots"][0]["custom"]) is int


def test_roi_integral_statistics_are_coerced_per_roi() -> None:
    rois = {"beamstop": {"sum": 10, "max_count": 3, "x_weighted": 5, "y_weighted": 6}}
    wire = _raw(Message("image", _image_fields(roi_integrals=rois)))
    roi = wire["roi_integrals"]["beamstop"]
    assert type(roi["sum"]) is int and type(roi["max_count"]) is int
    assert (type(roi["x_weighted"]), type(roi["y_weighted"])) == (float, float)


def test_grid_scan_steps_are_floats_and_counts_integers() -> None:
    grid = {"n_fast": 4, "n_slow": 3, "step_x_um": 10, "step_y_um": 20, "snake": True}
    wire = _raw(Message("start", {"series_id": 1, "series_unique_id": "u", "grid_scan": grid}))
    assert wire["grid_scan"] == grid
    assert type(wire["grid_scan"]["step_x_um"]) is float
    assert type(wire["grid_scan"]["n_fast"]) is int


def test_metadata_image_entries_follow_the_image_table_down_to_their_spots() -> None:
    entry = {"image_id": 3, "profile_radius": 1, "spots": [{"x": 1, "y": 2, "I": 3}]}
    message = Message("metadata", {"series_id": 1, "series_unique_id": "u", "images": [entry]})
    wire = _raw(message)["images"][0]
    assert type(wire["profile_radius"]) is float and type(wire["image_id"]) is int
    assert [type(v) for v in wire["spots"][0].values()] == [float, float, float]
    assert decode(encode(message))["images"][0]["spots"][0]["x"] == 1.0


def test_detector_time_stamps_roundtrip_as_rationals_or_numbers() -> None:
    fields = _image_fields(timestamp=[123456, 10_000_000], exptime=Rational(5, 10_000_000))
    decoded = decode(encode(Message("image", fields)))
    assert decoded["timestamp"] == Rational(123456, 10_000_000)
    assert decoded["exptime"] == Rational(5, 10_000_000)
    assert decode(encode(Message("image", _image_fields(timestamp=99))))["timestamp"] == 99


def test_malformed_container_fields_are_rejected_with_their_names() -> None:
    with pytest.raises(ProtocolError, match="field 'roi_integrals'"):
        encode(Message("image", _image_fields(roi_integrals={"beamstop": 5})))
    with pytest.raises(ProtocolError, match="field 'timestamp'"):
        encode(Message("image", _image_fields(timestamp="noon")))


@pytest.mark.parametrize(
    "name",
    [
        "spot_finding_time",
        "indexing_time",
        "image_scale_time",
        "timestamp",
        "exptime",
        "jf_info",
        "receiver_aq_dev_delay",
        "receiver_free_send_buf",
        "image_scale_factor",
    ],
)
def test_writer_fields_are_tabled_as_inferred(name: str) -> None:
    assert SCHEMA["image"][name].confidence is Confidence.INFERRED


def test_member_floats_are_float_typed() -> None:
    assert MEMBERS["image.spots"]["x"].wire_type is WireType.FLOAT
    assert MEMBERS["start.grid_scan"]["n_fast"].wire_type is WireType.UINT
