"""Bitshuffle + LZ4 in the HDF5-filter framing (tag 56500 algorithm ``"bslz4"``).

The byte layout is the one the bitshuffle HDF5 filter stores in a chunk, so a payload made
here can be written with ``write_direct_chunk`` and a chunk read with ``read_direct_chunk``
can be sent as it is::

    u64 BE   total uncompressed bytes N
    u32 BE   block size in bytes B (B / elem_size elements per block)
    per block: u32 BE compressed length L, then L bytes of raw LZ4 block data of the
               bit-transposed block
    trailer: the last (n_elements mod 8) elements, verbatim

Full blocks come first, then one shorter block holding the remaining elements rounded down
to a multiple of 8, then the trailer. The bit transposition has two engines giving
identical bytes: ``"native"`` (the default), the filter's own compiled
``bshuf_compress_lz4`` / ``bshuf_decompress_lz4`` through ctypes (see
``bitshuffle_native``), and ``"numba"``, our twin: a numba transposition on 8×8 bit blocks
plus a loop over ``LZ4_compress_default`` / ``LZ4_decompress_safe`` from the filter's own
LZ4 build (see ``lz4_blocks``). Either way the framing is checked before any byte is
decompressed.
"""

from __future__ import annotations

import struct

import numba
import numpy as np

from jfsim.protocol.bitshuffle_native import bitshuffle_library
from jfsim.protocol.errors import ProtocolError
from jfsim.protocol.lz4_blocks import lz4_library

__all__ = [
    "DEFAULT_BLOCK_SIZE_BYTES",
    "ENGINES",
    "MAX_DECOMPRESSED_BYTES",
    "compress",
    "decompress",
    "read_header",
    "validate_framing",
]

DEFAULT_BLOCK_SIZE_BYTES = 8192
"""bitshuffle's target block size (``BSHUF_TARGET_BLOCK_SIZE_B``); DECTRIS uses it too."""

MAX_DECOMPRESSED_BYTES = 1 << 31
"""Largest array we agree to decompress (2 GiB; a JUNGFRAU 16M uint32 frame is 72 MB)."""

LZ4_MAX_RATIO = 256
"""An LZ4 block cannot expand more than ~255×, so N > 256 × len(payload) is a lie."""

ENGINES = ("native", "numba")
"""Bit-transposition engines; ``"auto"`` is native (the numba engine is its tested twin)."""

_HEADER = struct.Struct(">QI")
_LENGTH = struct.Struct(">I")
_BLOCKED_MULT = 8
_MIN_BLOCK_ELEMENTS = 128


@numba.njit(cache=True, inline="always")
def _transpose_8x8_bits(x):  # type: ignore[no-untyped-def]  # pragma: no cover - numba
    """Bit-matrix transpose of 8 bytes: bit k of byte j becomes bit j of byte k."""
    t = (x ^ (x >> np.uint64(7))) & np.uint64(0x00AA00AA00AA00AA)
    x = x ^ t ^ (t << np.uint64(7))
    t = (x ^ (x >> np.uint64(14))) & np.uint64(0x0000CCCC0000CCCC)
    x = x ^ t ^ (t << np.uint64(14))
    t = (x ^ (x >> np.uint64(28))) & np.uint64(0x00000000F0F0F0F0)
    x = x ^ t ^ (t << np.uint64(28))
    return x


@numba.njit(cache=True)
def _bitshuffle_blocks(src, dst, n_elements, elem_size, block_elements):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Bit-transpose every block of ``src`` into ``dst`` (both uint8); the tail is untouched."""
    n_blocked = n_elements - n_elements % 8
    start = 0
    while start < n_blocked:
        count = min(block_elements, n_blocked - start)
        base = start * elem_size
        rows = count // 8
        for j in range(elem_size):
            for ii in range(rows):
                x = np.uint64(0)
                for jj in range(8):
                    byte = np.uint64(src[base + (ii * 8 + jj) * elem_size + j])
                    x |= byte << np.uint64(8 * jj)
                x = _transpose_8x8_bits(x)
                for k in range(8):
                    dst[base + (j * 8 + k) * rows + ii] = np.uint8(x & np.uint64(0xFF))
                    x >>= np.uint64(8)
        start += count


@numba.njit(cache=True)
def _bitunshuffle_blocks(src, dst, n_elements, elem_size, block_elements):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Inverse of ``_bitshuffle_blocks``."""
    n_blocked = n_elements - n_elements % 8
    start = 0
    while start < n_blocked:
        count = min(block_elements, n_blocked - start)
        base = start * elem_size
        rows = count // 8
        for j in range(elem_size):
            for ii in range(rows):
                x = np.uint64(0)
                for k in range(8):
                    byte = np.uint64(src[base + (j * 8 + k) * rows + ii])
                    x |= byte << np.uint64(8 * k)
                x = _transpose_8x8_bits(x)
                for jj in range(8):
                    dst[base + (ii * 8 + jj) * elem_size + j] = np.uint8(x & np.uint64(0xFF))
                    x >>= np.uint64(8)
        start += count


