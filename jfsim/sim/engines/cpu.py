"""The CPU engine: numba, parallel over image rows.

Per frame: expected = background + spots (spots in submission order, float32 sums), then
every pixel gets ``pixel_value`` (Poisson draw keyed by (seed, image, pixel), saturation
clip, sentinels). With a noise bank, N background-only frames are drawn once; each frame
copies bank frame ``image_id % N`` and redraws only the pixels inside spot windows, from
background + spots with the frame's own key (fast; background noise repeats every N frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from jfsim.sim.frame import FramePlan, SpotList
from jfsim.sim.noise import NOISE_BANK_KEY_OFFSET, build_pixel_functions, frame_key

NAME = "cpu"

_pixel = build_pixel_functions(numba.njit)
_pixel_value = _pixel.pixel_value
_spot_fraction = _pixel.spot_fraction
_clamp = _pixel.clamp


@dataclass(frozen=True, slots=True)
class CpuOptions:
    """``noise_bank_frames`` > 0 pre-draws that many background noise frames and reuses them."""

    noise_bank_frames: int = 0


def probe() -> str | None:
    """The CPU engine always runs."""
    return None


@numba.njit(parallel=True)
def _finish_frame(expected, pixel_class, out, key, saturation, error, use_poisson):  # type: ignore[no-untyped-def]
    height, width = expected.shape
    for row in numba.prange(height):
        for col in range(width):
            pixel = np.uint64(row * width + col)
            out[row, col] = _pixel_value(
                expected[row, col],
                pixel_class[row, col],
                key,
                pixel,
                saturation,
                error,
                use_poisson,
            )


@numba.njit
def _add_spots(expected, pixel_class, x, y, sigma, photons, half_width):  # type: ignore[no-untyped-def]
    height, width = expected.shape
    for s in range(x.shape[0]):
        col_centre = math.floor(x[s])
        row_centre = math.floor(y[s])
        half = half_width[s]
        for row in range(
            _clamp(row_centre - half, 0, height), _clamp(row_centre + half + 1, 0, height)
        ):
            share_y = _spot_fraction(y[s], sigma[s], row)
            for col in range(
                _clamp(col_centre - half, 0, width), _clamp(col_centre + half + 1, 0, width)
            ):
                if pixel_class[row, col] != 0:
                    continue  # no sensor: these photons are lost, not moved
                share_x = _spot_fraction(x[s], sigma[s], col)
                expected[row, col] += np.float32(photons[s] * share_x * share_y)


@numba.njit
def _redraw_windows(
    out,
    background,
    spot_expected,
    pixel_class,
    x,
    y,
    half_width,
    key,
    saturation,
    error,
    use_poisson,
):  # type: ignore[no-untyped-def]
    """Noise-bank mode: fresh draws inside spot windows, then clear the spot scratch there."""
    height, width = out.shape
    for s in range(x.shape[0]):
        col_centre = math.floor(x[s])
        row_centre = math.floor(y[s])
        half = half_width[s]
        for row in range(
            _clamp(row_centre - half, 0, height), _clamp(row_centre + half + 1, 0, height)
        ):
            for col in range(
                _clamp(col_centre - half, 0, width), _clamp(col_centre + half + 1, 0, width)
            ):
                pixel = np.uint64(row * width + col)
                mean = background[row, col] + spot_expected[row, col]
                out[row, col] = _pixel_value(
                    mean, pixel_class[row, col], key, pixel, saturation, error, use_poisson
                )
    for s in range(x.shape[0]):
        col_centre = math.floor(x[s])
        row_centre = math.floor(y[s])
        half = half_width[s]
        for row in range(
            _clamp(row_centre - half, 0, height), _clamp(row_centre + half + 1, 0, height)
        ):
            for col in range(
                _clamp(col_centre - half, 0, width), _clamp(col_centre + half + 1, 0, width)
            ):
                spot_expected[row, col] = 0.0


class PreparedCpu:
    """Scratch buffers and (optionally) the noise bank for one plan."""

    def __init__(self, plan: FramePlan, options: CpuOptions) -> None:
        self.plan = plan
        self.options = options
        self.expected = np.empty(plan.shape, dtype=np.float32)
        self.bank: list[np.ndarray] = []
        if options.noise_bank_frames > 0:
            self.spot_scratch = np.zeros(plan.shape, dtype=np.float32)
            for j in range(options.noise_bank_frames):
                frame = np.empty(plan.shape, dtype=plan.image_dtype)
                _finish(plan, plan.background_photons, frame, NOISE_BANK_KEY_OFFSET + j)
                self.bank.append(frame)


def _finish(plan: FramePlan, expected: np.ndarray, out: np.ndarray, key_image_id: int) -> None:
    _finish_frame(
        expected,
        plan.pixel_class,
        out,
        frame_key(plan.seed, key_image_id),
        plan.saturation_value,
        plan.error_value,
        plan.poisson_noise,
    )


def _spot_arrays(spots: SpotList) -> tuple[np.ndarray, ...]:
    return (
        np.ascontiguousarray(spots.x_pxl, dtype=np.float64),
        np.ascontiguousarray(spots.y_pxl, dtype=np.float64),
        np.ascontiguousarray(spots.sigma_pxl, dtype=np.float64),
        np.ascontiguousarray(spots.photons, dtype=np.float64),
        spots.window_half_width_pxl(),
    )


def prepare(plan: FramePlan, options: CpuOptions | None = None) -> PreparedCpu:
    """Allocate buffers (and draw the noise bank) for rendering frames of ``plan``."""
    return PreparedCpu(plan, options or CpuOptions())


def expectation(prepared: PreparedCpu, spots: SpotList) -> np.ndarray:
    """The noiseless expected photons of a frame, float32 ``[H, W]`` (a new array)."""
    expected = prepared.plan.background_photons.copy()
    _add_spots(expected, prepared.plan.pixel_class, *_spot_arrays(spots))
    return expected


def run(prepared: PreparedCpu, spots: SpotList, image_id: int) -> np.ndarray:
    """Render frame ``image_id``: pixels of the detector type, ``[H, W]`` (a new array)."""
    plan = prepared.plan
    x, y, sigma, photons, half = _spot_arrays(spots)
    if prepared.bank:
        out = prepared.bank[image_id % len(prepared.bank)].copy()
        _add_spots(prepared.spot_scratch, plan.pixel_class, x, y, sigma, photons, half)
        _redraw_windows(
            out,
            plan.background_photons,
            prepared.spot_scratch,
            plan.pixel_class,
            x,
            y,
            half,
            frame_key(plan.seed, image_id),
            plan.saturation_value,
            plan.error_value,
            plan.poisson_noise,
        )
        return out
    np.copyto(prepared.expected, plan.background_photons)
    _add_spots(prepared.expected, plan.pixel_class, x, y, sigma, photons, half)
    out = np.empty(plan.shape, dtype=plan.image_dtype)
    _finish(plan, prepared.expected, out, image_id)
    return out
