"""Fast decoding of arrays of flat maps (spots, reflections), the bulk of analysis messages.

A Jungfraujoch image message can carry hundreds of spot and reflection maps; walking them
item by item in Python costs milliseconds per image. Here a numba scanner first proves
that an array holds only small maps with short text keys and scalar values (integers,
floats, booleans, null, short text), checking every length against the bytes really
there. Only then is the array handed to cbor2's C decoder, whose result for that subset
of CBOR is exactly what our own decoder builds. Anything outside the subset returns None
and the caller takes its general, fully checked path.
"""

from __future__ import annotations

from typing import Any

import cbor2
import numba
import numpy as np

__all__ = ["decode_flat_map_array", "scan_flat_map_array"]

_MAX_PAIRS = 23
"""Maps with a one-byte head (0xA0-0xB7); spot and reflection maps have about ten pairs."""


@numba.njit(cache=True)
def scan_flat_map_array(data, position):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Offset after the array at ``position`` if it is an array of flat maps, else -1.

    Accepted: a definite array head; per element a definite map of at most 23 pairs; keys
    text strings shorter than 24 bytes; values unsigned/negative integers, text strings
    shorter than 24 bytes, false, true, null, half/single/double floats.
    """
    end = data.shape[0]
    if position >= end:
        return -1
    initial = data[position]
    position += 1
    if initial < 0x80 or initial > 0x9B:
        return -1
    count = np.int64(initial - 0x80)
    if initial >= 0x98:
        width = 1 << (initial - 0x98)
        if position + width > end:
            return -1
        count = np.int64(0)
        for i in range(width):
            count = (count << 8) | np.int64(data[position + i])
        position += width
    if count > end - position:
        return -1
    for _ in range(count):
        if position >= end:
            return -1
        head = data[position]
        position += 1
        if head < 0xA0 or head > 0xA0 + _MAX_PAIRS:
            return -1
        for _ in range(head - 0xA0):
            if position >= end:
                return -1
            key = data[position]
            if key < 0x60 or key > 0x77:
                return -1
            position += 1 + (key - 0x60)
            if position >= end:
                return -1
            value = data[position]
            position += 1
            if value < 0x18 or (0x20 <= value < 0x38) or (0xF4 <= value <= 0xF6):
                continue
            if value < 0x1C or (0x38 <= value < 0x3C):
                position += 1 << ((value & 0x1F) - 24)
            elif 0x60 <= value < 0x78:
                position += value - 0x60
            elif value == 0xF9:
                position += 2
            elif value == 0xFA:
                position += 4
            elif value == 0xFB:
                position += 8
            else:
                return -1
            if position > end:
                return -1
    return position


def decode_flat_map_array(
    data: bytes | memoryview, as_array: np.ndarray, position: int
) -> tuple[list[Any] | None, int]:
    """``(list of dicts, end offset)`` for an array of flat maps at ``position``, or ``(None, -1)``.

    ``data`` is the message buffer (bytes or a byte memoryview) and ``as_array`` the same
    memory viewed as uint8 (made once per message by the caller).
    """
    end = int(scan_flat_map_array(as_array, position))
    if end < 0:
        return None, -1
    try:
        maps: list[Any] = cbor2.loads(bytes(data[position:end]))
    except cbor2.CBORDecodeError:  # invalid UTF-8: the general path names the place
        return None, -1
    return maps, end
