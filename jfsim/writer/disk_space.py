"""Disk blocks reserved ahead of a data file's image chunks.

A file that grows by appending makes the file system find blocks for every page as it is
written (ext4: a delayed-allocation reservation per page). Reserving them ahead, in steps
of tens of MB, with ``fallocate(FALLOC_FL_KEEP_SIZE)`` makes the same writes about a
quarter cheaper in CPU time (300 JF4M chunks of 1.24 MB: 89-100 ms appended, 65-74 ms into
reserved blocks, on the development VM's ext4), and the chunk writes are what bounds the
writer's throughput.

``KEEP_SIZE`` leaves the file's size alone, so HDF5 sees exactly the file it wrote; the
blocks reserved past the end are given back by ``release`` (a truncation to the file's own
size, which frees them) once HDF5 has closed the file. Where the platform or the file
system cannot reserve (no ``fallocate``, ``EOPNOTSUPP``, a full disk) nothing is reserved
and the writes proceed as before: reserving is never a reason for a write to fail.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from functools import cache
from typing import Any

__all__ = ["RESERVE_STEP_BYTES", "DiskReservation"]

log = logging.getLogger(__name__)

#: Blocks reserved per step (about 27 JF4M bslz4 images); steps of 10 MB already gave the
#: whole gain, larger ones only cost more blocks given back at the end.
RESERVE_STEP_BYTES = 32 << 20
#: ``fallocate`` mode: reserve blocks without changing the file's size (Linux).
FALLOC_FL_KEEP_SIZE = 1


@cache
def _fallocate() -> Any:
    """libc's ``fallocate`` (Linux), or None where there is none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.fallocate
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    return function


class DiskReservation:
    """Reserves blocks of one open file ahead of the bytes about to be written to it.

    Holds its own descriptor (a duplicate of the writer's), so it stays valid however the
    file is closed; ``release`` closes it.
    """

    def __init__(self, descriptor: int, *, step_bytes: int = RESERVE_STEP_BYTES) -> None:
        """``descriptor``: an open descriptor of the file (duplicated here, not taken)."""
        self._step_bytes = step_bytes
        self._release_needed = False  # whether any block was reserved past the end
        self._function = _fallocate()
        self._descriptor: int | None = None
        self._planned = self._reserved = 0
        try:
            self._descriptor = os.dup(descriptor)
            self._planned = os.fstat(self._descriptor).st_size  # where the next bytes land
        except OSError as error:  # out of descriptors, say: the file is written without
            log.debug("no blocks reserved ahead (%s): writing without", error)
            self.release()
        self._reserved = self._planned  # blocks reserved up to here

    @property
    def reserving(self) -> bool:
        """Whether blocks are still being reserved (False once the file system refused)."""
        return self._function is not None and self._descriptor is not None

    def ahead_of(self, n_bytes: int) -> None:
        """``n_bytes`` are about to be appended: make sure blocks are reserved for them."""
        self._planned += n_bytes
        if self._planned <= self._reserved or not self.reserving:
            return
        length = self._planned - self._reserved + self._step_bytes
        if self._function(self._descriptor, FALLOC_FL_KEEP_SIZE, self._reserved, length) != 0:
            error = ctypes.get_errno()
            log.debug("no blocks reserved ahead (%s): writing without", os.strerror(error))
            self._function = None
            self._release_needed = True  # a refused request may have reserved a part
            return
        self._reserved += length
        self._release_needed = True

    def release(self) -> None:
        """Give back the blocks reserved past the file's end (after the file is closed)."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        try:
            if self._release_needed:
                os.ftruncate(descriptor, os.fstat(descriptor).st_size)
        except OSError as error:  # the file is complete; only spare blocks stay reserved
            log.debug("reserved blocks not released: %s", error)
        finally:
            os.close(descriptor)
