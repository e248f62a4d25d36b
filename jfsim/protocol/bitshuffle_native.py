"""hdf5plugin's compiled bitshuffle + LZ4 (``bshuf_compress_lz4``), called through ctypes.

The filter library ships SIMD versions of the bit transposition and runs transposition
and LZ4 block by block in C; that is several times faster than our numba transposition
plus a Python loop over LZ4 blocks. ``bslz4`` uses it as its fast ``"native"`` engine and
keeps the numba path as the twin that tests compare byte for byte. Both functions work on
the block stream only (no 12-byte header): blocks of ``u32 BE length + LZ4 data`` then the
trailing ``n_elements mod 8`` elements verbatim.

Safety: ``bshuf_decompress_lz4`` trusts the block lengths it reads (it has no input size),
so callers must first check the framing with ``bslz4.validate_framing``; each block is
then decoded with ``LZ4_decompress_safe`` and its output size checked by the library.
"""

from __future__ import annotations

import ctypes
from functools import cache

import numpy as np

from jfsim.protocol.filter_library import FILTER_LIBRARY

__all__ = ["BitshuffleLibrary", "bitshuffle_library"]


class BitshuffleLibrary:
    """``bshuf_compress_lz4`` and friends bound to the filter's shared library."""

    def __init__(self, library: ctypes.CDLL) -> None:
        sizes = [ctypes.c_size_t] * 3
        self._compress = library.bshuf_compress_lz4
        self._decompress = library.bshuf_decompress_lz4
        for function in (self._compress, self._decompress):
            function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, *sizes]
            function.restype = ctypes.c_int64
        self._bound = library.bshuf_compress_lz4_bound
        self._bound.argtypes = sizes
        self._bound.restype = ctypes.c_size_t

    def compress_bound(self, n_elements: int, elem_size: int, block_elements: int) -> int:
        """Largest block stream ``compress`` can write for this input."""
        return int(self._bound(n_elements, elem_size, block_elements))

    def compress(
        self,
        source: np.ndarray,
        target: np.ndarray,
        n_elements: int,
        elem_size: int,
        block_elements: int,
    ) -> int:
        """Write the block stream of ``source`` into ``target``; bytes written, < 0 on error."""
        return int(
            self._compress(
                source.ctypes.data, target.ctypes.data, n_elements, elem_size, block_elements
            )
        )

    def decompress(
        self,
        source: np.ndarray,
        target: np.ndarray,
        n_elements: int,
        elem_size: int,
        block_elements: int,
    ) -> int:
        """Decode a checked block stream into ``target``; bytes consumed, < 0 on error."""
        return int(
            self._decompress(
                source.ctypes.data, target.ctypes.data, n_elements, elem_size, block_elements
            )
        )


@cache
def bitshuffle_library() -> BitshuffleLibrary:
    """The filter's compiled pipeline (bound once per process)."""
    return BitshuffleLibrary(FILTER_LIBRARY)
