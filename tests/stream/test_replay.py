"""Replaying a recording from its file: every recorded image, its own pixels, in order."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import zmq

from jfsim.protocol import Message, decode, encode
from jfsim.recording import RecordingError, RecordingWriter, iter_recording_frames
from jfsim.stream import RecordingSource, StreamOptionError

RECORDED_ARM_DATE = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _record(path: Path, messages: list[Message]) -> Path:
    with RecordingWriter(path) as writer:
        for message in messages:
            writer.write(message)
    return path


@pytest.fixture
def record(tmp_path, make_synthetic_messages):
    """Write ``n`` synthetic images (each with its own spot list) as a ``.cbors`` file."""

    def make(n_images: int, **kwargs) -> tuple[Path, list[Message]]:
        messages = make_synthetic_messages(n_images, **kwargs)
        path = _record(tmp_path / f"series{n_images}.cbors", messages)
        return path, [m for m in messages if m.type == "image"]

    return make


def _images(series: list[dict]) -> list[dict]:
    return [message for message in series if message["type"] == "image"]


def test_every_recorded_image_goes_out_as_recorded_in_order(record, start_stream, connect):
    path, _recorded = record(120, images_per_file=10)
    source = RecordingSource(path)
    stream, (endpoint,) = start_stream(source)
    receiver = connect(endpoint)
    frames = [receiver.receive() for _ in range(122)]
    summary = stream.result()

    recorded_bytes = [frame for frame in iter_recording_frames(path)][1:-1]
    assert [bytes(frame) for frame in frames[1:-1]] == recorded_bytes
    assert summary.images_sent == 120 and summary.pool_size == 120
    assert summary.repeated_images == 0
    assert stream.streamer.frame_reuse.announcement() is None
    assert decode(frames[0])["number_of_images"] == 120


def test_images_beyond_the_recording_repeat_it_announced_with_their_analysis(
    record, start_stream, connect
):
    path, recorded = record(30)
    stream, (endpoint,) = start_stream(RecordingSource(path), number_of_images=75)
    images = _images(connect(endpoint).receive_series())
    summary = stream.result()

    assert stream.streamer.frame_reuse.announcement() == (
        "images 30–74 repeat recorded images 0–29: image k carries the pixels and analysis "
        "fields of recorded image k mod 30, with its own id and timing"
    )
    assert summary.repeated_images == 45 and summary.pool_size == 30
    assert [image["image_id"] for image in images] == list(range(75))
    for image_id, image in enumerate(images):
        source = recorded[image_id % 30]
        assert image["data"]["default"].payload == source["data"]["default"].payload
        assert image["spots"][0]["x"].value == float(image_id % 30)  # analysis follows pixels
        assert image["start_time"] == [image_id * 25000, 50_000_000]
        assert image["stop_time"] == [image_id * 25000 + 20000, 50_000_000]


def test_a_renumbered_recording_is_assembled_around_its_own_pixels(
    tmp_path, make_synthetic_messages, start_stream, connect, stream_v2_check
):
    start, *images, end = make_synthetic_messages(40)
    shifted = [Message("image", {**m.fields, "image_id": m["image_id"] + 1000}) for m in images]
    path = _record(tmp_path / "shifted.cbors", [start, *shifted, end])
    stream, (endpoint,) = start_stream(RecordingSource(path))
    receiver = connect(endpoint)
    frames = [receiver.receive() for _ in range(42)]
    stream.result()

    for image_id, frame in enumerate(frames[1:-1]):
        stream_v2_check(frame)
        message = decode(frame)
        assert message["image_id"] == image_id
        assert message.fields == {**images[image_id].fields, "image_id": image_id}


def test_a_pool_smaller_than_the_recording_is_an_announced_choice(record, start_stream, connect):
    path, recorded = record(10)
    stream, (endpoint,) = start_stream(RecordingSource(path), pool_size=4)
    images = _images(connect(endpoint).receive_series())
    stream.result()

    assert "images 4–9 repeat recorded images 0–3" in stream.streamer.frame_reuse.announcement()
    payloads = [image["data"]["default"].payload for image in images]
    assert payloads == [recorded[k % 4]["data"]["default"].payload for k in range(10)]


def test_metadata_of_a_replay_carries_each_images_own_fields(
    record, start_stream, connect, expected_metadata_entries
):
    path, _recorded = record(12)
    source = RecordingSource(path)
    stream, (endpoint,) = start_stream(
        source,
        number_of_images=20,
        rate_hz=1000.0,
        start_timeout_s=20.0,
        metadata_endpoint="tcp://127.0.0.1:*",
        metadata_period_s=0.01,
    )
    metadata = connect(stream.streamer.metadata_endpoint, zmq.SUB)
    metadata.wait_subscribed()
    connect(endpoint).receive_series()
    stream.result()

    entries = [entry for batch in metadata.receive_metadata() for entry in batch["images"]]
    assert entries == expected_metadata_entries(source, stream.streamer.prepare(), 20)


def test_arm_and_end_dates_are_stamped_at_replay_time_unless_kept(
    tmp_path, make_synthetic_messages
):
    start, *images, end = make_synthetic_messages(3)
    start = Message("start", {**start.fields, "arm_date": RECORDED_ARM_DATE})
    end = Message("end", {**end.fields, "end_date": RECORDED_ARM_DATE})
    path = _record(tmp_path / "dated.cbors", [start, *images, end])
    before = datetime.now(timezone.utc).replace(microsecond=0)

    replayed = RecordingSource(path)
    armed = replayed.start_message(3)["arm_date"]  # a stream makes its start message first
    ended = replayed.end_message(3)["end_date"]
    assert armed >= before
    assert ended >= armed
    kept = RecordingSource(path, keep_dates=True)
    assert kept.start_message(3)["arm_date"] == RECORDED_ARM_DATE
    assert kept.end_message(3)["end_date"] == RECORDED_ARM_DATE


def test_recorded_frames_decode_to_the_recorded_images(record):
    path, recorded = record(5)
    frames = RecordingSource(path).build_pool(5, None)
    assert len(frames) == 5
    for frame, image in zip(frames, recorded, strict=True):
        assert frame.pixels == image["data"]["default"]
        assert frame.pixel_fields == {"spots": image["spots"], "spot_count": 1}


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("truncated", r"message #6 at byte \d+: .*truncated"),
        ("no data", r"message #3 at byte \d+: image message: required field 'data'"),
        ("text id", r"message #2 at byte \d+: image message: field 'image_id'"),
        ("empty", "the file is empty"),
    ],
)
def test_a_damaged_recording_is_one_clear_error(
    tmp_path, make_synthetic_messages, damage, expected
):
    messages = make_synthetic_messages(6)
    if damage == "no data":
        messages[3] = Message("image", {k: v for k, v in messages[3].fields.items() if k != "data"})
    if damage == "text id":
        messages[2] = Message("image", {**messages[2].fields, "image_id": "two"})
    encoded = b"".join(_encode_unchecked(message) for message in messages)
    path = tmp_path / "damaged.cbors"
    path.write_bytes({"truncated": encoded[:-400], "empty": b""}.get(damage, encoded))
    with pytest.raises((RecordingError, StreamOptionError), match=expected) as caught:
        RecordingSource(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def _encode_unchecked(message: Message) -> bytes:
    """``encode`` without the schema check, to build broken recordings."""
    raw = encode(Message("x-unchecked", message.fields))
    text = message.type.encode()
    return raw.replace(b"\x64type\x6bx-unchecked", b"\x64type" + bytes([0x60 + len(text)]) + text)


def test_a_missing_recording_is_a_clear_error(tmp_path):
    with pytest.raises(StreamOptionError, match="no such file; make one with jfsim simulate"):
        RecordingSource(tmp_path / "nothing.cbors")


def test_indexing_a_long_recording_reports_progress(record):
    path, _recorded = record(600)
    reports: list[tuple[int, int]] = []
    RecordingSource(path, on_progress=lambda done, total: reports.append((done, total)))
    size = path.stat().st_size
    assert len(reports) == 3  # after 256 and 512 messages, and at the end
    assert reports[-1] == (size, size)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
