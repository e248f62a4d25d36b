"""The series' pixel mask: decoded and written once, off the writer's main thread.

A JUNGFRAU 4M mask is 18 MB of uint32 once decoded, and Neggia needs it contiguous and
uncompressed in ``detectorSpecific/pixel_mask`` (conformance.md §5.3; jfconform H5-009,
RD-NEGGIA-002), so the received bitshuffle/LZ4 bytes cannot simply be stored as a chunk.
Decoding (10 ms) and writing (5-15 ms) would sit on the critical path of every series.
Instead the mask is decoded on the writer's job thread (``JOBS``) as
soon as the start message arrives (the bitshuffle library runs without the GIL), and its
dataset is created with its storage allocated at once and no fill value written; the same
thread then writes the bytes straight into that storage with ``os.pwrite`` (again without
the GIL) while the main thread writes the rest of the master. ``finish`` waits for it before
the file is closed.

A detector sends the same mask with every series, so the last decoded mask is kept (read-only)
with the compressed bytes it came from: a series whose mask is byte for byte the previous one
skips the decoding and the 18 MB of fresh memory it needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from jfsim.protocol import PixelArray, ProtocolError
from jfsim.workers import Job, Worker

__all__ = ["JOBS", "PixelMask"]

#: Jobs of the series' start that need no HDF5 lock (decoding and writing the pixel mask).
JOBS: Worker[Job] = Worker("jfsim-writer-jobs", Job.run)


class PixelMask:
    """The mask of one series: ``uint32 [height, width]``, zeros when none was sent."""

    #: (shape, dtype, compression, compressed bytes) and the mask decoded from them; used
    #: only on the job thread, where masks are decoded.
    _last_decoded: tuple[tuple[Any, ...], np.ndarray] | None = None

    def __init__(self, masks: Any, shape: tuple[int, int]) -> None:
        """Start decoding ``start["pixel_mask"]`` (a map of channel to array, or None)."""
        self.shape = shape
        self.problems: list[str] = []
        self._array: np.ndarray | None = None
        self._write_error: OSError | None = None
        self._writing: Job | None = None
        mask = masks.get("default") if isinstance(masks, Mapping) else None
        self._decoding: Job | None = None
        if isinstance(mask, PixelArray):
            self._decoding = Job(lambda: self._decode(mask))
            JOBS.put(self._decoding)

    def _decode(self, mask: PixelArray) -> None:
        if tuple(mask.shape) != self.shape:
            self.problems.append(
                f"start message: pixel_mask: shape {tuple(mask.shape)}, image is "
                f"{self.shape}; writing an empty mask"
            )
            return
        key = (tuple(mask.shape), np.dtype(mask.dtype).str, mask.compression, bytes(mask.payload))
        last = PixelMask._last_decoded
        if last is not None and last[0] == key:
            self._array = last[1]
            return
        try:
            array = mask.to_numpy()
        except (ProtocolError, ValueError, MemoryError) as error:
            self.problems.append(f"start message: pixel_mask: {error}; writing an empty mask")
            return
        self._array = np.ascontiguousarray(array, dtype="<u4")
        self._array.flags.writeable = False  # shared with later series
        PixelMask._last_decoded = (key, self._array)

    def array(self) -> np.ndarray:
        """The decoded mask (waits for its decoding)."""
        if self._decoding is not None:
            self._decoding.wait()
            if self._decoding.error is not None:
                error, self._decoding.error = self._decoding.error, None
                self.problems.append(f"start message: pixel_mask: {error}; writing an empty mask")
        return self._array if self._array is not None else np.zeros(self.shape, dtype="<u4")

    def store(self, group: h5py.Group, name: str) -> h5py.Dataset:
        """Create ``group/name`` contiguous uint32 and start writing the mask into it."""
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.CONTIGUOUS)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # storage exists at once...
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)  # ...and is written only by us
        space = h5py.h5s.create_simple(self.shape)
        dataset_id = h5py.h5d.create(group.id, name.encode(), h5py.h5t.STD_U32LE, space, dcpl=dcpl)
        try:
            offset = dataset_id.get_offset()
            descriptor = group.file.id.get_vfd_handle()
        except (OSError, RuntimeError, ValueError):
            offset = descriptor = None
        if not isinstance(offset, int) or not isinstance(descriptor, int):
            dataset_id.write(h5py.h5s.ALL, h5py.h5s.ALL, self.array())  # another file driver
        else:
            self._writing = Job(lambda: self._write(descriptor, offset))
            JOBS.put(self._writing)
        return h5py.Dataset(dataset_id)

    def _write(self, descriptor: int, offset: int) -> None:
        data = self.array().data.cast("B")
        try:
            while data:
                written = os.pwrite(descriptor, data, offset)
                data, offset = data[written:], offset + written
        except OSError as error:
            self._write_error = error

    def wait(self) -> None:
        """Wait until no thread touches the file any more (before closing it, always)."""
        if self._writing is not None:
            self._writing.wait()
            if self._writing.error is not None and self._write_error is None:
                self._write_error = OSError(f"pixel mask not written: {self._writing.error}")
            self._writing = None

    def finish(self) -> None:
        """Wait until the mask is in the file; call before the file is closed.

        Raises:
            OSError: the mask could not be written (the series cannot be finalised).
        """
        self.wait()
        if self._write_error is not None:
            raise self._write_error
