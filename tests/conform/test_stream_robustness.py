"""Hostile input to the stream judge: findings with the message index, never a traceback,
a hang or an allocation sized by what the input claims."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import cbor2
import numpy as np
import pytest
from cbor2 import CBORTag

from fixtures.stream_clean import SELF_DESCRIBED, StreamSpec, clean_maps, encode_map
from jfconform.stream.inputs import group_files
from jfconform.stream.judge import JudgeOptions, StreamJudge
from jfconform.stream.run import RunOptions, judge_files
from jfconform.stream.state import MAX_TRACKED_IDS


def _judge(messages: list[bytes], **options) -> list[tuple[str, str, str]]:
    judge = StreamJudge(1, JudgeOptions(**options))
    for message in messages:
        judge.feed(0, message)
    return [(rule, issue.path, issue.message) for rule, issue in judge.finish().issues[0]]


def _rules(findings: list[tuple[str, str, str]]) -> set[str]:
    return {rule for rule, _path, _message in findings}


def _image(data: CBORTag) -> bytes:
    maps = clean_maps(StreamSpec(n_images=1))
    maps[1]["data"] = {"default": data}
    return encode_map(maps[1])


@pytest.mark.parametrize(
    "wire",
    [
        SELF_DESCRIBED + bytes.fromhex("5b 0fffffffffffffff 00"),  # a byte string of 2^60 bytes
        SELF_DESCRIBED + bytes.fromhex("9b 0000000100000000"),  # an array of 2^32 items
        SELF_DESCRIBED + bytes.fromhex("bb 00000fffffffffff"),  # a map of 2^44 pairs
        SELF_DESCRIBED + b"\x81" * 100_000 + b"\x00",  # nested 100 000 deep
        SELF_DESCRIBED + bytes.fromhex("a1 6474797065 65696d6167"),  # truncated: "image" cut
        b"\xff\xfe not cbor at all",
        b"",
    ],
    ids=["bytes-2^60", "array-2^32", "map-2^44", "deep", "truncated", "garbage", "empty"],
)
def test_malformed_message_is_str_001_with_its_index(wire: bytes) -> None:
    started = time.monotonic()
    findings = _judge([encode_map({"type": "bogus"}), wire], complete_series=False)
    assert time.monotonic() - started < 30
    assert ("STR-001", "#1") in {(rule, path) for rule, path, _ in findings}


def test_huge_dims_and_claimed_sizes_are_findings_not_allocations() -> None:
    huge = [1 << 32, 1 << 32]
    raw = _image(CBORTag(40, [huge, CBORTag(69, b"\x00\x00")]))
    payload = struct.pack(">QI", 1 << 62, 8192) + b"\x00\x00\x00\x04abcd"
    claimed = _image(CBORTag(40, [[2, 2], CBORTag(69, CBORTag(56500, ["bslz4", 2, payload]))]))
    consistent = _image(
        CBORTag(40, [[1 << 30, 1 << 30], CBORTag(69, CBORTag(56500, ["bslz4", 2, payload]))])
    )
    findings = _judge([raw, claimed, consistent], complete_series=False, decompress=True)
    by_path = {(rule, path.split(" data")[0]) for rule, path, _ in findings}
    assert ("STR-010", "#0 image 0") in by_path
    assert ("STR-012", "#1 image 0") in by_path
    assert ("STR-012", "#2 image 0") in by_path  # 2^60 elements × 2 bytes ≠ 2^62


def test_decompress_walks_a_huge_but_consistent_header_without_allocating() -> None:
    total = (1 << 20) * (1 << 20) * 2
    payload = struct.pack(">QI", total, 8192) + b"\x00\x00\x00\x04abcd"
    data = CBORTag(40, [[1 << 20, 1 << 20], CBORTag(69, CBORTag(56500, ["bslz4", 2, payload]))])
    started = time.monotonic()
    findings = _judge([_image(data)], complete_series=False, decompress=True)
    assert time.monotonic() - started < 30
    assert {"STR-011", "STR-014"} & _rules(findings)


def test_random_bytes_never_raise() -> None:
    rng = np.random.default_rng(1)
    messages = [
        bytes(rng.integers(0, 256, int(n), dtype=np.uint8)) for n in rng.integers(1, 300, 200)
    ]
    messages += [SELF_DESCRIBED + m for m in messages]
    findings = _judge(messages, complete_series=False, decompress=True)
    assert "STR-001" in _rules(findings)


def test_bit_flips_in_a_real_message_never_raise() -> None:
    image = bytearray(encode_map(clean_maps(StreamSpec(n_images=1))[1]))
    rng = np.random.default_rng(2)
    messages = []
    for _ in range(300):
        damaged = bytearray(image)
        for position in rng.integers(0, len(damaged), 3):
            damaged[position] ^= 1 << int(rng.integers(0, 8))
        messages.append(bytes(damaged))
    _judge(messages, complete_series=False, decompress=True)


def test_findings_per_rule_are_capped_and_the_rest_counted() -> None:
    findings = _judge([b"\x00\x01"] * 250, complete_series=False, max_findings_per_rule=20)
    not_cbor = [f for f in findings if f[0] == "STR-001"]
    assert len(not_cbor) == 21
    assert not_cbor[-1][1] == "(more)" and "230 more" in not_cbor[-1][2]


def test_image_ids_beyond_the_tracked_range_cost_no_memory() -> None:
    maps = clean_maps(StreamSpec(n_images=2))
    maps[0]["number_of_images"] = 1 << 62
    maps[1]["image_id"] = 1 << 61
    maps[2]["image_id"] = (1 << 61) + 1
    maps[-1]["images_collected"] = 2
    findings = _judge([encode_map(m) for m in maps])
    assert MAX_TRACKED_IDS < 1 << 61
    assert _rules(findings) == {"STR-025"}  # ids 0 … 1 never arrived


def test_multipart_message_is_str_001() -> None:
    judge = StreamJudge(1, JudgeOptions(complete_series=False))
    judge.feed(0, encode_map({"type": "bogus"}), 1.0, parts=2)
    assert "STR-001" in {rule for rule, _issue in judge.finish().issues[0]}


def test_a_recording_with_a_broken_tail_keeps_what_came_before(tmp_path: Path) -> None:
    messages = [encode_map(m) for m in clean_maps(StreamSpec(n_images=3))]
    recording = tmp_path / "cut.cbors"
    recording.write_bytes(b"".join(messages[:3]) + messages[3][:50])
    result = judge_files(group_files([recording]), RunOptions())
    findings = {(rule, issue.path) for rule, issue in result.issues[0]}
    assert ("STR-001", "#3") in findings
    assert ("STR-024", "(end of input)") in findings
    assert result.statistics["by_type"] == {"start": 1, "image": 2, "?": 1}


def test_an_empty_recording_is_silent(tmp_path: Path) -> None:
    empty = tmp_path / "empty.cbors"
    empty.write_bytes(b"")
    result = judge_files(group_files([empty]), RunOptions())
    assert [rule for rule, _issue in result.issues[0]] == ["STR-026"]


def test_unknown_compression_is_a_warning_not_an_error() -> None:
    payload = CBORTag(40, [[2, 2], CBORTag(69, CBORTag(56500, ["bszstd", 2, b"\x00" * 20]))])
    judge = StreamJudge(1, JudgeOptions(complete_series=False))
    judge.feed(0, _image(payload))
    (issue,) = [i for rule, i in judge.finish().issues[0] if rule == "STR-011"]
    assert issue.severity is not None and issue.severity.letter == "W"


def test_messages_of_another_type_only_judge_their_encoding() -> None:
    findings = _judge(
        [cbor2.dumps({"type": "x-custom", "anything": [1, 2]})], complete_series=False
    )
    assert _rules(findings) == {"STR-002", "STR-006"}
