"""Accumulation primitives, so per-pixel code is written once for both engines.

Every per-pixel function of the analysis adds into shared accumulators through ``add``,
``minimum`` and ``maximum``. The CPU engine (one frame per thread) compiles them as plain
read-modify-write (``numba.njit``); the GPU engine (one CUDA thread per pixel) as atomics
(``numba.cuda.atomic``). Accumulators hold integers (counts, pixel sums, sums of squares,
value-weighted coordinates) in int64 wherever possible, so the order in which GPU threads
add does not change a single bit of the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
from numba import cuda  # module level: the CUDA simulator patches this global

__all__ = ["Primitives", "cpu_primitives", "gpu_primitives"]


@dataclass(frozen=True, slots=True)
class Primitives:
    """``compile`` turns a plain Python function into an engine function; ``add(array,
    index, value)``, ``minimum(...)``, ``maximum(...)`` update ``array[index]``;
    ``fetch_add(array, index, value)`` adds and returns the value before the addition (a
    slot in an output list)."""

    compile: Callable[[Callable[..., Any]], Any]
    add: Any
    minimum: Any
    maximum: Any
    fetch_add: Any


def cpu_primitives() -> Primitives:
    """Plain updates compiled by ``numba.njit`` (one thread owns the accumulators)."""

    def compile_cpu(function: Callable[..., Any]) -> Any:
        return numba.njit(inline="always")(function)

    def add(array, index, value):  # type: ignore[no-untyped-def]
        array[index] += value

    def minimum(array, index, value):  # type: ignore[no-untyped-def]
        if value < array[index]:
            array[index] = value

    def maximum(array, index, value):  # type: ignore[no-untyped-def]
        if value > array[index]:
            array[index] = value

    def fetch_add(array, index, value):  # type: ignore[no-untyped-def]
        before = array[index]
        array[index] = before + value
        return before

    return Primitives(
        compile_cpu,
        compile_cpu(add),
        compile_cpu(minimum),
        compile_cpu(maximum),
        compile_cpu(fetch_add),
    )


def gpu_primitives() -> Primitives:
    """Atomic updates compiled as CUDA device functions."""

    def compile_gpu(function: Callable[..., Any]) -> Any:
        return cuda.jit(device=True, inline=True)(function)

    def add(array, index, value):  # type: ignore[no-untyped-def]
        cuda.atomic.add(array, index, value)

    def minimum(array, index, value):  # type: ignore[no-untyped-def]
        cuda.atomic.min(array, index, value)

    def maximum(array, index, value):  # type: ignore[no-untyped-def]
        cuda.atomic.max(array, index, value)

    def fetch_add(array, index, value):  # type: ignore[no-untyped-def]
        return cuda.atomic.add(array, index, value)

    return Primitives(
        compile_gpu,
        compile_gpu(add),
        compile_gpu(minimum),
        compile_gpu(maximum),
        compile_gpu(fetch_add),
    )
