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

``private_library()`` is a second instance of the same library, loaded from a copy of its
file so that it shares no state (open files, identifiers, the global lock) with h5py's:
its calls are serialised by a lock of its own (``Hdf5Library.lock``). The data files of a
legacy or VDS series live there, so that their image chunks are never held back by the
master's objects, which h5py's instance writes meanwhile on another thread.
"""

from __future__ import annotations

import ctypes
import glob
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import h5py
from h5py._objects import phil

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
H5F_ACC_TRUNC = 0x0002
H5T_VARIABLE = 2**64 - 1  # (size_t)(-1)
H5T_CSET_UTF8 = 1
H5T_STR_NULLPAD = 1
H5Z_FLAG_OPTIONAL = 0x0001
#: ``H5F_libver_t`` by the names h5py gives the bounds.
LIBVER = {"earliest": 0, "v108": 1, "v110": 2, "v112": 3, "v114": 4, "v200": 5}

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
    "H5Screate": ([ctypes.c_int], hid_t),
    "H5Fcreate": ([_NAME, ctypes.c_uint, hid_t, hid_t], hid_t),
    "H5Fclose": ([hid_t], herr_t),
    "H5Fget_vfd_handle": ([hid_t, hid_t, ctypes.POINTER(ctypes.c_void_p)], herr_t),
    "H5Pcreate": ([hid_t], hid_t),
    "H5Pclose": ([hid_t], herr_t),
    "H5Pset_libver_bounds": ([hid_t, ctypes.c_int, ctypes.c_int], herr_t),
    "H5Pset_chunk": ([hid_t, ctypes.c_int, _HSIZES], herr_t),
    "H5Pset_filter": (
        [hid_t, ctypes.c_int, ctypes.c_uint, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint)],
        herr_t,
    ),
    "H5Pset_fill_value": ([hid_t, hid_t, _POINTER], herr_t),
    "H5Pset_obj_track_times": ([hid_t, ctypes.c_bool], herr_t),
    "H5Pset_char_encoding": ([hid_t, ctypes.c_int], herr_t),
    "H5Tcopy": ([hid_t], hid_t),
    "H5Tset_size": ([hid_t, ctypes.c_size_t], herr_t),
    "H5Tset_cset": ([hid_t, ctypes.c_int], herr_t),
    "H5Tset_strpad": ([hid_t, ctypes.c_int], herr_t),
    "H5Tenum_create": ([hid_t], hid_t),
    "H5Tenum_insert": ([hid_t, _NAME, _POINTER], herr_t),
    "H5Eset_auto2": ([hid_t, _POINTER, _POINTER], herr_t),
    "H5Zregister": ([_POINTER], herr_t),
    "H5open": ([], herr_t),
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
    ``lock`` serialises the calls into this instance.
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
    H5Screate: Callable[..., int]
    H5Fcreate: Callable[..., int]
    H5Fclose: Callable[..., int]
    H5Fget_vfd_handle: Callable[..., int]
    H5Pcreate: Callable[..., int]
    H5Pclose: Callable[..., int]
    H5Pset_libver_bounds: Callable[..., int]
    H5Pset_chunk: Callable[..., int]
    H5Pset_filter: Callable[..., int]
    H5Pset_fill_value: Callable[..., int]
    H5Pset_obj_track_times: Callable[..., int]
    H5Pset_char_encoding: Callable[..., int]
    H5Tcopy: Callable[..., int]
    H5Tset_size: Callable[..., int]
    H5Tset_cset: Callable[..., int]
    H5Tset_strpad: Callable[..., int]
    H5Tenum_create: Callable[..., int]
    H5Tenum_insert: Callable[..., int]
    H5Eset_auto2: Callable[..., int]
    H5Zregister: Callable[..., int]
    H5open: Callable[..., int]

    def __init__(self, dll: ctypes.CDLL, lock: Any) -> None:
        self._dll = dll
        self.lock = lock
        for name, (argtypes, restype) in _SIGNATURES.items():
            function = getattr(dll, name)
            function.argtypes = argtypes
            function.restype = restype
            setattr(self, name, function)

    def global_id(self, name: str) -> int:
        """The identifier in the library's global ``name`` (``H5T_STD_I32LE_g``, property
        list classes ``H5P_CLS_..._ID_g``), valid once the library is open."""
        return hid_t.in_dll(self._dll, name).value

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
            return Hdf5Library(ctypes.CDLL(path), phil)
        except (OSError, AttributeError):
            continue
    return "the HDF5 library h5py uses was not found, or lacks a function jfsim calls"


class _FilterClass(ctypes.Structure):
    """``H5Z_class2_t``: a filter as HDF5 registers it."""

    _fields_ = [
        ("version", ctypes.c_int),
        ("id", ctypes.c_int),
        ("encoder_present", ctypes.c_uint),
        ("decoder_present", ctypes.c_uint),
        ("name", ctypes.c_char_p),
        ("can_apply", ctypes.c_void_p),
        ("set_local", ctypes.c_void_p),
        ("filter", ctypes.c_void_p),
    ]


#: ``size_t filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[],
#: size_t nbytes, size_t *buf_size, void **buf)``
_FILTER_FUNCTION = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.c_uint,
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_void_p,
)


@_FILTER_FUNCTION
def _refuse_to_filter(*_arguments: Any) -> int:
    """The private instance only stores chunks compressed already: 0 = filter failed."""
    return 0


#: Kept alive for as long as the private instance may call them.
_PRIVATE_FILTERS: list[Any] = []


def _register_filter(lib: Hdf5Library, filter_id: int, name: str) -> None:
    """Register ``filter_id`` under ``name`` without a working filter, so that a dataset
    declaring it records the filter's name as h5py's instance does (direct chunk writes
    never run it)."""
    encoded = name.encode()
    filter_class = _FilterClass(1, filter_id, 1, 1, encoded, None, None, None)
    filter_class.filter = ctypes.cast(_refuse_to_filter, ctypes.c_void_p).value
    _PRIVATE_FILTERS.append((filter_class, encoded))
    lib.check(lib.H5Zregister(ctypes.byref(filter_class)), "H5Zregister", name)


_PRIVATE_LOADING = threading.Lock()


def _load_private() -> Hdf5Library | str:
    with _PRIVATE_LOADING:  # one instance, however many threads ask for it first
        return _load_private_once()


@cache
def _load_private_once() -> Hdf5Library | str:
    shared = _load()
    if isinstance(shared, str):
        return shared
    original = shared._dll._name
    try:
        folder = tempfile.mkdtemp(prefix="jfsim-hdf5-")
        try:
            # a second file, so that the loader maps a second instance of the library;
            # bound to its own symbols first (RTLD_DEEPBIND), else its calls of its own
            # functions would reach h5py's instance wherever that one is loaded globally
            copy = os.path.join(folder, "libhdf5-private.so")
            shutil.copyfile(original, copy)
            dll = ctypes.CDLL(copy, mode=os.RTLD_LOCAL | getattr(os, "RTLD_DEEPBIND", 0))
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # the mapping outlives the file
        lib = Hdf5Library(dll, threading.RLock())
        lib.check(lib.H5open(), "H5open", "private HDF5 instance")
        lib.H5Eset_auto2(H5P_DEFAULT, None, None)  # failures raise Hdf5Error instead
        _check_private(lib)
    except (OSError, AttributeError, ValueError) as error:
        return f"a private HDF5 instance cannot be loaded: {error}"
    return lib


def _check_private(lib: Hdf5Library) -> None:
    """Make and close a property list there: an instance whose own calls reach another
    one fails this (its identifiers mean nothing to the other)."""
    access = lib.H5Pcreate(lib.global_id("H5P_CLS_FILE_ACCESS_ID_g"))
    if access < 0 or lib.H5Pclose(access) < 0:
        raise Hdf5Error("its calls do not stay in it (the library is shared, not copied)")


def private_library() -> Hdf5Library:
    """The private instance; ``probe_private()`` first (raises ``RuntimeError`` when
    unavailable)."""
    return _usable(_load_private())


def probe_private() -> str | None:
    """None when a private HDF5 instance can be used here, else why not."""
    return _why_not(_load_private())


def register_private_filter(filter_id: int, name: str) -> None:
    """Give the private instance ``filter_id``'s name (once per filter)."""
    lib = private_library()
    with lib.lock:
        if not any(f[0].id == filter_id for f in _PRIVATE_FILTERS):
            _register_filter(lib, filter_id, name)


def library() -> Hdf5Library:
    """The bound library; ``probe()`` first (raises ``RuntimeError`` when unavailable)."""
    return _usable(_load())


def probe() -> str | None:
    """None when HDF5 can be called directly here, else why not."""
    return _why_not(_load())


def _usable(loaded: Hdf5Library | str) -> Hdf5Library:
    if isinstance(loaded, str):
        raise RuntimeError(loaded)
    return loaded


def _why_not(loaded: Hdf5Library | str) -> str | None:
    return loaded if isinstance(loaded, str) else None


def hsize_array(values: tuple[int, ...] | list[int]) -> ctypes.Array[ctypes.c_ulonglong]:
    """A C ``hsize_t[]`` holding ``values`` (shapes, offsets, counts)."""
    return (hsize_t * len(values))(*values)
