"""Recordings: RFC 8742 CBOR sequences of messages on disk (``.cbors``; ``.cbor`` = one).

The streamer replays the raw bytes (``iter_recording_frames``) without re-encoding; tools
read decoded messages (``read_recording``). Files are written to ``<name>.tmp`` and renamed
on a clean close, so no half-written recording ever carries the final name.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

from jfsim.atomic import CommitOnSuccess
from jfsim.errors import JfsimError
from jfsim.protocol import Message, ProtocolError, decode, encode, split_sequence

__all__ = ["RecordingError", "RecordingWriter", "iter_recording_frames", "read_recording"]


class RecordingError(JfsimError):
    """A recording file cannot be opened, framed or written."""


def iter_recording_frames(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """Yield the raw encoded bytes of each message in the recording at ``path``.

    Raises:
        RecordingError: the file cannot be read, or a message cannot be framed (the text
            names the file, the message index and the byte offset).
    """
    path = Path(path)
    problem = None
    try:
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return
            with (
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
                closing(split_sequence(mapped)) as frames,
            ):
                while problem is None:
                    try:
                        frame = next(frames)
                    except StopIteration:
                        break
                    except ProtocolError as error:
                        problem = str(error)
                        break
                    data = bytes(frame)
                    frame.release()
                    yield data
    except OSError as error:
        raise RecordingError(f"{path}: cannot read recording: {error.strerror or error}") from None
    if problem is not None:
        raise RecordingError(f"{path}: {problem}")


def read_recording(path: str | os.PathLike[str], *, strict: bool = True) -> Iterator[Message]:
    """Yield each decoded message of the recording at ``path`` (pixels stay compressed)."""
    for index, frame in enumerate(iter_recording_frames(path)):
        try:
            yield decode(frame, strict=strict)
        except ProtocolError as error:
            raise RecordingError(f"{path}: message #{index}: {error}") from None


class RecordingWriter(CommitOnSuccess):
    """Append messages to ``path`` through ``path + '.tmp'``; renamed on a clean close.

    Use as a context manager. If the block raises, the ``.tmp`` file is removed and the
    final name is never created.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.tmp_path = self.path.with_name(self.path.name + ".tmp")
        self.count = 0
        self.bytes_written = 0
        try:
            self._handle = self.tmp_path.open("wb")
        except OSError as error:
            raise RecordingError(
                f"{self.tmp_path}: cannot create recording: {error.strerror or error}"
            ) from None

    def write(self, message: Message) -> None:
        """Encode and append one message."""
        self.write_encoded(encode(message))

    def write_encoded(self, data: bytes | bytearray | memoryview) -> None:
        """Append one already-encoded message as it is."""
        try:
            self.bytes_written += self._handle.write(data)
        except OSError as error:
            raise RecordingError(
                f"{self.tmp_path}: write failed: {error.strerror or error}"
            ) from None
        self.count += 1

    def close(self) -> None:
        """Flush and move the finished file to its final name."""
        if self._handle.closed:
            return
        self._handle.close()
        os.replace(self.tmp_path, self.path)

    def abort(self) -> None:
        """Drop the partial file."""
        if not self._handle.closed:
            self._handle.close()
        self.tmp_path.unlink(missing_ok=True)
