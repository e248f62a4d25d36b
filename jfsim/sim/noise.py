"""Counter-based random numbers, a deterministic Poisson sampler and the per-pixel rules.

Why counter-based: a pixel's noise must not depend on which thread (or GPU block) drew it,
so that the CPU and the GPU engine produce the same image from the same seed. Every draw is
a pure function of (frame key, pixel index, draw number):

* ``frame_key(seed, image_id)`` = splitmix64(splitmix64(seed) ^ image_id);
* ``uniform_open(key, counter)`` = top 53 bits of splitmix64(key ^ splitmix64(counter)),
  as a float64 in (0, 1);
* ``poisson(mean, key, pixel)``: for mean < ``INVERSION_LIMIT`` sequential inversion of the
  CDF with one uniform (counter 2·pixel; p_k = p_(k−1)·mean·(1/k), the first 8 steps
  branch-free when mean < 2); above it the normal approximation
  floor(mean + √mean·z + 0.5), z by Box-Muller from counters 2·pixel and 2·pixel + 1.

The functions are written once, as plain Python on ``numpy.uint64`` values, and
:func:`build_pixel_functions` compiles them with whatever the engine passes: ``numba.njit``
for the CPU engine, ``numba.cuda.jit(device=True)`` for the GPU engine, or nothing (plain
Python, used by tests as the oracle).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53
_INV_SQRT2 = 1.0 / math.sqrt(2.0)

#: Means below this use exact CDF inversion; above, the rounded normal approximation.
INVERSION_LIMIT = 32.0
#: Inversion stops at this count (far beyond any mean below ``INVERSION_LIMIT``).
_MAX_COUNT = 1000
#: 1/k for k = 1.._MAX_COUNT (index 0 unused): multiplications instead of divisions.
_RECIPROCALS = np.concatenate([[0.0], 1.0 / np.arange(1, _MAX_COUNT + 1, dtype=np.float64)])
#: Below this mean the first ``_UNROLLED_STEPS`` CDF steps are evaluated without branching.
_UNROLLED_MEAN_LIMIT = 2.0
_UNROLLED_STEPS = 8
#: Offset of the image number inside the frame key, keeping noise-bank frames apart.
NOISE_BANK_KEY_OFFSET = 1 << 40

#: Pixel classes of a frame plan: sensitive, error sentinel (gap, dead), zero (beamstop).
PIXEL_SENSITIVE = 0
PIXEL_ERROR = 1
PIXEL_ZERO = 2


def splitmix64(value: Any) -> Any:
    """splitmix64 finaliser of uint64 values (scalar or numpy array): a well-mixed hash."""
    z = value + _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


def frame_key(seed: int, image_id: int) -> np.uint64:
    """The key of one frame's noise."""
    with np.errstate(over="ignore"):
        return splitmix64(splitmix64(np.uint64(seed)) ^ np.uint64(image_id))


def build_pixel_functions(compile_function: Callable[[Callable], Callable]) -> SimpleNamespace:
    """The per-pixel functions, each passed through ``compile_function``.

    Returns a namespace with ``clamp(value, low, high)``, ``uniform_open(key, counter)``,
    ``poisson(mean, key, pixel)``,
    ``pixel_value(mean, pixel_class, key, pixel, saturation, error, use_poisson)`` and
    ``spot_fraction(centre_pxl, sigma_pxl, index)`` (the share of a unit Gaussian centred at
    the continuous coordinate ``centre_pxl`` that falls in pixel ``index`` = [i, i+1)).
    """
    mix = compile_function(splitmix64)

    def uniform_open(key, counter):  # type: ignore[no-untyped-def]
        bits = mix(key ^ mix(counter))
        return (np.float64(bits >> _S11) + 0.5) * _TO_UNIT

    uniform = compile_function(uniform_open)

    def poisson(mean, key, pixel):  # type: ignore[no-untyped-def]
        if not mean > 0.0:
            return 0
        counter = pixel * _TWO
        if mean < INVERSION_LIMIT:
            u = uniform(key, counter)
            term = math.exp(-mean)
            cdf = term
            count = 0
            if mean < _UNROLLED_MEAN_LIMIT:
                # the first CDF steps without data-dependent branches (most pixels stop here)
                for k in range(1, _UNROLLED_STEPS + 1):
                    count += 1 if u > cdf else 0
                    term = term * mean * _RECIPROCALS[k]
                    cdf += term
                if count < _UNROLLED_STEPS:
                    return count
            while u > cdf and count < _MAX_COUNT:
                count += 1
                term = term * mean * _RECIPROCALS[count]
                cdf += term
            return count
        u1 = uniform(key, counter)
        u2 = uniform(key, counter + _ONE)
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        value = math.floor(mean + math.sqrt(mean) * z + 0.5)
        if value > 0.0:
            return int(value)
        return 0

    poisson_compiled = compile_function(poisson)

    def pixel_value(mean, pixel_class, key, pixel, saturation, error, use_poisson):  # type: ignore[no-untyped-def]
        if pixel_class == PIXEL_ERROR:
            return error
        if pixel_class == PIXEL_ZERO:
            return 0
        if use_poisson:
            count = poisson_compiled(mean, key, pixel)
        else:
            count = math.floor(mean + 0.5) if mean > 0.0 else 0
        if count > saturation:
            return saturation
        return count

    def spot_fraction(centre_pxl, sigma_pxl, index):  # type: ignore[no-untyped-def]
        scale = _INV_SQRT2 / sigma_pxl
        return 0.5 * (
            math.erf((index + 1.0 - centre_pxl) * scale) - math.erf((index - centre_pxl) * scale)
        )

    def clamp(value, low, high):  # type: ignore[no-untyped-def]
        # explicit: numba's CUDA target does not type the two-argument max()/min() of ints
        if value < low:
            return low
        if value > high:
            return high
        return value

    return SimpleNamespace(
        clamp=compile_function(clamp),
        uniform_open=uniform,
        poisson=poisson_compiled,
        pixel_value=compile_function(pixel_value),
        spot_fraction=compile_function(spot_fraction),
    )
