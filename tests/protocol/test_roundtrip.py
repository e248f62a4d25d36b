"""Property tests: every message type, pixel dtype and compression survives encode → decode."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jfsim.protocol import (
    Compression,
    Message,
    PixelArray,
    ProtocolError,
    Rational,
    decode,
    encode,
    encode_parts,
    iter_sequence,
)
from jfsim.protocol.appendix import header_appendix, image_appendix, start_user_data

PIXEL_DTYPES = ["u1", "<u2", "<u4", "<i2", "<i4"]
SETTINGS = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
any_json = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
uints = st.integers(min_value=0, max_value=2**64 - 1)
timestamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda value: value.replace(microsecond=value.microsecond // 1000 * 1000)
)
zones = st.integers(min_value=-12 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_datetimes = st.builds(lambda value, zone: value.replace(tzinfo=zone), timestamps, zones)
rationals = st.builds(
    Rational,
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=1, max_value=2**32),
)


@st.composite
def pixel_arrays(
    draw: st.DrawFn, dtypes: list[str] = PIXEL_DTYPES
) -> tuple[np.ndarray, PixelArray]:
    """A small frame (often with a pixel count that is not a multiple of 8) and its wire form."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    height = draw(st.integers(min_value=1, max_value=40))
    width = draw(st.integers(min_value=1, max_value=300))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        pixels = rng.normal(size=(height, width)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        pixels = rng.integers(info.min, info.max, size=(height, width), endpoint=True)
        sparse = rng.random((height, width)) < 0.8
        pixels = np.where(sparse, rng.poisson(1.0, (height, width)), pixels).astype(dtype)
    compression = draw(st.sampled_from(list(Compression)))
    return pixels, PixelArray.from_numpy(pixels, compression)


spot = st.fixed_dictionaries(
    {
        "x": floats,
        "y": floats,
        "I": floats,
        "indexed": st.booleans(),
        "h": st.integers(-50, 50),
        "k": st.integers(-50, 50),
        "l": st.integers(-50, 50),
    }
)


@st.composite
def start_messages(draw: st.DrawFn) -> Message:
    _, mask = draw(pixel_arrays(["<u4"]))
    return Message(
        "start",
        {
            "series_id": draw(uints),
            "series_unique_id": draw(st.text(max_size=30)),
            "arm_date": draw(aware_datetimes),
            "beam_center_x": draw(floats | st.integers(0, 4000)),
            "beam_center_y": draw(floats),
            "channels": ["default"],
            "count_time": draw(floats),
            "detector_distance": draw(floats),
            "incident_energy": draw(floats),
            "image_size_x": mask.shape[1],
            "image_size_y": mask.shape[0],
            "number_of_images": draw(uints),
            "pixel_mask": {"default": mask},
            "goniometer": {"omega": {"start": draw(floats), "increment": draw(floats)}},
            "unit_cell": dict(
                zip(
                    "a b c alpha beta gamma".split(),
                    draw(st.lists(floats, min_size=6, max_size=6)),
                    strict=True,
                )
            ),
            "space_group_number": draw(st.integers(1, 230)),
            "saturation_value": draw(st.integers(-(2**63), 2**63 - 1)),
            "user_data": {"user": draw(any_json)},
        },
    )


@st.composite
def image_messages(draw: st.DrawFn) -> Message:
    pixels, data = draw(pixel_arrays())
    return Message(
        "image",
        {
            "series_id": draw(uints),
            "series_unique_id": draw(st.text(max_size=30)),
            "image_id": draw(uints),
            "real_time": draw(rationals),
            "series_date": draw(aware_datetimes),
            "user_data": draw(any_json),
            "data": {"default": data},
            "spots": draw(st.lists(spot, max_size=5)),
            "indexing_result": draw(st.booleans()),
            "indexing_lattice": draw(st.lists(floats, min_size=9, max_size=9)),
            "az_int_profile": draw(st.lists(floats, max_size=20)),
            "roi_integrals": {
                "roi0": {"sum": draw(st.integers(-(2**63), 2**63 - 1)), "max_count": 3}
            },
            "xfel_pulse_id": draw(uints),
            "xfel_event_code": draw(uints),
            "storage_cell": draw(st.integers(0, 15)),
            "packets_received": draw(uints),
            "packets_expected": draw(uints),
            "pixel_sum": int(pixels.sum(dtype=np.int64)),
            "max_viable_pixel_value": draw(st.integers(-(2**31), 2**31)),
        },
    )


@st.composite
def other_messages(draw: st.DrawFn) -> Message:
    kind = draw(st.sampled_from(["end", "calibration", "metadata"]))
    if kind == "end":
        fields: dict[str, Any] = {
            "series_id": draw(uints),
            "series_unique_id": draw(st.text(max_size=30)),
            "end_date": draw(aware_datetimes),
            "images_collected": draw(uints),
        }
    elif kind == "calibration":
        _, data = draw(pixel_arrays(["<f4", "<u2"]))
        fields = {"name": draw(st.text(max_size=20)), "data": {"default": data}}
    else:
        fields = {
            "images": draw(
                st.lists(
                    st.fixed_dictionaries({"image_id": uints, "indexing_result": st.booleans()}),
                    max_size=5,
                )
            )
        }
    return Message(kind, fields)


def _first_key_is_type(encoded: bytes) -> bool:
    """An independent byte-level check: d9 d9 f7, a map head, then the text key 'type'."""
    if encoded[:3] != b"\xd9\xd9\xf7" or encoded[3] >> 5 != 5:
        return False
    info = encoded[3] & 0x1F
    offset = 4 + {24: 1, 25: 2, 26: 4, 27: 8}.get(info, 0)
    return encoded[offset : offset + 5] == b"\x64type"


def _assert_same(decoded: Message, original: Message) -> None:
    assert decoded.type == original.type
    assert list(decoded.fields) == list(original.fields), "wire order must be kept"
    assert decoded.fields == original.fields


@SETTINGS
@given(start_messages() | image_messages() | other_messages())
def test_every_message_type_round_trips(message: Message) -> None:
    encoded = encode(message)
    assert _first_key_is_type(encoded)
    assert b"".join(encode_parts(message)) == encoded
    _assert_same(decode(encoded), message)


@SETTINGS
@given(pixel_arrays())
def test_pixels_round_trip_for_every_dtype_and_compression(drawn: tuple) -> None:
    pixels, array = drawn
    message = Message(
        "image",
        {"series_id": 1, "series_unique_id": "u", "image_id": 0, "data": {"default": array}},
    )
    received = decode(encode(message))["data"]["default"]
    assert received == array
    assert received.elem_size == pixels.dtype.itemsize
    np.testing.assert_array_equal(received.to_numpy(), pixels)
    assert received.to_numpy().dtype == pixels.dtype


def test_float_fields_travel_as_cbor_floats_even_when_integral() -> None:
    message = Message(
        "start",
        {
            "series_id": 1,
            "series_unique_id": "u",
            "beam_center_x": 512,
            "goniometer": {"omega": {"start": 0, "increment": 1}},
            "unit_cell": {"a": 79, "b": 79, "c": 38, "alpha": 90, "beta": 90, "gamma": 90},
        },
    )
    encoded = encode(message)
    assert b"\x6dbeam_center_x\xfb\x40\x80\x00\x00\x00\x00\x00\x00" in encoded
    assert b"\x65start\xfb" in encoded and b"\x69increment\xfb" in encoded
    decoded = decode(encoded)
    assert isinstance(decoded["beam_center_x"], float) and decoded["beam_center_x"] == 512.0
    assert all(isinstance(v, float) for v in decoded["unit_cell"].values())


def test_datetime_is_rfc3339_with_milliseconds_and_numeric_offset() -> None:
    when = datetime(2023, 2, 10, 15, 49, 5, 281000, tzinfo=timezone(timedelta(hours=1)))
    message = Message("end", {"series_id": 1, "series_unique_id": "u", "end_date": when})
    encoded = encode(message)
    assert b"\xc0\x78\x1d2023-02-10T15:49:05.281+01:00" in encoded
    assert decode(encoded)["end_date"] == when


def test_signed_pixels_use_little_endian_signed_tags() -> None:
    for dtype, tag in (("i1", b"\xd8\x48"), ("<i2", b"\xd8\x4d"), ("<i4", b"\xd8\x4e")):
        array = PixelArray.from_numpy(np.zeros((2, 3), dtype=dtype), Compression.NONE)
        message = Message(
            "image",
            {"series_id": 1, "series_unique_id": "u", "image_id": 0, "data": {"default": array}},
        )
        assert b"\xd8\x28\x82\x82\x02\x03" + tag in encode(message)


def test_big_endian_typed_arrays_decode() -> None:
    values = np.array([[1, 2, 65535]], dtype=">u2")
    body = b"\xd8\x28\x82\x82\x01\x03\xd8\x41\x46" + values.tobytes()
    encoded = (
        b"\xd9\xd9\xf7\xa5\x64type\x65image\x69series_id\x01\x70series_unique_id\x61u"
        b"\x68image_id\x00\x64data\xa1\x67default" + body
    )
    pixels = decode(encoded)["data"]["default"].to_numpy()
    np.testing.assert_array_equal(pixels, values)


def test_sequence_of_messages_decodes_in_order(image_message: Message) -> None:
    end = Message("end", {"series_id": 7, "series_unique_id": "7:sample"})
    stream = encode(image_message) + encode(end)
    assert [m.type for m in iter_sequence(stream)] == ["image", "end"]


def test_unknown_keys_and_types_are_kept() -> None:
    message = Message(
        "image",
        {
            "series_id": 1,
            "series_unique_id": "u",
            "image_id": 3,
            "data": {"default": PixelArray.from_numpy(np.ones((3, 3), "u1"))},
            "future_field": {"x": [1, 2]},
        },
    )
    assert decode(encode(message))["future_field"] == {"x": [1, 2]}
    odd = Message("heartbeat", {"n": 1})
    assert decode(encode(odd)) == odd


def test_encoder_rejects_what_it_cannot_write() -> None:
    base = {"series_id": 1, "series_unique_id": "u", "image_id": 0}
    pixels = {"default": PixelArray.from_numpy(np.zeros((2, 2), "u1"))}
    cases = [
        (Message("image", {**base, "image_id": "3", "data": pixels}), "field 'image_id'"),
        (Message("image", base), "required field 'data' is missing"),
        (Message("end", {**base, "end_date": datetime(2026, 1, 1)}), "end_date"),
        (Message("end", {**base, "x": object()}), "field 'x': cannot encode"),
        (Message("end", {**base, "x": 2**64}), "does not fit in 64 bits"),
        (Message("end", {**base, "type": "end"}), "'type' belongs in Message.type"),
        (Message("", {}), "non-empty text string"),
    ]
    for message, needle in cases:
        with pytest.raises(ProtocolError, match=re.escape(needle)):
            encode(message)
    with pytest.raises(ProtocolError, match="no RFC 8746 typed-array tag"):
        PixelArray.from_numpy(np.zeros(3, dtype=np.complex64))


def test_appendices_travel_in_user_data() -> None:
    appendix = {"hdf5": {"proposal": "p12345", "temperature_K": 100.0}, "note": "💙"}
    start = Message(
        "start", {"series_id": 1, "series_unique_id": "u", "user_data": start_user_data(appendix)}
    )
    assert header_appendix(decode(encode(start))) == appendix
    image = Message(
        "image",
        {
            "series_id": 1,
            "series_unique_id": "u",
            "image_id": 0,
            "user_data": [1, "💙"],
            "data": {"default": PixelArray.from_numpy(np.zeros((1, 1), "u1"))},
        },
    )
    assert image_appendix(decode(encode(image))) == [1, "💙"]


@pytest.mark.parametrize("compression", list(Compression))
@pytest.mark.parametrize("dtype", PIXEL_DTYPES)
def test_each_dtype_and_compression_with_a_ragged_pixel_count(dtype: str, compression) -> None:
    pixels = np.random.default_rng(11).integers(0, 120, size=(37, 1029)).astype(dtype)
    assert pixels.size % 8 != 0
    array = PixelArray.from_numpy(pixels, compression)
    message = Message(
        "image",
        {"series_id": 1, "series_unique_id": "u", "image_id": 0, "data": {"default": array}},
    )
    received = decode(encode(message))["data"]["default"]
    assert received.payload == array.payload
    np.testing.assert_array_equal(received.to_numpy(), pixels)
