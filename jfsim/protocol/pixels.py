"""Pixel arrays as they travel: RFC 8746 typed arrays inside tag 40, maybe in tag 56500."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from jfsim.protocol import bslz4, hdf5_lz4
from jfsim.protocol.errors import ProtocolError

__all__ = [
    "DTYPE_TO_TAG",
    "MAX_DIMENSIONS",
    "TAG_TO_DTYPE",
    "Compression",
    "PixelArray",
]

MAX_DIMENSIONS = 8

TAG_TO_DTYPE: dict[int, np.dtype] = {
    64: np.dtype("u1"),
    65: np.dtype(">u2"),
    66: np.dtype(">u4"),
    67: np.dtype(">u8"),
    68: np.dtype("u1"),  # uint8, clamped arithmetic: same bytes
    69: np.dtype("<u2"),
    70: np.dtype("<u4"),
    71: np.dtype("<u8"),
    72: np.dtype("i1"),
    73: np.dtype(">i2"),
    74: np.dtype(">i4"),
    75: np.dtype(">i8"),
    77: np.dtype("<i2"),
    78: np.dtype("<i4"),
    79: np.dtype("<i8"),
    80: np.dtype(">f2"),
    81: np.dtype(">f4"),
    82: np.dtype(">f8"),
    84: np.dtype("<f2"),
    85: np.dtype("<f4"),
    86: np.dtype("<f8"),
}
"""RFC 8746 §2.1 typed-array tags we understand (float128 tags 83/87 are refused)."""

DTYPE_TO_TAG: dict[str, int] = {
    "u1": 64,
    "<u2": 69,
    "<u4": 70,
    "<u8": 71,
    "i1": 72,
    "<i2": 77,
    "<i4": 78,
    "<i8": 79,
    "<f2": 84,
    "<f4": 85,
    "<f8": 86,
}
"""Tags the encoder writes: always little-endian (``dtype.str`` with ``|`` read as ``u1``)."""


def little_endian(dtype: np.dtype) -> np.dtype:
    """The little-endian twin of ``dtype`` (pixels always travel little-endian)."""
    return dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype


def dtype_key(dtype: np.dtype) -> str:
    """Our key into ``DTYPE_TO_TAG``: ``u1``/``i1`` for bytes, else the ``<``-form string."""
    dtype = little_endian(np.dtype(dtype))
    return dtype.str.replace("|", "")


class Compression(str, Enum):
    """How a pixel byte string travels: raw, or tag 56500 with one of two algorithms."""

    NONE = "none"
    BSLZ4 = "bslz4"
    LZ4 = "lz4"


@dataclass(frozen=True, slots=True)
class PixelArray:
    """One tag-40 multi-dimensional typed array, pixels left exactly as on the wire.

    Attributes:
        shape: tag-40 dims; for images ``(height, width)`` = ``(image_size_y, image_size_x)``.
        dtype: little-endian element type (u1, u2, u4, i1, i2, i4; f4 for flatfields).
        compression: ``NONE`` (raw bytes) or the tag-56500 algorithm.
        payload: the wire byte string; for BSLZ4/LZ4 the HDF5-filter-framed compressed
            bytes, i.e. exactly what ``write_direct_chunk`` stores.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    compression: Compression
    payload: bytes

    @property
    def elem_size(self) -> int:
        return int(self.dtype.itemsize)

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Size of the decompressed pixels in bytes."""
        return self.n_elements * self.elem_size

    def validate(self) -> None:
        """Check sizes and framing without decompressing.

        Raises:
            ProtocolError: shape, dtype, payload length or compressed framing disagree.
        """
        if not 1 <= len(self.shape) <= MAX_DIMENSIONS:
            raise ProtocolError(f"array has {len(self.shape)} dimensions (1..{MAX_DIMENSIONS})")
        if any((not isinstance(d, int)) or d < 0 for d in self.shape):
            raise ProtocolError(f"array dimensions {list(self.shape)} are not unsigned integers")
        nbytes = self.nbytes
        if nbytes > bslz4.MAX_DECOMPRESSED_BYTES:
            raise ProtocolError(
                f"array shape {list(self.shape)} × {self.elem_size} bytes = {nbytes} bytes "
                f"exceeds the {bslz4.MAX_DECOMPRESSED_BYTES}-byte limit"
            )
        if self.compression is Compression.NONE:
            if len(self.payload) != nbytes:
                raise ProtocolError(
                    f"array byte string is {len(self.payload)} bytes but shape "
                    f"{list(self.shape)} × {self.elem_size} bytes needs {nbytes}"
                )
        elif self.compression is Compression.BSLZ4:
            bslz4.validate_framing(self.payload, self.elem_size, nbytes)
        else:
            hdf5_lz4.validate_framing(self.payload, nbytes)

    def to_numpy(self) -> np.ndarray:
        """Decompress and return an array of ``self.shape`` (read-only when uncompressed).

        Raises:
            ProtocolError: the payload does not decode to exactly shape × dtype.
        """
        self.validate()
        if self.compression is Compression.NONE:
            flat = np.frombuffer(self.payload, dtype=self.dtype)
        elif self.compression is Compression.BSLZ4:
            flat = bslz4.decompress(self.payload, self.dtype, self.n_elements)
        else:
            flat = hdf5_lz4.decompress(self.payload, self.dtype, self.n_elements)
        return flat.view(self.dtype).reshape(self.shape)

    @classmethod
    def from_numpy(
        cls, array: np.ndarray, compression: Compression | str = Compression.BSLZ4
    ) -> PixelArray:
        """Wrap (and compress) a numpy array; big-endian input is converted to little-endian."""
        compression = Compression(compression)
        array = np.asarray(array)
        dtype = little_endian(array.dtype)
        if dtype_key(dtype) not in DTYPE_TO_TAG:
            raise ProtocolError(f"pixel dtype {array.dtype} has no RFC 8746 typed-array tag")
        array = np.ascontiguousarray(array, dtype=dtype)
        if compression is Compression.NONE:
            payload = array.tobytes()
        elif compression is Compression.BSLZ4:
            payload = bslz4.compress(array)
        else:
            payload = hdf5_lz4.compress(array)
        return cls(tuple(int(d) for d in array.shape), dtype, compression, payload)
