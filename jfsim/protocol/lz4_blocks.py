"""Raw LZ4 block compression from the LZ4 build that hdf5plugin's bitshuffle filter uses.

python-lz4 bundles its own LZ4 (1.9.x) whose output differs by a few bytes from LZ4 1.10,
which the HDF5 filters in hdf5plugin are built with. To produce chunks byte-identical to
what an HDF5 file written through ``hdf5plugin.Bitshuffle()`` holds, we call
``LZ4_compress_default`` / ``LZ4_decompress_safe`` from that filter's shared library
(``filter_library``, checked at import) through ctypes, writing straight into numpy buffers.
"""

from __future__ import annotations

import ctypes
from functools import cache

from jfsim.protocol.filter_library import FILTER_LIBRARY

__all__ = ["Lz4Library", "lz4_library"]


class Lz4Library:
    """The three LZ4 entry points we need, bound to one shared library."""

    def __init__(self, library: ctypes.CDLL) -> None:
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


@cache
def lz4_library() -> Lz4Library:
    """LZ4 from hdf5plugin's bitshuffle filter library (bound once per process)."""
    return Lz4Library(FILTER_LIBRARY)
