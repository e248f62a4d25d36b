"""A malformed-input corpus: each case raises ProtocolError, never a crash, hang or huge alloc."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jfsim.protocol import Compression, Message, PixelArray, ProtocolError, decode, encode


def _image(
    compression: Compression = Compression.BSLZ4, shape: tuple[int, int] = (13, 21)
) -> bytes:
    pixels = np.random.default_rng(5).poisson(2.0, size=shape).astype("<u2")
    return encode(
        Message(
            "image",
            {
                "series_id": 1,
                "series_unique_id": "u",
                "image_id": 4,
                "real_time": [1, 50],
                "data": {"default": PixelArray.from_numpy(pixels, compression)},
            },
        )
    )


def _with_array(array: PixelArray) -> bytes:
    return encode(
        Message(
            "image",
            {"series_id": 1, "series_unique_id": "u", "image_id": 0, "data": {"default": array}},
        )
    )


def _replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, f"{old!r} must occur exactly once"
    return data.replace(old, new)


def _payload_offset(data: bytes) -> int:
    """Offset of the bslz4 header inside an encoded image (after 'bslz4', 02, byte-string head)."""
    start = data.index(b"\x65bslz4\x02") + 7
    head = data[start] & 0x1F
    return start + 1 + {24: 1, 25: 2, 26: 4, 27: 8}.get(head, 0)


def _corrupt_lz4_block(data: bytes) -> bytes:
    offset = _payload_offset(data) + 16
    return data[:offset] + bytes(b ^ 0xFF for b in data[offset : offset + 12]) + data[offset + 12 :]


def _terabyte_header(data: bytes) -> bytes:
    offset = _payload_offset(data)
    return data[:offset] + struct.pack(">Q", 5 << 40) + data[offset + 8 :]


CASES: dict[str, Callable[[], bytes]] = {
    "empty buffer": lambda: b"",
    "non-map top level (array)": lambda: b"\xd9\xd9\xf7\x82\x01\x02",
    "non-map top level (text)": lambda: b"\x64type",
    "empty map": lambda: b"\xd9\xd9\xf7\xa0",
    "type not first": lambda: b"\xa2\x69series_id\x01\x64type\x63end",
    "type not text": lambda: b"\xa1\x64type\x05",
    "trailing bytes": lambda: _image() + b"\x00",
    "missing required image_id": lambda: _replace_once(
        _image(), b"\x68image_id\x04", b"\x68image_iX\x04"
    ),
    "image_id as text": lambda: _replace_once(_image(), b"\x68image_id\x04", b"\x68image_id\x614"),
    "negative series_id": lambda: _replace_once(
        _image(), b"\x69series_id\x01", b"\x69series_id\x20"
    ),
    "data not a map": lambda: _replace_once(_image(), b"\x64data\xa1", b"\x64data\x81"),
    "float field sent as integer": lambda: (
        b"\xa4\x64type\x65start\x69series_id\x01\x70series_unique_id\x61u"
        b"\x6dbeam_center_x\x19\x02\x00"
    ),
    "rational with zero denominator": lambda: _replace_once(
        _image(), b"\x82\x01\x18\x32", b"\x82\x01\x00"
    ),
    "unsupported typed-array tag (float128)": lambda: _replace_once(
        _image(), b"\xd8\x45", b"\xd8\x53"
    ),
    "column-major tag 1040": lambda: _replace_once(_image(), b"\xd8\x28", b"\xd9\x04\x10"),
    "unknown compression algorithm": lambda: _replace_once(_image(), b"\x65bslz4", b"\x65bszst"),
    "bslz4 element size disagrees with dtype": lambda: _replace_once(
        _image(), b"\x65bslz4\x02", b"\x65bslz4\x04"
    ),
    "typed array holding text": lambda: _replace_once(
        _image(Compression.NONE, (2, 2)), b"\xd8\x45\x48", b"\xd8\x45\x68"
    ),
    "raw array byte length != shape x dtype": lambda: _with_array(
        PixelArray((4, 4), np.dtype("<u2"), Compression.NONE, b"\x00" * 30)
    ),
    "bslz4 header size != shape x dtype": lambda: _with_array(
        PixelArray(
            (5, 5),
            np.dtype("<u2"),
            Compression.BSLZ4,
            PixelArray.from_numpy(np.zeros((4, 4), "<u2")).payload,
        )
    ),
    "bslz4 header declaring terabytes": lambda: _terabyte_header(_image()),
    "shape declaring terabytes": lambda: _with_array(
        PixelArray((1 << 20, 1 << 20), np.dtype("<u4"), Compression.BSLZ4, b"\x00" * 40)
    ),
    "bslz4 block length past the end": lambda: _replace_once(
        _image(),
        _image()[_payload_offset(_image()) + 12 : _payload_offset(_image()) + 16],
        b"\x00\x10\x00\x00",
    ),
    "lz4 header size != shape x dtype": lambda: _with_array(
        PixelArray(
            (3, 3),
            np.dtype("u1"),
            Compression.LZ4,
            struct.pack(">QI", 10, 8192) + b"\x00\x00\x00\x01\x00",
        )
    ),
    "byte string declaring 2**64-1 bytes": lambda: b"\xa1\x64type\x5b" + b"\xff" * 8,
    "array declaring 2**64-1 items": lambda: b"\xa2\x64type\x63end\x61x\x9b" + b"\xff" * 8,
    "map declaring 2**32 pairs": lambda: b"\xba\xff\xff\xff\xff\x64type\x63end",
    "nesting 100000 levels deep": lambda: b"\xa2\x64type\x63end\x61x" + b"\x81" * 100_000 + b"\x00",
    "invalid UTF-8": lambda: b"\xa2\x64type\x63end\x61x\x62\xff\xfe",
    "reserved additional info": lambda: b"\xa2\x64type\x63end\x61x\x1c",
    "unexpected break code": lambda: b"\xa2\x64type\x63end\x61x\xff",
    "date-time that is not RFC 3339": lambda: (
        b"\xa4\x64type\x63end\x69series_id\x01\x70series_unique_id\x61u\x68end_date\xc0\x63bad"
    ),
    "date-time without offset": lambda: (
        b"\xa4\x64type\x63end\x69series_id\x01\x70series_unique_id\x61u"
        b"\x68end_date\xc0\x732023-02-10T15:49:05"
    ),
    "integer map key at top level": lambda: b"\xa2\x64type\x63end\x01\x02",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_case_raises_protocol_error(name: str) -> None:
    data = CASES[name]()
    with pytest.raises(ProtocolError) as caught:
        decode(data)
    text = str(caught.value)
    assert text and "\n" not in text


@pytest.mark.parametrize("compression", [Compression.BSLZ4, Compression.LZ4, Compression.NONE])
def test_every_truncation_raises_protocol_error(compression: Compression) -> None:
    data = _image(compression, (9, 11))
    for cut in range(len(data)):
        with pytest.raises(ProtocolError):
            decode(data[:cut])


@pytest.mark.parametrize("compression", [Compression.BSLZ4, Compression.LZ4])
def test_corrupt_lz4_data_fails_on_decompression(compression: Compression) -> None:
    pixels = np.random.default_rng(1).poisson(3.0, (64, 70)).astype("<u2")
    array = PixelArray.from_numpy(pixels, compression)
    payload = bytearray(array.payload)
    payload[16:28] = bytes(b ^ 0x5A for b in payload[16:28])
    broken = PixelArray(array.shape, array.dtype, compression, bytes(payload))
    decoded = decode(_with_array(broken))["data"]["default"]
    with pytest.raises(ProtocolError, match="corrupt LZ4"):
        decoded.to_numpy()


def test_messages_name_the_type_and_field() -> None:
    with pytest.raises(ProtocolError, match=r"^image message: field 'image_id': expected unsigned"):
        decode(CASES["image_id as text"]())
    with pytest.raises(ProtocolError, match=r"image message: required field 'image_id' is missing"):
        decode(CASES["missing required image_id"]())
    with pytest.raises(ProtocolError, match="first key of the message must be 'type'"):
        decode(CASES["type not first"]())


def test_lenient_decoding_skips_schema_checks_only() -> None:
    message = decode(CASES["image_id as text"](), strict=False)
    assert message["image_id"] == "4"
    with pytest.raises(ProtocolError):
        decode(CASES["trailing bytes"](), strict=False)


FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_protocol_error(data: bytes) -> None:
    try:
        decode(data)
    except ProtocolError:
        pass


@FUZZ
@given(st.data())
def test_mutated_messages_never_escape_protocol_error(data: st.DataObject) -> None:
    original = bytearray(_image(data.draw(st.sampled_from(list(Compression))), (5, 9)))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    try:
        message = decode(bytes(original))
        if message.type == "image":  # a mutated type or key makes another, valid message
            for array in message["data"].values():
                array.to_numpy()
    except ProtocolError:
        pass
