"""Recordings on disk: RFC 8742 sequences, written through .tmp and renamed."""

from __future__ import annotations

from pathlib import Path

import pytest

from jfsim.protocol import Message, encode
from jfsim.recording import (
    RecordingError,
    RecordingWriter,
    iter_recording_frames,
    read_recording,
)


def _series(make_image_message) -> list[Message]:
    start = Message("start", {"series_id": 7, "series_unique_id": "7:sample", "image_size_x": 21})
    images = [make_image_message(image_id=i, seed=i) for i in range(3)]
    end = Message("end", {"series_id": 7, "series_unique_id": "7:sample", "images_collected": 3})
    return [start, *images, end]


def test_writer_uses_tmp_then_renames(tmp_path: Path, make_image_message) -> None:
    path = tmp_path / "run.cbors"
    messages = _series(make_image_message)
    with RecordingWriter(path) as writer:
        writer.write(messages[0])
        assert not path.exists() and (tmp_path / "run.cbors.tmp").exists()
        for message in messages[1:]:
            writer.write_encoded(encode(message))
    assert path.exists() and not (tmp_path / "run.cbors.tmp").exists()
    assert writer.count == len(messages)
    assert path.stat().st_size == writer.bytes_written
    assert list(read_recording(path)) == messages


def test_frames_are_the_exact_encoded_bytes(tmp_path: Path, make_image_message) -> None:
    path = tmp_path / "run.cbors"
    encoded = [encode(m) for m in _series(make_image_message)]
    with RecordingWriter(path) as writer:
        for data in encoded:
            writer.write_encoded(data)
    assert list(iter_recording_frames(path)) == encoded


def test_failed_block_leaves_no_file(tmp_path: Path, image_message: Message) -> None:
    path = tmp_path / "run.cbors"
    with pytest.raises(RuntimeError), RecordingWriter(path) as writer:
        writer.write(image_message)
        raise RuntimeError("simulated failure")
    assert list(tmp_path.iterdir()) == []


def test_single_cbor_file_is_a_recording_of_one(tmp_path: Path, image_message: Message) -> None:
    path = tmp_path / "image.cbor"
    path.write_bytes(encode(image_message))
    assert list(read_recording(path)) == [image_message]


def test_truncated_recording_names_file_and_message(tmp_path: Path, make_image_message) -> None:
    path = tmp_path / "cut.cbors"
    data = b"".join(encode(m) for m in _series(make_image_message))
    path.write_bytes(data[:-5])
    with pytest.raises(RecordingError, match=r"cut\.cbors: message #4 at byte \d+: truncated"):
        list(iter_recording_frames(path))


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.cbors"
    empty.write_bytes(b"")
    assert list(read_recording(empty)) == []
    with pytest.raises(RecordingError, match="cannot read recording"):
        list(read_recording(tmp_path / "absent.cbors"))
