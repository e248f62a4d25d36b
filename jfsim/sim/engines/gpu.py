"""The GPU engine: numba.cuda kernels, the twin of the CPU engine.

Same per-pixel functions (``jfsim.sim.noise``, compiled as CUDA device functions), same
counter-based keys, so a frame is the CPU frame: the expectation differs only by the order
of float32 additions where spot windows overlap (atomic adds), and the noisy pixels are
equal unless such a difference crosses a Poisson CDF step (probability ~1e-7 per pixel).
Tested under ``NUMBA_ENABLE_CUDASIM=1`` against the CPU engine.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cuda

from jfsim.engines import cuda_probe
from jfsim.sim.frame import FramePlan, SpotList
from jfsim.sim.noise import build_pixel_functions, frame_key

NAME = "gpu"


@dataclass(frozen=True, slots=True)
class GpuOptions:
    """Launch shape of the pixel kernels (2D blocks) and of the spot kernel (1D)."""

    block_rows: int = 8
    block_cols: int = 32
    spot_threads_per_block: int = 64


def probe() -> str | None:
    """None when a CUDA device (or the numba CUDA simulator) is usable, else the reason."""
    return cuda_probe()


@functools.cache
def _kernels() -> dict[str, Any]:
    """Compile the kernels on first use (CUDA compilation is slow; CPU-only runs skip it)."""
    pixel = build_pixel_functions(lambda function: cuda.jit(device=True)(function))
    pixel_value = pixel.pixel_value
    spot_fraction = pixel.spot_fraction
    clamp = pixel.clamp

    @cuda.jit
    def copy_background(background, expected):  # type: ignore[no-untyped-def]
        row, col = cuda.grid(2)
        if row < expected.shape[0] and col < expected.shape[1]:
            expected[row, col] = background[row, col]

    @cuda.jit
    def add_spots(expected, pixel_class, x, y, sigma, photons, half_width):  # type: ignore[no-untyped-def]
        s = cuda.grid(1)
        if s >= x.shape[0]:
            return
        height, width = expected.shape
        col_centre = math.floor(x[s])
        row_centre = math.floor(y[s])
        half = half_width[s]
        for row in range(
            clamp(row_centre - half, 0, height), clamp(row_centre + half + 1, 0, height)
        ):
            share_y = spot_fraction(y[s], sigma[s], row)
            for col in range(
                clamp(col_centre - half, 0, width), clamp(col_centre + half + 1, 0, width)
            ):
                if pixel_class[row, col] != 0:
                    continue
                share_x = spot_fraction(x[s], sigma[s], col)
                cuda.atomic.add(expected, (row, col), np.float32(photons[s] * share_x * share_y))

    @cuda.jit
    def finish_frame(expected, pixel_class, out, key, saturation, error, use_poisson):  # type: ignore[no-untyped-def]
        row, col = cuda.grid(2)
        height, width = expected.shape
        if row < height and col < width:
            pixel = np.uint64(row * width + col)
            out[row, col] = pixel_value(
                expected[row, col],
                pixel_class[row, col],
                key,
                pixel,
                saturation,
                error,
                use_poisson,
            )

    return dict(
        cuda=cuda, copy_background=copy_background, add_spots=add_spots, finish=finish_frame
    )


class PreparedGpu:
    """Device copies of the plan and per-frame buffers."""

    def __init__(self, plan: FramePlan, options: GpuOptions) -> None:
        kernels = _kernels()
        cuda = kernels["cuda"]
        self.plan = plan
        self.options = options
        self.kernels = kernels
        self.background = cuda.to_device(np.ascontiguousarray(plan.background_photons))
        self.pixel_class = cuda.to_device(np.ascontiguousarray(plan.pixel_class))
        self.expected = cuda.device_array(plan.shape, dtype=np.float32)
        self.out = cuda.device_array(plan.shape, dtype=plan.image_dtype)
        height, width = plan.shape
        self.block = (options.block_rows, options.block_cols)
        self.grid = (
            (height + options.block_rows - 1) // options.block_rows,
            (width + options.block_cols - 1) // options.block_cols,
        )

    def render_expectation(self, spots: SpotList) -> None:
        cuda = self.kernels["cuda"]
        self.kernels["copy_background"][self.grid, self.block](self.background, self.expected)
        if len(spots) == 0:
            return
        arrays = [
            cuda.to_device(np.ascontiguousarray(values, dtype=np.float64))
            for values in (spots.x_pxl, spots.y_pxl, spots.sigma_pxl, spots.photons)
        ]
        half = cuda.to_device(spots.window_half_width_pxl())
        threads = self.options.spot_threads_per_block
        blocks = (len(spots) + threads - 1) // threads
        self.kernels["add_spots"][blocks, threads](self.expected, self.pixel_class, *arrays, half)


def prepare(plan: FramePlan, options: GpuOptions | None = None) -> PreparedGpu:
    """Upload the plan and compile the kernels (call ``probe()`` first)."""
    return PreparedGpu(plan, options or GpuOptions())


def expectation(prepared: PreparedGpu, spots: SpotList) -> np.ndarray:
    """The noiseless expected photons of a frame, float32 ``[H, W]``."""
    prepared.render_expectation(spots)
    return prepared.expected.copy_to_host()


def run(prepared: PreparedGpu, spots: SpotList, image_id: int) -> np.ndarray:
    """Render frame ``image_id``: pixels of the detector type, ``[H, W]``."""
    plan = prepared.plan
    prepared.render_expectation(spots)
    prepared.kernels["finish"][prepared.grid, prepared.block](
        prepared.expected,
        prepared.pixel_class,
        prepared.out,
        frame_key(plan.seed, image_id),
        plan.saturation_value,
        plan.error_value,
        plan.poisson_noise,
    )
    return prepared.out.copy_to_host()
