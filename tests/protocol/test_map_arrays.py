"""Arrays (spots, reflections, metadata entries, profiles): one fast path, checked against cbor2.

A plain array (no tags, definite lengths) goes through the numba scan + cbor2's C decoder,
whatever the buffer type; when the scan declines (a tag, an indefinite length, nesting at
the depth limit), the general item-by-item path decodes it. cbor2's own reading of the
message is the oracle for plain values, and every buffer type must give the same values
and the same errors.
"""

from __future__ import annotations

import cbor2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jfsim.protocol import Message, PixelArray, ProtocolError, decode, encode
from jfsim.protocol.decode import MAX_DEPTH
from jfsim.protocol.plain_arrays import scan_plain_array

CONTAINER_BYTES = (56, 8, 64, 48)

_SCALARS = (
    st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False, width=64)
    | st.floats(allow_nan=False, width=32)
    | st.booleans()
    | st.none()
    | st.text(max_size=30)
    | st.binary(max_size=8)
    | st.lists(st.floats(allow_nan=False), max_size=3)
)
_KEYS = st.text(min_size=1, max_size=30) | st.integers(min_value=-(2**63), max_value=2**63)
_FLAT = st.dictionaries(_KEYS, _SCALARS, max_size=26)
#: Mostly flat maps (the fast path's case), some with a nested map, some not maps at all.
_ELEMENTS = _FLAT | st.dictionaries(_KEYS, _FLAT, max_size=2) | _SCALARS
_MAPS = st.lists(_ELEMENTS, min_size=1, max_size=8)


def _image(**extra: object) -> bytes:
    fields = {
        "series_id": 1,
        "series_unique_id": "u",
        "image_id": 0,
        "data": {"default": PixelArray.from_numpy(np.zeros((4, 8), dtype="<u2"))},
    }
    return encode(Message("image", fields | extra))


def _both(wire: bytes) -> tuple[Message, Message]:
    return decode(wire), decode(memoryview(wire))


def _spots(count: int) -> list[dict]:
    return [
        {"x": 10.5 + i, "y": 3.25, "I": 1e4 * i, "indexed": i % 2 == 0, "h": -i, "k": 300, "l": 0}
        for i in range(count)
    ]


def test_spot_maps_decode_to_the_values_sent() -> None:
    spots = _spots(250)
    fast, general = _both(_image(spots=spots, reflections=spots[:200]))
    assert fast["spots"] == spots == general["spots"]
    assert fast["reflections"] == spots[:200]
    assert type(fast["spots"]) is list and {type(s) for s in fast["spots"]} == {dict}
    assert all(isinstance(s["x"], float) and isinstance(s["h"], int) for s in fast["spots"])


def test_every_scalar_encoding_decodes_like_the_general_path() -> None:
    entry_bytes = bytes.fromhex(
        "ab"  # map of 11 pairs
        "6161"
        "17"  # a: 23
        "6162"
        "1b0000000100000000"  # b: 2**32
        "6163"
        "3903e7"  # c: -1000
        "6164"
        "f93c00"  # d: half 1.0
        "6165"
        "fa3fc00000"  # e: single 1.5
        "6166"
        "f4"  # f: false
        "6167"
        "f6"  # g: null
        "6168"
        "f7"  # h: undefined -> None
        "6169"
        "6378797a"  # i: "xyz"
        "616a"
        "820102"  # j: [1, 2] (nested: Python loop)
        "616b"
        "c11a00000000"  # k: tag 1 date-time (general path)
    )
    marker = "@marker@"
    wire = _image(extra_maps=[marker, marker]).replace(cbor2.dumps(marker), entry_bytes)
    fast, general = _both(wire)
    assert fast["extra_maps"] == general["extra_maps"]
    first = fast["extra_maps"][0]
    assert first["b"] == 2**32 and first["c"] == -1000 and first["d"] == 1.0 and first["e"] == 1.5
    assert first["h"] is None and first["i"] == "xyz" and first["j"] == [1, 2]
    assert first["k"].year == 1970


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(maps=_MAPS, canonical=st.booleans())
def test_random_map_arrays_decode_as_cbor2_reads_them(maps: list, canonical: bool) -> None:
    """``canonical`` makes cbor2 write floats in their shortest form (half, single)."""
    message = cbor2.dumps({"type": "custom", "extra_maps": maps}, canonical=canonical)
    oracle = cbor2.loads(message)["extra_maps"]
    for buffer in (message, memoryview(message), bytearray(message)):
        assert decode(buffer, strict=False)["extra_maps"] == oracle
    wire = _image(extra_maps=maps)  # as jfsim's encoder writes it, beside pixels
    assert wire[:3] == b"\xd9\xd9\xf7"  # cbor2 reads tagged content as frozen types: skip it
    assert decode(wire)["extra_maps"] == cbor2.loads(wire[3:])["extra_maps"] == maps