@numba.njit(cache=True)
def _walk_blocks(payload, n_bytes, elem_size, block_bytes):  # type: ignore[no-untyped-def]  # pragma: no cover - numba
    """Check the block structure; returns 0 if it fits exactly, else an error code.

    1: a length prefix runs past the end; 2: a block runs past the end; 3: bytes left
    over or missing for the raw trailer; 4: a block length of zero.
    """
    n_elements = n_bytes // elem_size
    block_elements = block_bytes // elem_size
    n_blocked = n_elements - n_elements % 8
    position = np.int64(12)
    size = payload.shape[0]
    done = 0
    while done < n_blocked:
        done += min(block_elements, n_blocked - done)
        if position + 4 > size:
            return 1
        length = (
            (np.int64(payload[position]) << 24)
            | (np.int64(payload[position + 1]) << 16)
            | (np.int64(payload[position + 2]) << 8)
            | np.int64(payload[position + 3])
        )
        if length == 0:
            return 4
        position += 4 + length
        if position > size:
            return 2
    if size - position != (n_elements % 8) * elem_size:
        return 3
    return 0


_WALK_ERRORS = {
    1: "a block length prefix runs past the end of the payload",
    2: "a compressed block runs past the end of the payload",
    3: "the payload length does not match its blocks plus the raw trailer",
    4: "a compressed block has length 0",
}


def _use_native(engine: str) -> bool:
    if engine in ("auto", "native"):
        return True
    if engine == "numba":
        return False
    raise ProtocolError(f"unknown bslz4 engine '{engine}' (known: auto, {', '.join(ENGINES)})")


