"""``scan_message``: where each entry of an encoded message lies, values left undecoded."""

from __future__ import annotations

import numpy as np
import pytest

from jfsim.protocol import (
    Compression,
    Message,
    PixelArray,
    ProtocolError,
    Rational,
    decode,
    encode,
    scan_message,
)


def _image() -> Message:
    pixels = np.arange(20, dtype=np.int16).reshape(4, 5)
    return Message(
        "image",
        {
            "series_id": 1,
            "series_unique_id": "1:s",
            "image_id": 3,
            "real_time": Rational(1, 5),
            "start_time": Rational(6, 5),
            "stop_time": Rational(7, 5),
            "data": {"default": PixelArray.from_numpy(pixels, Compression.BSLZ4)},
            "spots": [{"x": 1.5, "y": 2.5, "I": 30.0, "indexed": False}] * 40,
            "spot_count": 40,
        },
    )


def test_entries_cover_the_message_and_decode_only_what_is_asked():
    encoded = encode(_image())
    layout = scan_message(encoded, decode_keys={"image_id", "start_time"})
    assert layout.type == "image" and layout.canonical_head
    assert (layout.start, layout.end) == (0, len(encoded))
    assert [key for key, _, _ in layout.entries] == list(_image().fields)
    assert layout.values == {"image_id": 3, "start_time": Rational(6, 5)}
    # the spans tile the message after the 'type' entry, and each holds its key and value
    first = layout.entries[0][1]
    assert all(a[2] == b[1] for a, b in zip(layout.entries, layout.entries[1:], strict=False))
    assert layout.entries[-1][2] == len(encoded)
    head = encoded[:first]
    for key, start, end in layout.entries:
        one = decode(head[:3] + bytes([0xA2]) + head[4:] + encoded[start:end], strict=False)
        assert one.fields == {key: _image()[key]}


def test_a_message_at_an_offset_in_a_sequence():
    first, second = (
        encode(_image()),
        encode(Message("end", {"series_id": 1, "series_unique_id": "1:s"})),
    )
    layout = scan_message(first + second, len(first))
    assert (layout.type, layout.start, layout.end) == ("end", len(first), len(first) + len(second))


@pytest.mark.parametrize(
    ("cut", "wrong_type", "expected"),
    [(50, False, "truncated"), (None, True, "field 'image_id'")],
)
def test_malformed_messages_raise_protocol_errors(cut, wrong_type, expected):
    encoded = encode(_image())
    if wrong_type:
        encoded = encoded.replace(b"\x68image_id\x03", b"\x68image_id\x61x")
    with pytest.raises(ProtocolError, match=expected):
        scan_message(encoded[:cut], decode_keys={"image_id"})