def test_truncation_anywhere_in_the_spots_is_a_protocol_error() -> None:
    wire = _image(spots=_spots(4))
    start = wire.index(b"espots")
    for cut in range(start, len(wire)):
        with pytest.raises(ProtocolError, match=r"truncated|trailing|tag 40|channel"):
            decode(wire[:cut])


def test_invalid_utf8_key_in_a_spot_names_the_field() -> None:
    wire = _image(spots=_spots(3))
    broken = wire.replace(b"\x61I", b"\x61\xff", 1)
    with pytest.raises(ProtocolError, match=r"field 'spots'.*UTF-8"):
        decode(broken)


def test_spot_array_claiming_a_billion_entries_is_rejected_without_allocating() -> None:
    wire = _image(spots=_spots(2))
    broken = wire.replace(b"espots\x82", b"espots\x9a\x40\x00\x00\x00", 1)
    with pytest.raises(ProtocolError, match=r"field 'spots'.*truncated"):
        decode(broken)


def test_scanner_vouches_for_plain_cbor_only() -> None:
    def scan(data: bytes, max_levels: int = MAX_DEPTH) -> int:
        array = np.frombuffer(data, dtype=np.uint8)
        return int(scan_plain_array(array, 0, max_levels, CONTAINER_BYTES)[0])

    good = cbor2.dumps([{"x": 1.5, "n": -3}, {"s": "t" * 40, 7: [1, [2.5, None]], "b": True}])
    assert scan(good) == len(good)
    assert scan(cbor2.dumps([1.0, 2.0, 3.5])) == len(cbor2.dumps([1.0, 2.0, 3.5]))
    assert scan(cbor2.dumps([{"x": cbor2.CBORTag(1, 0)}])) == -1  # a tag
    assert scan(cbor2.dumps(["bslz4", 2, b"pixels"])) == -1  # bytes: pixels, copied once
    assert scan(cbor2.dumps([{(1, 2): 3}])) == -1  # an array as a key
    assert scan(bytes([0x81, 0xF7])) == -1  # undefined (cbor2 has its own type for it)
    assert scan(bytes([0x81, 0x9F, 0xFF])) == -1  # an indefinite-length array
    assert scan(good[:-1]) == -1  # truncated
    assert scan(bytes([0x9A, 0xFF, 0xFF, 0xFF, 0xFF, 0xA0])) == -1  # count beyond the buffer
    assert scan(bytes([0x81, 0x7B]) + b"\xff" * 8) == -1  # a text length beyond 2**63
    nested = cbor2.dumps([[[1]]])
    assert scan(nested, max_levels=3) == len(nested) and scan(nested, max_levels=2) == -1


def test_scanner_counts_what_the_lists_and_maps_below_the_array_will_cost() -> None:
    """The decoder charges this against its budget before cbor2 builds anything."""
    data = cbor2.dumps([{"a": 1, "b": [1, 2, 3]}, [], {"c": {}}])
    end, cost = scan_plain_array(np.frombuffer(data, dtype=np.uint8), 0, 8, (100, 10, 1000, 1))
    # maps of 2, 1 and 0 pairs; lists of 3 and 0 slots (the outer array is not counted)
    assert (end, cost) == (len(data), 3 * 1000 + 3 + 2 * 100 + 30)


@pytest.mark.parametrize("buffer_type", [bytes, memoryview, bytearray])
def test_depth_limit_holds_for_maps_at_the_bottom(buffer_type: type) -> None:
    value: object = [{"a": 1}, {"a": 2}]
    for _ in range(30):
        value = [value]
    wire = _image(deep=value)
    with pytest.raises(ProtocolError, match="nesting deeper than 32"):
        decode(buffer_type(wire))
    shallow = _image(deep=[[{"a": 1}, {"a": 2}]])
    assert decode(buffer_type(shallow))["deep"] == [[{"a": 1}, {"a": 2}]]
