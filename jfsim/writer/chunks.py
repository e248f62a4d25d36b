"""Image chunks written on a thread of their own, without holding the GIL.

A received image is one ``H5Dwrite_chunk`` of its compressed bytes: a memory copy into the
page cache that takes about as long as the raw write of the same bytes. h5py holds the GIL
through that call, so the writer's Python work per image (checks, analysis fields) cannot
run meanwhile. Here the same HDF5 function is called through ctypes, which releases the
GIL, from a background thread, while h5py's own lock (``phil``) is held so HDF5 is never
entered from two threads at once: the copy of image *k* overlaps the Python work of image
*k + 1*. The bytes are written from the buffer they arrived in (a ZeroMQ frame), never
copied first.

A dataset is addressed by its ``ChunkTarget``, looked up once per data file: every look-up
through h5py (even ``dataset.id``) takes ``phil``, which the chunk thread holds while it
writes, so one per image made the submitting thread wait for each chunk in turn and the
chunk thread then for it (the queue ran dry about every 20 images).

The thread is started once per process and serves every writer; starting one per series
costs milliseconds on a loaded machine, right when the first images arrive. Each writer
counts its chunks in flight per dataset, so a data file can wait for its own chunks
(``drain(dataset)``) while the next file's keep being written, and in all: with
``MAX_PENDING`` in flight ``submit`` waits until only ``RESUME_PENDING`` are left, so the
two threads hand over once per 16 chunks rather than once per image.

Two engines with one contract (``submit`` then ``drain``):

* ``thread``: the above; available when the HDF5 library that h5py loaded can be found and
  exports ``H5Dwrite_chunk`` (``probe`` says why not otherwise).
* ``inline``: h5py's ``write_direct_chunk`` in the calling thread, the twin the tests
  compare against and the fallback of ``auto``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
from h5py._objects import phil

from jfsim.workers import Worker
from jfsim.writer import hdf5_library
from jfsim.writer.hdf5_library import hsize_t

__all__ = ["ENGINES", "ChunkTarget", "ChunkWriter", "probe"]

ENGINES = ("auto", "thread", "inline")
#: Images of one writer waiting for the I/O thread (their bytes stay referenced until
#: written): at this many, ``submit`` waits...
MAX_PENDING = 32
#: ...until no more than this many are left. Waking the submitting thread once per 16
#: chunks instead of once per chunk saves two thread switches per image.
RESUME_PENDING = 16

#: (writer, dataset identifier, row, pointer or bytes, length, object keeping the bytes alive)
_Item = tuple["ChunkWriter", int, int, Any, int, Any]


def probe() -> str | None:
    """None when the ``thread`` engine can run here, else why not."""
    return hdf5_library.probe()


def _write_chunk(item: _Item) -> None:
    """The chunk thread's work: one chunk, its outcome reported to its writer."""
    writer, dataset_id, row, data, length, _keep = item
    offset = (hsize_t * 3)(row, 0, 0)
    try:
        with phil:  # HDF5 is not thread-safe: h5py's lock, as h5py's own calls
            status = hdf5_library.library().H5Dwrite_chunk(dataset_id, 0, 0, offset, length, data)
    except Exception:  # a bad argument; the thread must live on for every writer
        status = -1
    writer._written(dataset_id, row, status)


#: The process's chunk-writing thread, shared by every writer.
_CHUNK_THREAD: Worker[_Item] = Worker("jfsim-write-chunks", _write_chunk, 4 * MAX_PENDING)


@dataclass(frozen=True, slots=True)
class ChunkTarget:
    """An image dataset as the chunk writer addresses it: its HDF5 identifier and h5py's
    direct chunk write, looked up once (see the module's docstring)."""

    dataset_id: int
    write_direct_chunk: Callable[..., None]

    @classmethod
    def of(cls, dataset: h5py.Dataset) -> ChunkTarget:
        identifier = dataset.id
        return cls(identifier.id, identifier.write_direct_chunk)


class ChunkWriter:
    """Writes ``(dataset, row, payload)`` chunks; ``drain`` before using the files again.

    Errors of the ``thread`` engine are kept and raised (as ``OSError``) by ``drain``.
    """

    def __init__(self, engine: str = "auto") -> None:
        if engine not in ENGINES:
            raise ValueError(f"chunk engine {engine!r}: use one of {', '.join(ENGINES)}")
        reason = probe()
        if engine == "thread" and reason is not None:
            raise RuntimeError(f"chunk engine 'thread' unavailable: {reason}")
        self.engine = "inline" if engine == "inline" or reason is not None else "thread"
        self._done = threading.Condition()
        self._in_flight: dict[int, int] = {}  # dataset identifier -> chunks not yet written
        self._pending = 0  # chunks of every dataset not yet written
        self._errors: dict[int, list[str]] = {}  # dataset identifier -> failed chunks

    def submit(self, target: ChunkTarget, row: int, payload: bytes | memoryview) -> None:
        """Write ``payload`` as the chunk of image ``row`` of ``target`` (shape [n, y, x]).

        ``payload`` must not change until the chunk is written (``drain``)."""
        if self.engine == "inline":
            target.write_direct_chunk((row, 0, 0), payload)
            return
        dataset_id = target.dataset_id
        with self._done:
            if self._pending >= MAX_PENDING:
                self._done.wait_for(lambda: self._pending <= RESUME_PENDING)
            self._pending += 1
            self._in_flight[dataset_id] = self._in_flight.get(dataset_id, 0) + 1
        data: Any
        keep: Any = None
        if isinstance(payload, bytes):
            data, length = payload, len(payload)
        else:  # a frame's buffer: its address, and the view that keeps the frame alive
            keep = np.frombuffer(payload, dtype=np.uint8)
            data, length = keep.ctypes.data, keep.nbytes
        _CHUNK_THREAD.put((self, dataset_id, row, data, length, keep))

    def _written(self, dataset_id: int, row: int, status: int) -> None:
        """Called by the chunk thread after each chunk."""
        with self._done:
            if status < 0:
                self._errors.setdefault(dataset_id, []).append(
                    f"image row {row}: H5Dwrite_chunk failed"
                )
            self._pending -= 1
            left = self._in_flight[dataset_id] - 1
            if left:
                self._in_flight[dataset_id] = left
            else:
                del self._in_flight[dataset_id]
            if not left or self._pending == RESUME_PENDING:
                self._done.notify_all()

    def in_flight(self, target: ChunkTarget) -> int:
        """Chunks of ``target`` submitted and not yet written."""
        return self._in_flight.get(target.dataset_id, 0)

    def drain(self, target: ChunkTarget | None = None) -> None:
        """Wait until every submitted chunk (of ``target``, or of all) is written.

        Raises:
            OSError: a chunk could not be written (the file is incomplete).
        """
        with self._done:
            if target is None:
                self._done.wait_for(lambda: not self._in_flight)
                errors = [e for found in self._errors.values() for e in found]
                self._errors.clear()
            else:
                dataset_id = target.dataset_id
                self._done.wait_for(lambda: dataset_id not in self._in_flight)
                errors = self._errors.pop(dataset_id, [])
        if errors:
            raise OSError(f"{len(errors)} image chunks not written: {errors[0]}")

    def close(self) -> None:
        """Wait for every chunk in flight (errors stay for ``drain``; the thread itself
        serves the whole process and keeps running)."""
        with self._done:
            self._done.wait_for(lambda: not self._in_flight)
