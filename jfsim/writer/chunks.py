"""Image chunks written on a thread of their own, without holding the GIL.

A received image is one ``H5Dwrite_chunk`` of its compressed bytes: a memory copy into the
page cache that takes about as long as the raw write of the same bytes. h5py holds the GIL
through that call, so the writer's Python work per image (checks, analysis fields) cannot
run meanwhile. Here the same HDF5 function is called through ctypes, which releases the
GIL, from one background thread, while h5py's own lock (``phil``) is held so HDF5 is never
entered from two threads at once: the copy of image *k* overlaps the Python work of image
*k + 1*.

Two engines with one contract (``submit`` then ``drain``):

* ``thread``: the above; available when the HDF5 library that h5py loaded can be found and
  exports ``H5Dwrite_chunk`` (``probe`` says why not otherwise).
* ``inline``: h5py's ``write_direct_chunk`` in the calling thread, the twin the tests
  compare against and the fallback of ``auto``.
"""

from __future__ import annotations

import ctypes
import glob
import os
import queue
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path

import h5py
from h5py._objects import phil

__all__ = ["ENGINES", "ChunkWriter", "probe"]

ENGINES = ("auto", "thread", "inline")
#: Images waiting for the I/O thread (their bytes stay referenced until written).
MAX_PENDING = 32
_hsize_t = ctypes.c_ulonglong
_hid_t = ctypes.c_int64


def _library_paths() -> list[str]:
    """Where the libhdf5 that h5py uses lives: the loaded mapping, else h5py's wheel."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                name = os.path.basename(path)
                if name.startswith("libhdf5") and not name.startswith("libhdf5_hl"):
                    paths.append(path)
    except OSError:
        pass
    package = Path(h5py.__file__).parent
    for folder in (package.parent / "h5py.libs", package / ".dylibs"):
        paths += sorted(glob.glob(str(folder / "libhdf5[-.]*")))
    return list(dict.fromkeys(paths))


@cache
def _write_chunk_function() -> Callable[..., int] | str:
    """``H5Dwrite_chunk`` of h5py's HDF5, or the reason it is unavailable."""
    for path in _library_paths():
        try:
            function = ctypes.CDLL(path).H5Dwrite_chunk
        except (OSError, AttributeError):
            continue
        function.argtypes = [
            _hid_t,
            _hid_t,
            ctypes.c_uint32,
            ctypes.POINTER(_hsize_t),
            ctypes.c_size_t,
            ctypes.c_void_p,
        ]
        function.restype = ctypes.c_int
        return function
    return "the HDF5 library h5py uses was not found, or lacks H5Dwrite_chunk"


def probe() -> str | None:
    """None when the ``thread`` engine can run here, else why not."""
    function = _write_chunk_function()
    return function if isinstance(function, str) else None


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
        self._queue: queue.Queue = queue.Queue(MAX_PENDING)
        self._thread: threading.Thread | None = None
        self._errors: list[str] = []

    def submit(self, dataset: h5py.Dataset, row: int, payload: bytes) -> None:
        """Write ``payload`` as the chunk of image ``row`` of ``dataset`` (shape [n, y, x])."""
        if self.engine == "inline":
            dataset.id.write_direct_chunk((row, 0, 0), payload)
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="jfsim-write-chunks", daemon=True
            )
            self._thread.start()
        self._queue.put((dataset.id.id, row, payload))

    def _run(self) -> None:
        write = _write_chunk_function()
        assert not isinstance(write, str)
        offset = (_hsize_t * 3)()
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                dataset_id, row, payload = item
                offset[0] = row
                with phil:  # HDF5 is not thread-safe: h5py's lock, as h5py's own calls
                    status = write(dataset_id, 0, 0, offset, len(payload), payload)
                if status < 0:
                    self._errors.append(f"image row {row}: H5Dwrite_chunk failed")
            finally:
                self._queue.task_done()

    def drain(self) -> None:
        """Wait until every submitted chunk is written.

        Raises:
            OSError: a chunk could not be written (the file is incomplete).
        """
        if self._thread is not None:
            self._queue.join()
        if self._errors:
            errors, self._errors = self._errors, []
            raise OSError(f"{len(errors)} image chunks not written: {errors[0]}")

    def close(self) -> None:
        """Drain and stop the thread (safe to call twice)."""
        if self._thread is not None:
            self._queue.join()
            self._queue.put(None)
            self._thread.join()
            self._thread = None
