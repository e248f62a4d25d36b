"""The chunk thread: batches of queued chunks in one compiled call, failures reported."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest

from jfsim.protocol import bslz4
from jfsim.workers import BatchWorker
from jfsim.writer.chunks import ChunkTarget, ChunkWriter, probe
from jfsim.writer.datafile import BITSHUFFLE_LZ4

SHAPE = (4, 8, 16)


def image_dataset(h5: h5py.File) -> h5py.Dataset:
    filter_id, options = BITSHUFFLE_LZ4
    return h5.create_dataset(
        "data", SHAPE, dtype="<u2", chunks=(1, *SHAPE[1:]), compression=filter_id,
        compression_opts=options, fillvalue=7,
    )  # fmt: skip


@pytest.fixture
def thread_engine() -> None:
    if probe() is not None:
        pytest.skip(f"chunk engine 'thread' unavailable here: {probe()}")


def test_a_batch_writes_each_chunk_at_its_row(tmp_path, thread_engine):
    """Rows submitted out of order, from bytes and from a frame's memoryview, come back
    where they belong; the row never written reads as the fill value."""
    frames = [np.full(SHAPE[1:], row * 100 + 1, dtype="<u2") for row in range(SHAPE[0])]
    writer = ChunkWriter("thread")
    with h5py.File(tmp_path / "images.h5", "w") as h5:
        target = ChunkTarget.of(image_dataset(h5))
        for row in (3, 0, 2):
            payload = bslz4.compress(frames[row])
            writer.submit(target, row, payload if row != 0 else memoryview(bytearray(payload)))
        writer.drain(target)
        assert writer.in_flight(target) == 0
        stored = h5["data"][()]
    for row in (0, 2, 3):
        assert np.array_equal(stored[row], frames[row])
    assert np.all(stored[1] == 7)


def test_a_refused_chunk_is_reported_and_the_thread_lives_on(tmp_path, thread_engine):
    """A chunk HDF5 refuses (its file closed meanwhile) makes ``drain`` raise, naming the
    row; the chunks of other files are still written."""
    payload = bslz4.compress(np.ones(SHAPE[1:], dtype="<u2"))
    writer = ChunkWriter("thread")
    with h5py.File(tmp_path / "closed.h5", "w") as h5:
        closed = ChunkTarget.of(image_dataset(h5))
    writer.submit(closed, 2, payload)
    with pytest.raises(OSError, match="1 image chunks not written: image row 2"):
        writer.drain(closed)
    with h5py.File(tmp_path / "open.h5", "w") as h5:
        target = ChunkTarget.of(image_dataset(h5))
        writer.submit(target, 1, payload)
        writer.drain()
        assert np.all(h5["data"][1] == 1)


def test_a_batch_worker_hands_over_what_was_queued_meanwhile():
    """Items queued while the handler is busy arrive together, in order, at most
    ``max_batch`` at a time."""
    busy, batches = threading.Event(), []
    done = threading.Semaphore(0)

    def handle(items: list[int]) -> None:
        if items[0] == 0:
            busy.wait(5)
        batches.append(items)
        for _ in items:
            done.release()

    worker: BatchWorker[int] = BatchWorker("test-batches", handle, max_batch=4)
    worker.put(0)
    for item in range(1, 7):
        worker.put(item)
    busy.set()
    for _ in range(7):
        assert done.acquire(timeout=5)
    assert [item for batch in batches for item in batch] == list(range(7))
    assert max(len(batch) for batch in batches) <= 4
    assert len(batches) < 7
