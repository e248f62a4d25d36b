"""The real DECTRIS Stream V2 messages decode to EXPECTED.json (through ``jfsim dump``)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jfsim.protocol import Compression, PixelArray, decode, encode


def _files(dectris_dir: Path) -> list[Path]:
    return sorted(dectris_dir.glob("*/*.cbor"))


def _check_against_expected(record: dict[str, Any], expected: dict[str, Any]) -> None:
    assert record["type"] == expected["type"]
    keys = [k for k in record if k not in ("source", "index", "bytes")]
    assert keys == expected["top_level_keys_in_wire_order"]
    assert record["series_id"] == expected["series_id"]
    assert record["series_unique_id"] == expected["series_unique_id"]
    if expected["type"] != "image":
        return
    assert record["image_id"] == expected["image_id"]
    for name in ("real_time", "start_time", "stop_time"):
        assert record[name] == expected[name]["rational"]
    assert datetime.fromisoformat(record["series_date"]) == datetime.fromisoformat(
        expected["series_date"]
    )
    assert record["user_data"] == expected["user_data"]
    assert list(record["data"]) == expected["channels"]
    for channel, want in expected["data"].items():
        got = record["data"][channel]
        assert got["shape"] == want["shape"]
        assert got["dtype"] == want["dtype"]
        assert got["compression"] == want["compression_algorithm"]
        assert got["compressed_bytes"] == want["compressed_bytes"]
        assert got["sum"] == want["pixel_sum"]
        assert got["max"] == want["pixel_max"]
        assert got["min"] == want["pixel_min"]
        assert got["nodata_count"] == want["count_equal_dtype_max"]
        assert got["sha256"] == want["sha256_decompressed"]


def test_dump_json_matches_expected_for_every_file(
    dectris_dir: Path, dectris_expected: dict[str, Any], run_jfsim
) -> None:
    files = _files(dectris_dir)
    assert len(files) == 16
    result = run_jfsim("dump", "--json", *map(str, files))
    assert result.returncode == 0, result.stderr.decode()
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [record["source"] for record in records] == [str(path) for path in files]
    for path, record in zip(files, records, strict=True):
        key = f"{path.parent.name}/{path.name}"
        _check_against_expected(record, dectris_expected["files"][key])


def test_decode_then_encode_reproduces_the_dectris_bytes(dectris_dir: Path) -> None:
    for path in _files(dectris_dir):
        wire = path.read_bytes()
        message = decode(wire)
        assert encode(message) == wire, path


def test_compressed_payloads_are_the_wire_bytes(
    dectris_dir: Path, dectris_expected: dict[str, Any]
) -> None:
    path = dectris_dir / "r500k_bm_bslz4_32bit" / "000002.cbor"
    want = dectris_expected["files"]["r500k_bm_bslz4_32bit/000002.cbor"]["data"]
    for channel, array in decode(path.read_bytes())["data"].items():
        assert (
            hashlib.sha256(array.payload).hexdigest() == want[channel]["sha256_compressed_payload"]
        )


@pytest.mark.parametrize(
    "variant", ["r500k_bm_bslz4_8bit", "r500k_bm_bslz4_16bit", "r500k_bm_lz4_16bit"]
)
def test_recompressed_pixels_decode_to_the_same_bytes(dectris_dir: Path, variant: str) -> None:
    array = decode((dectris_dir / variant / "000001.cbor").read_bytes())["data"]["threshold_1"]
    pixels = array.to_numpy()
    again = PixelArray.from_numpy(pixels, Compression(array.compression))
    assert (
        hashlib.sha256(again.to_numpy().tobytes()).digest()
        == hashlib.sha256(pixels.tobytes()).digest()
    )
    assert np.array_equal(again.to_numpy(), pixels)
