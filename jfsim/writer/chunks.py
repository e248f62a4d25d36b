"""Image chunks written on a thread of their own, without holding the GIL.

A received image is one ``H5Dwrite_chunk`` of its compressed bytes: a memory copy into the
page cache that takes about as long as the raw write of the same bytes. h5py holds the GIL
through that call, so the writer's Python work per image (checks, analysis fields) cannot
run meanwhile. Here the same HDF5 function is called from a background thread by a
compiled loop that holds no GIL (``jfsim.writer.chunk_loop``), every chunk queued meanwhile
in one call, while h5py's own lock (``phil``) is held so HDF5 is never entered from two
threads at once: the copies of images *k*, *k + 1*, … overlap the Python work of the
images after them. The bytes are written from the buffer they arrived in (a ZeroMQ frame),
never copied first.

A dataset is addressed by its ``ChunkTarget``, looked up once per data file: every look-up
through h5py (even ``dataset.id``) takes ``phil``, which the chunk thread holds while it
writes, so one per image made the submitting thread wait for each chunk in turn and the
chunk thread then for it (the queue ran dry about every 20 images).

The thread is started once per process and serves every writer; starting one per series
costs milliseconds on a loaded machine, right when the first images arrive. Each writer
counts its chunks in flight per dataset, so a data file can wait for its own chunks
(``drain(dataset)``) while the next file's keep being written, and in all: with
``MAX_PENDING`` in flight ``submit`` waits until only ``RESUME_PENDING`` are left, so the
two threads hand over once per 16 chunks rather than once per image, and a batch holds
HDF5's lock for at most ``MAX_BATCH`` chunks (~4 ms of JF4M images) before the main
thread's own HDF5 calls get their turn.

Two engines with one contract (``submit`` then ``drain``):

* ``thread``: the above; available when the HDF5 library that h5py loaded can be found and
  the compiled loop can be built (``probe`` says why not otherwise).
* ``inline``: h5py's ``write_direct_chunk`` in the calling thread, the twin the tests
  compare against and the fallback of ``auto``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import h5py
import numpy as np

from jfsim.workers import BatchWorker
from jfsim.writer import chunk_loop, hdf5_library
from jfsim.writer.chunk_loop import ChunkBatch, write_chunk_address
from jfsim.writer.hdf5_library import H5P_DEFAULT, Hdf5Library, hsize_array

__all__ = ["ENGINES", "ChunkTarget", "ChunkWriter", "probe"]

ENGINES = ("auto", "thread", "inline")
#: Images of one writer waiting for the I/O thread (their bytes stay referenced until
#: written): at this many, ``submit`` waits...
MAX_PENDING = 32
#: ...until no more than this many are left. Waking the submitting thread once per 16
#: chunks instead of once per chunk saves two thread switches per image.
RESUME_PENDING = 16
#: Chunks written under one hold of HDF5's lock, at most.
MAX_BATCH = MAX_PENDING - RESUME_PENDING

#: (writer, target, row, the chunk's bytes as an array that keeps them alive)
_Item = tuple["ChunkWriter", "ChunkTarget", int, np.ndarray]


def probe() -> str | None:
    """None when the ``thread`` engine can run here, else why not."""
    return chunk_loop.probe()


class _BatchWriter:
    """The chunk thread's work: every queued chunk in one compiled call, each outcome
    reported to its writer."""

    def __init__(self) -> None:
        self._batch: ChunkBatch | None = None  # made on the thread's first batch

    def __call__(self, items: list[_Item]) -> None:
        statuses: list[int] = []
        first = 0
        while first < len(items):  # runs of chunks of one HDF5 instance, each under its lock
            library = items[first][1].library
            end = first + 1
            while end < len(items) and items[end][1].library is library:
                end += 1
            statuses += self._write_run(items[first:end], library)
            first = end
        outcomes: dict[ChunkWriter, list[tuple[int, int, int]]] = {}
        for (writer, target, row, _data), status in zip(items, statuses, strict=True):
            outcomes.setdefault(writer, []).append((target.dataset_id, row, status))
        for writer, written in outcomes.items():
            writer._written(written)

    def _write_run(self, items: list[_Item], library: Hdf5Library | None) -> list[int]:
        try:
            assert library is not None  # the thread engine runs only where it can be called
            if self._batch is None:
                self._batch = ChunkBatch(MAX_BATCH)
            batch = self._batch
            for index, (_writer, target, row, data) in enumerate(items):
                batch.put(index, target.dataset_id, row, data)
            address = _write_chunk_address(library)
            with library.lock:  # HDF5 is not thread-safe: the instance's lock
                return batch.write(len(items), address).tolist()
        except Exception:  # a bad argument; the thread must live on for every writer
            return [-1] * len(items)


@cache
def _write_chunk_address(library: Hdf5Library) -> int:
    return write_chunk_address(library)


#: The process's chunk-writing thread, shared by every writer.
_CHUNK_THREAD: BatchWorker[_Item] = BatchWorker(
    "jfsim-write-chunks", _BatchWriter(), 4 * MAX_PENDING, MAX_BATCH
)


@dataclass(frozen=True, slots=True)
class ChunkTarget:
    """An image dataset as the chunk writer addresses it: its HDF5 identifier, the HDF5
    instance it lives in, and a direct chunk write, looked up once (see the module's
    docstring)."""

    dataset_id: int
    library: Hdf5Library | None  # None: h5py's instance, whose library cannot be called
    write_direct_chunk: Callable[[tuple[int, int, int], bytes | memoryview], None]

    @classmethod
    def of(cls, dataset: h5py.Dataset) -> ChunkTarget:
        """A dataset of h5py's instance."""
        identifier = dataset.id
        library = hdf5_library.library() if hdf5_library.probe() is None else None
        return cls(identifier.id, library, identifier.write_direct_chunk)

    @classmethod
    def private(cls, dataset_id: int, library: Hdf5Library) -> ChunkTarget:
        """A dataset of the private instance (``library``)."""

        def write_direct_chunk(offset: tuple[int, int, int], data: bytes | memoryview) -> None:
            chunk = np.frombuffer(data, dtype=np.uint8)
            with library.lock:
                status = library.H5Dwrite_chunk(
                    dataset_id,
                    H5P_DEFAULT,
                    0,
                    hsize_array(offset),
                    chunk.nbytes,
                    chunk.ctypes.data,
                )
            library.check(status, "H5Dwrite_chunk", f"image row {offset[0]}")

        return cls(dataset_id, library, write_direct_chunk)


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
        # a view of the bytes that keeps them (a frame's buffer) alive, not a copy
        _CHUNK_THREAD.put((self, target, row, np.frombuffer(payload, dtype=np.uint8)))

    def _written(self, written: list[tuple[int, int, int]]) -> None:
        """Called by the chunk thread after each batch: (dataset, row, HDF5 status) of
        each of this writer's chunks in it."""
        with self._done:
            wake = False
            for dataset_id, row, status in written:
                if status < 0:
                    self._errors.setdefault(dataset_id, []).append(
                        f"image row {row}: H5Dwrite_chunk failed"
                    )
                left = self._in_flight[dataset_id] - 1
                if left:
                    self._in_flight[dataset_id] = left
                else:
                    del self._in_flight[dataset_id]
                    wake = True
            was_pending = self._pending
            self._pending -= len(written)
            if wake or self._pending <= RESUME_PENDING < was_pending:
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