def _block_elements(elem_size: int, block_size_bytes: int) -> int:
    """bitshuffle's rule: bytes → elements, rounded down to a multiple of 8, at least 128."""
    elements = (block_size_bytes // elem_size) // _BLOCKED_MULT * _BLOCKED_MULT
    return max(elements, _MIN_BLOCK_ELEMENTS)


def read_header(payload: bytes | memoryview) -> tuple[int, int]:
    """Return ``(uncompressed_bytes, block_size_bytes)`` from the first 12 bytes."""
    if len(payload) < _HEADER.size:
        raise ProtocolError(f"bslz4 payload of {len(payload)} bytes is shorter than its header")
    total, block = _HEADER.unpack_from(payload, 0)
    return int(total), int(block)


def validate_framing(payload: bytes | memoryview, elem_size: int, expected_bytes: int) -> None:
    """Check header and block structure against the declared array size, without decompressing.

    Raises:
        ProtocolError: header size ≠ ``expected_bytes``, a bad block size, a declared size
            beyond ``MAX_DECOMPRESSED_BYTES`` or what LZ4 could hold, or broken blocks.
    """
    total, block_bytes = read_header(payload)
    if total != expected_bytes:
        raise ProtocolError(
            f"bslz4 header declares {total} uncompressed bytes but shape × dtype is "
            f"{expected_bytes}"
        )
    _check_declared_size(total, len(payload), "bslz4")
    if block_bytes == 0 or block_bytes % (elem_size * _BLOCKED_MULT) != 0:
        raise ProtocolError(
            f"bslz4 header block size {block_bytes} bytes is not a positive multiple of "
            f"8 × element size {elem_size}"
        )
    data = np.frombuffer(payload, dtype=np.uint8)
    code = _walk_blocks(data, total, elem_size, block_bytes)
    if code:
        raise ProtocolError(f"bslz4 framing: {_WALK_ERRORS[code]}")


def _check_declared_size(total: int, payload_len: int, algorithm: str) -> None:
    if total > MAX_DECOMPRESSED_BYTES:
        raise ProtocolError(
            f"{algorithm} header declares {total} uncompressed bytes, above the "
            f"{MAX_DECOMPRESSED_BYTES}-byte limit"
        )
    if total > LZ4_MAX_RATIO * payload_len + 65536:
        raise ProtocolError(
            f"{algorithm} header declares {total} uncompressed bytes, impossible for a "
            f"{payload_len}-byte LZ4 payload"
        )


def compress(
    array: np.ndarray, block_size_bytes: int = DEFAULT_BLOCK_SIZE_BYTES, *, engine: str = "auto"
) -> bytes:
    """Compress ``array`` (any shape, C order) exactly as the bitshuffle HDF5 filter does.

    ``engine`` picks the bit transposition (``ENGINES``); all give the same bytes.
    """
    contiguous = np.ascontiguousarray(array)
    if contiguous.dtype.byteorder == ">":
        contiguous = contiguous.astype(contiguous.dtype.newbyteorder("<"))
    elem_size = contiguous.dtype.itemsize
    n_elements = contiguous.size
    raw = contiguous.reshape(-1).view(np.uint8)
    block_elements = _block_elements(elem_size, block_size_bytes)
    if _use_native(engine):
        library = bitshuffle_library()
        bound = library.compress_bound(n_elements, elem_size, block_elements)
        out = np.empty(_HEADER.size + bound, dtype=np.uint8)
        _HEADER.pack_into(out.data, 0, raw.size, block_elements * elem_size)
        written = library.compress(raw, out[_HEADER.size :], n_elements, elem_size, block_elements)
        if written < 0:
            raise ProtocolError(f"bslz4: native compression failed (error {written})")
        return out[: _HEADER.size + written].tobytes()
    return _compress_numba(raw, n_elements, elem_size, block_elements)


def _compress_numba(raw: np.ndarray, n_elements: int, elem_size: int, block_elements: int) -> bytes:
    """The twin of the native engine: numba transposition, then LZ4 block by block."""
    shuffled = np.empty_like(raw)
    _bitshuffle_blocks(raw, shuffled, n_elements, elem_size, block_elements)
    n_blocked = n_elements - n_elements % _BLOCKED_MULT
    n_blocks = -(-n_blocked // block_elements)
    lz4 = lz4_library()
    bound = lz4.compress_bound(block_elements * elem_size)
    tail_bytes = raw.size - n_blocked * elem_size
    out = np.empty(_HEADER.size + n_blocks * (4 + bound) + tail_bytes, dtype=np.uint8)
    out_bytes = out.data
    _HEADER.pack_into(out_bytes, 0, raw.size, block_elements * elem_size)
    src_address = shuffled.ctypes.data
    out_address = out.ctypes.data
    position = _HEADER.size
    start = 0
    while start < n_blocked:
        count = min(block_elements, n_blocked - start)
        length = lz4.compress_default(
            src_address + start * elem_size, out_address + position + 4, count * elem_size, bound
        )
        _LENGTH.pack_into(out_bytes, position, length)
        position += 4 + length
        start += count
    out[position : position + tail_bytes] = raw[n_blocked * elem_size :]
    return out[: position + tail_bytes].tobytes()


def decompress(
    payload: bytes | memoryview, dtype: np.dtype, n_elements: int, *, engine: str = "auto"
) -> np.ndarray:
    """Decompress a bslz4 payload into a flat array of ``n_elements`` of ``dtype``.

    ``engine`` picks the bit transposition (``ENGINES``); all give the same array.

    Raises:
        ProtocolError: any framing or LZ4 error, or a size that disagrees with the request.
    """
    dtype = np.dtype(dtype)
    elem_size = dtype.itemsize
    expected = n_elements * elem_size
    validate_framing(payload, elem_size, expected)
    _, block_bytes = read_header(payload)
    block_elements = block_bytes // elem_size
    source = np.frombuffer(payload, dtype=np.uint8)
    out = np.empty(expected, dtype=np.uint8)
    if _use_native(engine):
        consumed = bitshuffle_library().decompress(
            source[_HEADER.size :], out, n_elements, elem_size, block_elements
        )
        if consumed != source.size - _HEADER.size:
            raise ProtocolError(
                f"bslz4: corrupt LZ4 data (native decoder returned {consumed} for a "
                f"{source.size - _HEADER.size}-byte block stream)"
            )
    else:
        _decompress_numba(source, out, n_elements, elem_size, block_elements)
    return out.view(dtype.newbyteorder("<"))


def _decompress_numba(
    source: np.ndarray, out: np.ndarray, n_elements: int, elem_size: int, block_elements: int
) -> None:
    """The twin of the native engine: LZ4 block by block, then numba transposition."""
    n_blocked = n_elements - n_elements % _BLOCKED_MULT
    shuffled = np.empty(out.size, dtype=np.uint8)
    lz4 = lz4_library()
    src_address = source.ctypes.data
    dst_address = shuffled.ctypes.data
    source_bytes = source.data
    position = _HEADER.size
    start = 0
    while start < n_blocked:
        count = min(block_elements, n_blocked - start)
        (length,) = _LENGTH.unpack_from(source_bytes, position)
        position += 4
        want = count * elem_size
        got = lz4.decompress_safe(
            src_address + position, dst_address + start * elem_size, length, want
        )
        if got != want:
            raise ProtocolError(
                f"bslz4 block at byte {position}: corrupt LZ4 data "
                f"(decoded {got} bytes, expected {want})"
            )
        position += length
        start += count
    _bitunshuffle_blocks(shuffled, out, n_elements, elem_size, block_elements)
    out[n_blocked * elem_size :] = source[position:]
