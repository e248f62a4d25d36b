"""Fast decoding of plain arrays: spots, reflections, metadata entries, float profiles.

A Jungfraujoch image message can carry hundreds of spot and reflection maps; walking them
item by item in Python costs milliseconds per image. Here a numba scanner first proves that
an array holds only *plain* CBOR: definite-length arrays and maps (keys text or integers),
integers, floats, booleans, null and text, no tags, nested no deeper than the decoder
allows, every length checked against the bytes really there. Byte strings are left to the
general path too: they are pixels (``[algorithm, modifier, data]`` of a compressed typed
array), which must be copied once, not twice. Only then is the array handed to cbor2's C
decoder, whose result for plain CBOR is exactly what our own decoder builds (lists, dicts,
ints, floats, str; invalid UTF-8 makes it decline).
Anything else returns None and the caller takes its general, fully checked path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2
import numba
import numpy as np

__all__ = ["decode_plain_array", "scan_plain_array"]


@numba.njit(cache=True)
def _head(data, position, end):  # type: ignore[no-untyped-def]  # pragma: no cover - numba
    """``(major, argument, position after the head)``; major -1 for an indefinite length, a
    reserved or unsupported head, or a truncated one. For major 7, ``argument`` is the
    initial byte's low five bits (the payload of a float is skipped)."""
    if position >= end:
        return -1, np.int64(0), position
    initial = np.int64(data[position])
    position += 1
    major = initial >> 5
    info = initial & 0x1F
    if major == 7:
        if 20 <= info <= 22:  # false, true, null (not undefined: cbor2 has its own type)
            return 7, info, position
        if 25 <= info <= 27:  # half, single, double float
            width = np.int64(1) << (info - 24)
            if position + width > end:
                return -1, np.int64(0), position
            return 7, info, position + width
        return -1, np.int64(0), position
    if info < 24:
        return major, info, position
    if info > 27:
        return -1, np.int64(0), position
    width = np.int64(1) << (info - 24)
    if position + width > end:
        return -1, np.int64(0), position
    argument = np.int64(0)
    for i in range(width):
        if argument >> 55:  # beyond 2**63: no buffer is that long
            return -1, np.int64(0), position
        argument = (argument << 8) | np.int64(data[position + i])
    return major, argument, position + width


@numba.njit(cache=True)
def scan_plain_array(data, position, max_levels, container_bytes):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``(offset after the array at position, bytes of the lists and maps below it)`` if it
    is plain CBOR, else ``(-1, 0)``.

    ``data`` is the buffer as uint8; ``max_levels`` how many levels may lie below the array
    (its items are level 1), as the decoder's depth limit leaves them; ``container_bytes``
    what a list, a list slot, a dict and a dict pair cost (the decoder's budget).
    """
    list_bytes, slot_bytes, map_bytes, pair_bytes = container_bytes
    end = np.int64(data.shape[0])
    major, count, position = _head(data, np.int64(position), end)
    if major != 4 or count > end - position:
        return -1, np.int64(0)
    # per open container: items still to read, and whether it is a map (keys at even counts)
    remaining = np.zeros(max_levels + 1, np.int64)
    is_map = np.zeros(max_levels + 1, np.bool_)
    level = 0
    remaining[0] = count
    cost = np.int64(0)
    while True:
        while remaining[level] == 0:
            if level == 0:
                return position, cost
            level -= 1
        key = is_map[level] and remaining[level] % 2 == 0
        remaining[level] -= 1
        if level + 1 > max_levels:
            return -1, np.int64(0)
        major, argument, position = _head(data, position, end)
        if major < 0 or major == 2 or major == 6:  # byte strings: pixels, copied once elsewhere
            return -1, np.int64(0)
        if key and major != 0 and major != 1 and major != 3:
            return -1, np.int64(0)
        if major == 3:
            if argument > end - position:
                return -1, np.int64(0)
            position += argument
        elif major == 4 or major == 5:
            items = argument * 2 if major == 5 else argument
            if items > end - position:
                return -1, np.int64(0)
            if major == 4:
                cost += list_bytes + slot_bytes * argument
            else:
                cost += map_bytes + pair_bytes * argument
            level += 1
            remaining[level] = items
            is_map[level] = major == 5


def decode_plain_array(
    data: bytes | memoryview,
    as_array: np.ndarray,
    position: int,
    max_levels: int,
    container_bytes: tuple[int, int, int, int],
    charge: Callable[[int], None],
) -> tuple[list[Any] | None, int]:
    """``(list, end offset)`` for a plain array at ``position``, or ``(None, -1)``.

    ``data`` is the message buffer (bytes or a byte memoryview), ``as_array`` the same
    memory viewed as uint8 (made once per message by the caller), ``max_levels`` and
    ``container_bytes`` as for ``scan_plain_array``. ``charge`` is given the bytes of the
    lists and maps below the array before any is built; it raises to refuse them.
    """
    end, nested_bytes = scan_plain_array(as_array, position, max_levels, container_bytes)
    if end < 0:
        return None, -1
    charge(int(nested_bytes))
    try:
        items: list[Any] = cbor2.loads(bytes(data[position:end]))
    except cbor2.CBORDecodeError:  # invalid UTF-8: the general path names the place
        return None, -1
    return items, int(end)
