"""Pixel arrays on the wire: tag 40 → RFC 8746 typed array → bytes or tag 56500.

Checks shapes and sizes without decompressing by default. The framing header of a
compressed payload gives the uncompressed size (DECTRIS CBOR compression tag), which must equal
dims × element size. With ``decompress`` every block is walked and LZ4-decoded, and its
decoded length is compared with the block's. Nothing is allocated from a declared size:
a header that claims terabytes is a finding, not an allocation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any

import lz4.block
from cbor2 import CBORTag

from jfconform.model import Issue, Severity
from jfconform.stream.fields import is_array, is_uint

__all__ = ["ELEMENT_TYPES", "ArrayInfo", "check_array"]

Problem = tuple[str, Issue]

#: RFC 8746 §2.1 typed-array tags: element type name and size in bytes (76 is reserved;
#: 83/87 are float128, which no detector sends).
ELEMENT_TYPES: dict[int, tuple[str, int]] = {
    64: ("uint8", 1),
    65: ("uint16", 2),
    66: ("uint32", 4),
    67: ("uint64", 8),
    68: ("uint8", 1),
    69: ("uint16", 2),
    70: ("uint32", 4),
    71: ("uint64", 8),
    72: ("int8", 1),
    73: ("int16", 2),
    74: ("int32", 4),
    75: ("int64", 8),
    77: ("int16", 2),
    78: ("int32", 4),
    79: ("int64", 8),
    80: ("float16", 2),
    81: ("float32", 4),
    82: ("float64", 8),
    84: ("float16", 2),
    85: ("float32", 4),
    86: ("float64", 8),
}
MULTIDIM_TAGS = (40, 1040)
COMPRESSION_TAG = 56500
#: The framing header: u64 uncompressed size, u32 block size (DECTRIS CBOR compression tag).
HEADER_BYTES = 12
#: Blocks larger than this are refused before decoding (bitshuffle uses 8 KiB).
MAX_BLOCK_BYTES = 1 << 26


@dataclass(frozen=True, slots=True)
class ArrayInfo:
    """What a valid array is: dims, element type and size, and how it travels."""

    dims: tuple[int, ...]
    element_type: str
    element_bytes: int
    algorithm: str | None

    @property
    def nbytes(self) -> int:
        return math.prod(self.dims) * self.element_bytes


def check_array(
    value: Any, where: str, *, decompress: bool = False
) -> tuple[list[Problem], ArrayInfo | None]:
    """Judge one tag-40 array; returns the problems and, when its shape is usable, its info."""
    if not isinstance(value, CBORTag) or value.tag not in MULTIDIM_TAGS:
        return [("STR-010", Issue(where, f"is {_what(value)}, not a tag-40 array"))], None
    content = value.value
    if not (is_array(content) and len(content) == 2):
        return [("STR-010", Issue(where, "tag 40 does not hold [dims, typed array]"))], None
    dims, typed = content
    if not (is_array(dims) and dims and all(is_uint(d) for d in dims)):
        return [("STR-010", Issue(where, f"dims {_short(dims)} are not unsigned integers"))], None
    dims = tuple(int(d) for d in dims)
    if not isinstance(typed, CBORTag) or typed.tag not in ELEMENT_TYPES:
        return [
            (
                "STR-009",
                Issue(where, f"the array is {_what(typed)}, not a known RFC 8746 typed array"),
            )
        ], None
    element_type, element_bytes = ELEMENT_TYPES[typed.tag]
    expected = math.prod(dims) * element_bytes
    inner = typed.value
    if isinstance(inner, (bytes, bytearray, memoryview)):
        if len(inner) != expected:
            return [
                (
                    "STR-010",
                    Issue(
                        where,
                        f"{len(inner)} bytes of {element_type}, but dims {list(dims)} need "
                        f"{expected}",
                    ),
                )
            ], None
        return [], ArrayInfo(dims, element_type, element_bytes, None)
    if not isinstance(inner, CBORTag) or inner.tag != COMPRESSION_TAG:
        return [
            (
                "STR-009",
                Issue(
                    where,
                    f"typed array tag {typed.tag} holds {_what(inner)}, not bytes or tag 56500",
                ),
            )
        ], None
    problems = _check_compressed(inner.value, element_bytes, expected, where, decompress)
    algorithm = inner.value[0] if is_array(inner.value) and inner.value else None
    usable = not any(rule in ("STR-011", "STR-012") for rule, _ in problems)
    info = ArrayInfo(dims, element_type, element_bytes, str(algorithm)) if usable else None
    return problems, info


def _check_compressed(
    content: Any, element_bytes: int, expected: int, where: str, decompress: bool
) -> list[Problem]:
    if not (
        is_array(content)
        and len(content) == 3
        and isinstance(content[0], str)
        and is_uint(content[1])
        and isinstance(content[2], (bytes, bytearray, memoryview))
    ):
        return [("STR-011", Issue(where, "tag 56500 does not hold [algorithm, modifier, bytes]"))]
    algorithm, modifier, payload = content
    if algorithm not in ("bslz4", "lz4"):
        return [
            (
                "STR-011",
                Issue(
                    where,
                    f"compression {algorithm!r} is not one this judge can check (bslz4, lz4)",
                    severity=Severity.WARNING,
                ),
            )
        ]
    if algorithm == "bslz4" and modifier != element_bytes:
        return [
            (
                "STR-011",
                Issue(where, f"bslz4 modifier {modifier} is not the element size {element_bytes}"),
            )
        ]
    if len(payload) < HEADER_BYTES:
        return [
            ("STR-011", Issue(where, f"{algorithm} payload of {len(payload)} bytes has no header"))
        ]
    total = int.from_bytes(payload[:8], "big")
    block = int.from_bytes(payload[8:12], "big")
    if block == 0 or block % element_bytes or block > MAX_BLOCK_BYTES:
        return [("STR-011", Issue(where, f"{algorithm} block size {block} bytes is not usable"))]
    if total != expected:
        return [
            (
                "STR-012",
                Issue(
                    where,
                    f"{algorithm} header says {total} uncompressed bytes; dims × element size "
                    f"= {expected}",
                ),
            )
        ]
    if not decompress:
        return []
    walk = _walk_bslz4 if algorithm == "bslz4" else _walk_lz4
    return walk(memoryview(payload), total, block, element_bytes, where)


def _bslz4_blocks(total: int, block: int, element_bytes: int) -> tuple[Iterator[int], int]:
    """Uncompressed sizes of the LZ4 blocks (lazily: a header may claim any size) and of
    the raw trailer (bitshuffle's bslz4 framing)."""
    n_elements = total // element_bytes
    per_block = block // element_bytes
    full, rest = divmod(n_elements, per_block)
    last = (rest - rest % 8) * element_bytes
    sizes = chain(repeat(block, full), [last] if last else [])
    return sizes, (rest % 8) * element_bytes


def _walk_bslz4(
    payload: memoryview, total: int, block: int, element_bytes: int, where: str
) -> list[Problem]:
    sizes, trailer = _bslz4_blocks(total, block, element_bytes)
    position = _decode_blocks(payload, HEADER_BYTES, sizes, where, stored_allowed=False)
    if isinstance(position, list):
        return position
    if len(payload) - position != trailer:
        return [
            (
                "STR-011",
                Issue(
                    where,
                    f"bslz4 framing ends with {len(payload) - position} bytes; the raw "
                    f"trailer should be {trailer}",
                ),
            )
        ]
    return []


def _walk_lz4(
    payload: memoryview, total: int, block: int, element_bytes: int, where: str
) -> list[Problem]:
    full, rest = divmod(total, block)
    sizes = chain(repeat(block, full), [rest] if rest else [])
    position = _decode_blocks(payload, HEADER_BYTES, sizes, where, stored_allowed=True)
    if isinstance(position, list):
        return position
    if position != len(payload):
        return [("STR-011", Issue(where, f"{len(payload) - position} bytes after the last block"))]
    return []


def _decode_blocks(
    payload: memoryview, position: int, sizes: Iterable[int], where: str, *, stored_allowed: bool
) -> int | list[Problem]:
    """LZ4-decode each block; the position after the last block, or the problem found."""
    end = len(payload)
    for index, size in enumerate(sizes):
        if position + 4 > end:
            return [("STR-011", Issue(where, f"the framing ends before block {index}"))]
        length = int.from_bytes(payload[position : position + 4], "big")
        position += 4
        if length > end - position:
            return [
                (
                    "STR-011",
                    Issue(where, f"block {index} claims {length} bytes; {end - position} remain"),
                )
            ]
        chunk = payload[position : position + length]
        position += length
        if stored_allowed and length == size:
            continue  # HDF5 LZ4 filter: a block that does not shrink is stored as it is
        try:
            decoded = lz4.block.decompress(chunk, uncompressed_size=size)
        except Exception as error:  # lz4 raises LZ4BlockError or ValueError on corrupt data
            return [("STR-014", Issue(where, f"LZ4 block {index} does not decode: {error}"))]
        if len(decoded) != size:
            return [
                (
                    "STR-014",
                    Issue(where, f"LZ4 block {index} decodes to {len(decoded)} bytes, not {size}"),
                )
            ]
    return position


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _what(value: Any) -> str:
    if isinstance(value, CBORTag):
        return f"tag {value.tag}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "a byte string"
    return type(value).__name__
