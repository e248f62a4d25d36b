"""JSON-ready views of messages, for ``jfsim dump --json`` and for tests and tools.

Pixel channels become statistics (shape, dtype, compression, sum, max, NODATA count,
SHA-256 of the decompressed little-endian bytes) instead of pixels; other values become
JSON types (date-times as RFC 3339 text, rationals as ``[n, d]``, byte strings as their
length, non-finite floats as null).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import cbor2
import numpy as np

from jfsim.protocol.message import Message, Rational
from jfsim.protocol.pixels import PixelArray

__all__ = ["message_to_json", "nodata_value", "pixel_statistics"]

_INLINE_ARRAY_LIMIT = 64
"""1-D typed arrays up to this length are written out; longer ones are summarised."""


def nodata_value(dtype: np.dtype) -> int | float | None:
    """The no-data marker of a pixel type: max for unsigned, min for signed, NaN for float."""
    if dtype.kind == "u":
        return int(np.iinfo(dtype).max)
    if dtype.kind == "i":
        return int(np.iinfo(dtype).min)
    if dtype.kind == "f":
        return math.nan
    return None


def _array_statistics(values: np.ndarray) -> dict[str, Any]:
    little = values.astype(values.dtype.newbyteorder("<"), copy=False)
    marker = nodata_value(values.dtype)
    if values.dtype.kind == "f":
        nodata = int(np.count_nonzero(np.isnan(values)))
        finite = values[np.isfinite(values)]
        total: float | int | None = float(finite.sum(dtype=np.float64)) if finite.size else None
        maximum: float | int | None = float(finite.max()) if finite.size else None
        minimum: float | int | None = float(finite.min()) if finite.size else None
    else:
        nodata = int(np.count_nonzero(values == marker))
        total = int(values.sum(dtype=np.int64 if values.dtype.kind == "i" else np.uint64))
        maximum = int(values.max()) if values.size else None
        minimum = int(values.min()) if values.size else None
    return {
        "shape": list(values.shape),
        "dtype": values.dtype.name,
        "elem_size": values.dtype.itemsize,
        "sum": total,
        "max": maximum,
        "min": minimum,
        "nodata_count": nodata,
        "sha256": hashlib.sha256(np.ascontiguousarray(little).tobytes()).hexdigest(),
    }


def pixel_statistics(array: PixelArray, *, decompress: bool = True) -> dict[str, Any]:
    """Describe one channel; with ``decompress`` also sum, max, min, NODATA count, SHA-256.

    Raises:
        ProtocolError: the payload does not decompress to shape × dtype.
    """
    header = {
        "shape": list(array.shape),
        "dtype": array.dtype.name,
        "compression": array.compression.value,
        "elem_size": array.elem_size,
        "compressed_bytes": len(array.payload),
    }
    if not decompress:
        return header
    stats = _array_statistics(array.to_numpy())
    stats.update(header)
    return stats


def _jsonify(value: Any, decompress: bool) -> Any:
    if isinstance(value, PixelArray):
        return pixel_statistics(value, decompress=decompress)
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, Rational):
        return [value.numerator, value.denominator]
    if isinstance(value, Mapping):
        return {str(k): _jsonify(v, decompress) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonify(v, decompress) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"byte_string_length": len(value)}
    if isinstance(value, np.ndarray):
        if value.ndim == 1 and value.size <= _INLINE_ARRAY_LIMIT:
            return [_jsonify(v, decompress) for v in value.tolist()]
        return _array_statistics(value)
    if isinstance(value, cbor2.CBORTag):
        return {"cbor_tag": value.tag, "value": _jsonify(value.value, decompress)}
    return repr(value)


def message_to_json(message: Message, *, decompress: bool = True) -> dict[str, Any]:
    """``{"type": ..., <fields in wire order>}`` with every value made JSON-serialisable."""
    out: dict[str, Any] = {"type": message.type}
    for name, value in message.fields.items():
        out[name] = _jsonify(value, decompress)
    return out
