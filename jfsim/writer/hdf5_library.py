"""HDF5's C functions, called through ctypes on the very library h5py loaded.

h5py wraps every HDF5 call in Python bookkeeping (object registries, type conversion,
checks) that costs far more than the call itself: a small dataset with a ``units``
attribute takes 150-250 µs through h5py's high-level API, 60 µs through its low-level API
and under 20 µs as plain C calls. A series creates a few hundred such objects, and each of
them holds HDF5's lock while the image chunks wait for it, so ``jfsim.writer.h5tree`` and
``jfsim.writer.chunks`` make those calls here instead.

The functions act on the same library instance as h5py (the one mapped into this process),
so identifiers pass freely between the two; callers hold h5py's lock (``phil``) around
them, because HDF5 is not thread-safe. ``probe()`` says why the library cannot be used,
and every caller then falls back to h5py.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import h5py

__all__ = [
    "H5P_DEFAULT",
    "H5S_ALL",
    "H5S_SELECT_SET",
    "H5S_UNLIMITED",
    "Hdf5Error",
    "hsize_array",
    "hsize_t",
    "library",
    "probe",
]

hid_t = ctypes.c_int64
herr_t = ctypes.c_int
hsize_t = ctypes.c_ulonglong
H5P_DEFAULT = 0
H5S_ALL = 0
H5S_SELECT_SET = 0
H5S_UNLIMITED = 2**64 - 1  # (hsize_t)(-1)

_POINTER = ctypes.c_void_p
_NAME = ctypes.c_char_p
_HSIZES = ctypes.POINTER(hsize_t)

#: name: (argument types, result type). Results of type hid_t are identifiers (< 0: error);
#: herr_t and htri_t are status codes (< 0: error).
_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "H5Gcreate2": ([hid_t, _NAME, hid_t, hid_t, hid_t], hid_t),
    "H5Gopen2": ([hid_t, _NAME, hid_t], hid_t),
    "H5Gclose": ([hid_t], herr_t),
    "H5Lexists": ([hid_t, _NAME, hid_t], herr_t),
    "H5Lcreate_hard": ([hid_t, _NAME, hid_t, _NAME, hid_t, hid_t], herr_t),
    "H5Lcreate_external": ([_NAME, _NAME, hid_t, _NAME, hid_t, hid_t], herr_t),
    "H5Dcreate2": ([hid_t, _NAME, hid_t, hid_t, hid_t, hid_t, hid_t], hid_t),
    "H5Dopen2": ([hid_t, _NAME, hid_t], hid_t),
    "H5Dwrite": ([hid_t, hid_t, hid_t, hid_t, hid_t, _POINTER], herr_t),
    "H5Dwrite_chunk": ([hid_t, hid_t, ctypes.c_uint32, _HSIZES, ctypes.c_size_t, _POINTER], herr_t),
    "H5Dclose": ([hid_t], herr_t),
    "H5Acreate2": ([hid_t, _NAME, hid_t, hid_t, hid_t, hid_t], hid_t),
    "H5Awrite": ([hid_t, hid_t, _POINTER], herr_t),
    "H5Aclose": ([hid_t], herr_t),
    "H5Aexists": ([hid_t, _NAME], herr_t),
    "H5Adelete": ([hid_t, _NAME], herr_t),
    "H5Screate_simple": ([ctypes.c_int, _HSIZES, _HSIZES], hid_t),
    "H5Sselect_hyperslab": ([hid_t, ctypes.c_int, _HSIZES, _HSIZES, _HSIZES, _HSIZES], herr_t),
    "H5Sclose": ([hid_t], herr_t),
}


class Hdf5Error(OSError):
    """An HDF5 call failed (the writer treats it like h5py's own I/O errors)."""


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


class Hdf5Library:
    """The bound functions, as attributes named like the C functions (``lib.H5Dcreate2``).

    ``check`` turns a negative result into ``Hdf5Error`` naming the call and the object.
    """

    H5Gcreate2: Callable[..., int]
    H5Gopen2: Callable[..., int]
    H5Gclose: Callable[..., int]
    H5Lexists: Callable[..., int]
    H5Lcreate_hard: Callable[..., int]
    H5Lcreate_external: Callable[..., int]
    H5Dcreate2: Callable[..., int]
    H5Dopen2: Callable[..., int]
    H5Dwrite: Callable[..., int]
    H5Dwrite_chunk: Callable[..., int]
    H5Dclose: Callable[..., int]
    H5Acreate2: Callable[..., int]
    H5Awrite: Callable[..., int]
    H5Aclose: Callable[..., int]
    H5Aexists: Callable[..., int]
    H5Adelete: Callable[..., int]
    H5Screate_simple: Callable[..., int]
    H5Sselect_hyperslab: Callable[..., int]
    H5Sclose: Callable[..., int]

    def __init__(self, dll: ctypes.CDLL) -> None:
        for name, (argtypes, restype) in _SIGNATURES.items():
            function = getattr(dll, name)
            function.argtypes = argtypes
            function.restype = restype
            setattr(self, name, function)

    def address(self, name: str) -> int:
        """Where the C function ``name`` is (0: nowhere), for compiled code to call it."""
        function: Any = getattr(self, name)
        return ctypes.cast(function, ctypes.c_void_p).value or 0

    @staticmethod
    def check(result: int, call: str, what: str | bytes) -> int:
        if result < 0:
            name = what.decode(errors="replace") if isinstance(what, bytes) else what
            raise Hdf5Error(f"{call} failed for {name!r}")
        return result


@cache
def _load() -> Hdf5Library | str:
    for path in _library_paths():
        try:
            return Hdf5Library(ctypes.CDLL(path))
        except (OSError, AttributeError):
            continue
    return "the HDF5 library h5py uses was not found, or lacks a function jfsim calls"


def library() -> Hdf5Library:
    """The bound library; ``probe()`` first (raises ``RuntimeError`` when unavailable)."""
    loaded = _load()
    if isinstance(loaded, str):
        raise RuntimeError(loaded)
    return loaded


def probe() -> str | None:
    """None when HDF5 can be called directly here, else why not."""
    loaded = _load()
    return loaded if isinstance(loaded, str) else None


def hsize_array(values: tuple[int, ...] | list[int]) -> ctypes.Array[ctypes.c_ulonglong]:
    """A C ``hsize_t[]`` holding ``values`` (shapes, offsets, counts)."""
    return (hsize_t * len(values))(*values)
