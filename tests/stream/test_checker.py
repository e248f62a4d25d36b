"""The tests' own Stream V2 checker: it must pass real DECTRIS messages and catch bad ones."""

from __future__ import annotations

import cbor2
import pytest


def test_real_dectris_messages_pass(shared_testdata, stream_v2_check):
    paths = sorted((shared_testdata / "dectris-stream2").glob("*/*.cbor"))
    assert paths, "no DECTRIS test messages found"
    types = set()
    for path in paths:
        message = stream_v2_check(path.read_bytes())
        types.add(message["type"])
        if message["type"] == "image":
            channel = next(iter(message["data"].values()))
            assert channel.algorithm in ("bslz4", "lz4")
    assert types == {"image", "end"}


def _message(fields: dict) -> bytes:
    return b"\xd9\xd9\xf7" + cbor2.dumps(fields)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (cbor2.dumps({"type": "end", "series_id": 1}), "no 55799 prefix"),
        (_message({"series_id": 1, "type": "end"}), "first map key is not 'type'"),
        (_message({"type": "start", "beam_center_x": 512}), "Float field 'beam_center_x'"),
        (b"\xd9\xd9\xf7\xbf\x64type\x63end\xff", "indefinite-length"),
        (_message({"type": "end"}) + b"\x00", "bytes after the top-level map"),
        (
            _message({"type": "image", "data": {"default": cbor2.CBORTag(40, [[2, 2], b""])}}),
            "not a known typed array",
        ),
        (
            _message(
                {"type": "image", "data": {"default": cbor2.CBORTag(
                    40, [[2, 2], cbor2.CBORTag(69, b"\x00" * 6)])}}
            ),
            "raw pixels: 6 bytes, dims need 8",
        ),
        (
            _message(
                {"type": "image", "data": {"default": cbor2.CBORTag(
                    40, [[2, 2], cbor2.CBORTag(69, cbor2.CBORTag(
                        56500, ["bslz4", 4, b"\x00" * 16]))])}}
            ),
            "bslz4 modifier 4 != element size 2",
        ),
    ],
)  # fmt: skip
def test_violations_are_caught(data, problem, stream_v2_check):
    with pytest.raises(AssertionError, match=problem):
        stream_v2_check(data)
