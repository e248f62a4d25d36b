"""A minimal baseline TIFF writer for ``/image_buffer/image.tiff``: one greyscale image.

Uncompressed, one strip, little-endian, pixels in their own integer type (SampleFormat says
signed or unsigned), as the broker's preview TIFF keeps the detector's counts.
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = ["tiff_bytes"]

_SHORT, _LONG = 3, 4
_HEADER_BYTES = 8
_SAMPLE_FORMAT = {"u": 1, "i": 2}


def tiff_bytes(image: np.ndarray) -> bytes:
    """The TIFF file of a 2-D integer ``image`` (``[slow, fast]`` = rows, columns)."""
    if image.ndim != 2 or image.dtype.kind not in _SAMPLE_FORMAT:
        raise ValueError(f"a TIFF image must be 2-D integers, got {image.ndim}-D {image.dtype}")
    pixels = np.ascontiguousarray(image, dtype=image.dtype.newbyteorder("<")).tobytes()
    height, width = image.shape
    entries = [  # (tag, type, value), sorted by tag as TIFF requires
        (256, _LONG, width),  # ImageWidth
        (257, _LONG, height),  # ImageLength
        (258, _SHORT, image.dtype.itemsize * 8),  # BitsPerSample
        (259, _SHORT, 1),  # Compression: none
        (262, _SHORT, 1),  # PhotometricInterpretation: black is zero
        (273, _LONG, 0),  # StripOffsets, filled in below
        (277, _SHORT, 1),  # SamplesPerPixel
        (278, _LONG, height),  # RowsPerStrip
        (279, _LONG, len(pixels)),  # StripByteCounts
        (339, _SHORT, _SAMPLE_FORMAT[image.dtype.kind]),  # SampleFormat
    ]
    ifd_bytes = 2 + 12 * len(entries) + 4
    pixel_offset = _HEADER_BYTES + ifd_bytes
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        if tag == 273:
            value = pixel_offset
        packed = struct.pack("<H", value) + b"\0\0" if kind == _SHORT else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    ifd += struct.pack("<I", 0)  # no next IFD
    return b"II*\0" + struct.pack("<I", _HEADER_BYTES) + ifd + pixels
