"""Plain LZ4 in the HDF5 LZ4 filter framing (tag 56500 algorithm ``"lz4"``, DECTRIS only).

Layout: u64 BE total uncompressed bytes, u32 BE block size in bytes, then per block a u32
BE compressed length and the block. The last block covers whatever remains (no raw
trailer). A block whose compressed length equals its uncompressed length is stored raw.
Jungfraujoch refuses this algorithm; jfsim decodes it and encodes it only for tests and
DECTRIS-style recordings.
"""

from __future__ import annotations

import struct

import numpy as np

from jfsim.protocol.bslz4 import MAX_DECOMPRESSED_BYTES
from jfsim.protocol.errors import ProtocolError
from jfsim.protocol.lz4_blocks import lz4_library

__all__ = ["compress", "decompress", "validate_framing"]

_HEADER = struct.Struct(">QI")
_LENGTH = struct.Struct(">I")
DEFAULT_BLOCK_SIZE_BYTES = 1 << 30
"""The HDF5 LZ4 filter's default block size (1 GiB, i.e. usually one block per chunk)."""


def _blocks(payload: bytes | memoryview, expected_bytes: int) -> list[tuple[int, int, int]]:
    """Walk the framing: ``(payload offset, compressed length, uncompressed length)`` per block."""
    if len(payload) < _HEADER.size:
        raise ProtocolError(f"lz4 payload of {len(payload)} bytes is shorter than its header")
    total, block_bytes = _HEADER.unpack_from(payload, 0)
    if total != expected_bytes:
        raise ProtocolError(
            f"lz4 header declares {total} uncompressed bytes but shape × dtype is {expected_bytes}"
        )
    if total > MAX_DECOMPRESSED_BYTES or total > 256 * len(payload) + 65536:
        raise ProtocolError(f"lz4 header declares an impossible {total} uncompressed bytes")
    if block_bytes == 0 and total:
        raise ProtocolError("lz4 header block size is 0")
    blocks = []
    position = _HEADER.size
    remaining = total
    while remaining > 0:
        if position + 4 > len(payload):
            raise ProtocolError("lz4 framing: a block length prefix runs past the end")
        (length,) = _LENGTH.unpack_from(payload, position)
        position += 4
        size = min(block_bytes, remaining)
        if position + length > len(payload):
            raise ProtocolError("lz4 framing: a compressed block runs past the end")
        blocks.append((position, length, size))
        position += length
        remaining -= size
    if position != len(payload):
        raise ProtocolError(f"lz4 framing: {len(payload) - position} bytes after the last block")
    return blocks


def validate_framing(payload: bytes | memoryview, expected_bytes: int) -> None:
    """Check the header and block lengths against the declared size, without decompressing."""
    _blocks(payload, expected_bytes)


def decompress(payload: bytes | memoryview, dtype: np.dtype, n_elements: int) -> np.ndarray:
    """Decompress into a flat little-endian array of ``n_elements`` of ``dtype``."""
    dtype = np.dtype(dtype)
    expected = n_elements * dtype.itemsize
    blocks = _blocks(payload, expected)
    source = np.frombuffer(payload, dtype=np.uint8)
    out = np.empty(expected, dtype=np.uint8)
    lz4 = lz4_library()
    written = 0
    for position, length, size in blocks:
        if length == size:
            out[written : written + size] = source[position : position + size]
        else:
            got = lz4.decompress_safe(
                source.ctypes.data + position, out.ctypes.data + written, length, size
            )
            if got != size:
                raise ProtocolError(
                    f"lz4 block at byte {position}: corrupt LZ4 data "
                    f"(decoded {got} bytes, expected {size})"
                )
        written += size
    return out.view(dtype.newbyteorder("<"))


def compress(array: np.ndarray, block_size_bytes: int = DEFAULT_BLOCK_SIZE_BYTES) -> bytes:
    """Compress like the HDF5 LZ4 filter; incompressible blocks are stored raw."""
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    lz4 = lz4_library()
    parts = [_HEADER.pack(raw.size, block_size_bytes)]
    for start in range(0, raw.size, block_size_bytes):
        block = raw[start : start + block_size_bytes]
        bound = lz4.compress_bound(block.size)
        out = np.empty(bound, dtype=np.uint8)
        length = lz4.compress_default(block.ctypes.data, out.ctypes.data, block.size, bound)
        stored = block.tobytes() if length >= block.size else out[:length].tobytes()
        parts.append(_LENGTH.pack(len(stored)))
        parts.append(stored)
    return b"".join(parts)
