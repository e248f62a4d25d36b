"""Raw LZ4 block compression from the LZ4 build that hdf5plugin's bitshuffle filter uses.

python-lz4 bundles its own LZ4 (1.9.x) whose output differs by a few bytes from LZ4 1.10,
which the HDF5 filters in hdf5plugin are built with. To produce chunks byte-identical to
what an HDF5 file written through ``hdf5plugin.Bitshuffle()`` holds, we call
``LZ4_compress_default`` / ``LZ4_decompress_safe`` from that filter's shared library
(hdf5plugin is a runtime dependency) through ctypes, writing straight into numpy buffers.
"""

from __future__ import annotations

import ctypes
import importlib.util
from functools import cache
from pathlib import Path

from jfsim.protocol.errors import ProtocolError

__all__ = ["Lz4Library", "bitshuffle_filter_path", "lz4_library"]


class Lz4Library:
    """The three LZ4 entry points we need, bound to one shared library."""

    def __init__(self, path: str) -> None:
        library = ctypes.CDLL(path)
        self.version = int(library.LZ4_versionNumber())
        self.compress_default = library.LZ4_compress_default
        self.compress_default.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
        ]
        self.compress_default.restype = ctypes.c_int
        self.decompress_safe = library.LZ4_decompress_safe
        self.decompress_safe.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
        ]
        self.decompress_safe.restype = ctypes.c_int
        self.compress_bound = library.LZ4_compressBound
        self.compress_bound.argtypes = [ctypes.c_int]
        self.compress_bound.restype = ctypes.c_int


def bitshuffle_filter_path() -> str | None:
    """The filter library's path, found without importing hdf5plugin (which loads h5py)."""
    spec = importlib.util.find_spec("hdf5plugin")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "plugins" / "libh5bshuf.so"
        if candidate.is_file():
            return str(candidate)
    import hdf5plugin

    return hdf5plugin.get_config().registered_filters.get("bshuf")


@cache
def lz4_library() -> Lz4Library:
    """Load LZ4 from hdf5plugin's bitshuffle filter library (once per process)."""
    path = bitshuffle_filter_path()
    if path is None:
        raise ProtocolError("hdf5plugin has no bitshuffle filter library; reinstall hdf5plugin")
    try:
        return Lz4Library(path)
    except (OSError, AttributeError) as error:
        raise ProtocolError(
            f"cannot load LZ4 from {path}: {error}; reinstall hdf5plugin"
        ) from error
