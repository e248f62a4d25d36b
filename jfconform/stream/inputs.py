"""Where the judged messages come from: live ZeroMQ sockets, or recordings on disk.

A live run connects one PULL socket per endpoint (the sender binds PUSH, as a DCU does), or
one SUB socket subscribed to everything (``subscribe``: preview and metadata PUB sockets).
Files are CBOR sequences (RFC 8742): each ``.cbors`` recording is one input, and all the
other files, taken in the order given, make one more (single-message ``.cbor`` files,
such as the DECTRIS test messages).

Only transport lives here: bytes in, bytes out. The messages are judged by
:mod:`jfconform.stream.judge`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cbor2
import zmq

__all__ = [
    "ENDPOINT_SCHEMES",
    "FileSource",
    "InputError",
    "LiveSockets",
    "Received",
    "Unsplittable",
    "group_files",
    "is_endpoint",
    "read_messages",
]

ENDPOINT_SCHEMES = ("tcp://", "ipc://", "inproc://", "pgm://", "epgm://", "vmci://")
#: Receive queue per socket: what the judge may hold while it is busy (the sender waits or
#: drops beyond it, as it would with a writer).
RCVHWM = 100
#: Waits are cut into slices of this length so that Ctrl-C is seen promptly.
POLL_SLICE_S = 0.1


class InputError(Exception):
    """An input cannot be used at all (bad endpoint, unreadable file); exit status 2."""


def is_endpoint(text: str) -> bool:
    return text.startswith(ENDPOINT_SCHEMES)


@dataclass(frozen=True, slots=True)
class FileSource:
    """One input made of files read one after the other."""

    label: str
    paths: tuple[Path, ...]


def group_files(paths: Sequence[Path]) -> list[FileSource]:
    """Each ``.cbors`` file is one input; the other files, in order, make one more."""
    sources: list[FileSource] = []
    loose: list[Path] = []
    for path in paths:
        if path.suffix == ".cbors":
            sources.append(FileSource(str(path), (path,)))
        else:
            loose.append(path)
    if loose:
        label = str(loose[0]) if len(loose) == 1 else f"{loose[0]} … ({len(loose)} files)"
        sources.append(FileSource(label, tuple(loose)))
    return sources


@dataclass(frozen=True, slots=True)
class Unsplittable:
    """The rest of a file from ``offset`` on cannot be split into CBOR items."""

    path: Path
    offset: int
    size: int
    reason: str


def read_messages(source: FileSource) -> Iterator[bytes | Unsplittable]:
    """Each CBOR item of the source's files, as bytes; an :class:`Unsplittable` ends a file
    whose rest is not CBOR. Raises :class:`InputError` when a file cannot be read."""
    for path in source.paths:
        try:
            handle = path.open("rb")
        except OSError as error:
            raise InputError(f"{path}: cannot read ({error.strerror})") from error
        with handle:
            size = os.fstat(handle.fileno()).st_size
            decoder = cbor2.CBORDecoder(handle)
            offset = 0
            while offset < size:
                try:
                    decoder.decode()
                    end = handle.tell()
                except Exception as error:  # anything cbor2 raises means the rest is not CBOR
                    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                    yield Unsplittable(path, offset, size - offset, reason[:200])
                    break
                handle.seek(offset)
                data = handle.read(end - offset)
                handle.seek(end)
                offset = end
                yield data


@dataclass(frozen=True, slots=True)
class Received:
    """One message from a live socket, with its arrival time (monotonic seconds)."""

    socket: int
    data: bytes | memoryview
    arrival_s: float
    frames: int


class LiveSockets:
    """PULL (or SUB) sockets connected to the endpoints; ``receive`` waits on all of them."""

    def __init__(self, endpoints: Sequence[str], *, subscribe: bool = False) -> None:
        self.endpoints = tuple(endpoints)
        self._context = zmq.Context()
        self._sockets: list[zmq.Socket] = []
        self._poller = zmq.Poller()
        try:
            for endpoint in self.endpoints:
                socket = self._context.socket(zmq.SUB if subscribe else zmq.PULL)
                socket.setsockopt(zmq.LINGER, 0)
                socket.setsockopt(zmq.RCVHWM, RCVHWM)
                if subscribe:
                    socket.setsockopt(zmq.SUBSCRIBE, b"")
                self._sockets.append(socket)
                try:
                    socket.connect(endpoint)
                except zmq.ZMQError as error:
                    raise InputError(
                        f"{endpoint}: cannot connect ({error}); give tcp://HOST:PORT of the "
                        "sender's bound socket"
                    ) from None
                self._poller.register(socket, zmq.POLLIN)
        except BaseException:
            self.close()
            raise
        self._index = {socket: index for index, socket in enumerate(self._sockets)}

    def __enter__(self) -> LiveSockets:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for socket in self._sockets:
            socket.close(linger=0)
        self._sockets = []
        self._context.term()

    def receive(self, timeout_s: float) -> list[Received]:
        """Every message ready within ``timeout_s`` (at most one per socket); [] on silence.

        A busy stream is read without polling: each socket is asked once without waiting,
        and only when none has anything does the call wait (in slices, for Ctrl-C).
        """
        received = self._ready()
        deadline = time.monotonic() + timeout_s
        while not received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if self._poller.poll(int(min(remaining, POLL_SLICE_S) * 1000) + 1):
                received = self._ready()
        return received

    def _ready(self) -> list[Received]:
        received = []
        for index, socket in enumerate(self._sockets):
            try:
                frame = socket.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                continue
            data = frame.buffer  # a view of ZeroMQ's message: the pixels are never copied
            arrival = time.monotonic()
            frames = 1
            while socket.getsockopt(zmq.RCVMORE):  # a multi-part message: count its frames
                socket.recv()
                frames += 1
            received.append(Received(index, data, arrival, frames))
        return received
