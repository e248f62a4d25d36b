"""Summation integration of predicted reflections (analysis.md §4; seed 003
``--integration-radius``).

For each reflection predicted on an image (:mod:`jfsim.analysis.bragg_prediction`), the
pixels whose centres lie within r1 of the predicted centre are the signal disc, those with
r2 < distance ≤ r3 the background annulus. With n signal pixels, m background pixels of
mean ⟨b⟩ and variance var(b):

    I = Σ signal − n·⟨b⟩,        σ²(I) = Σ signal + n²·var(b)/m

and the observed position is the background-subtracted centroid of the disc. Only viable
pixels count (sensitive in the pixel mask, neither the error value nor saturated). A
reflection whose disc holds any other pixel (a gap, a masked or saturated pixel, the
image edge) or whose annulus has fewer than :data:`MIN_BACKGROUND_PIXELS` viable pixels is
not integrated: its intensity would be wrong, not just noisy.

Engines: the per-reflection sums are written once (:func:`build_integration_functions`)
and compiled by ``numba.njit`` (CPU: a loop over reflections, ``nogil``) or
``numba.cuda.jit`` (GPU: one thread per reflection). They are integer sums, turned into
intensities by shared code, so both engines give identical results.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gemmi
import numba
import numpy as np
import numpy.typing as npt
from numba import cuda  # module level: the CUDA simulator patches this global

from jfsim.analysis.bragg_prediction import BraggPrediction, ImageLattice, PredictedReflections
from jfsim.analysis.errors import FrameError
from jfsim.analysis.nxmx_run import NxmxRun
from jfsim.analysis.reflection_settings import IntegrationSettings
from jfsim.analysis.reflections import IntegratedReflections

__all__ = [
    "INTEGRATION_DEVICES",
    "MIN_BACKGROUND_PIXELS",
    "ImageIntegration",
    "IntegrationPlan",
    "build_integration_functions",
    "integrate_image",
    "integration_plan",
]

#: Fewest viable background pixels for which a reflection is integrated.
MIN_BACKGROUND_PIXELS = 8
#: Engines of :func:`integrate_image`.
INTEGRATION_DEVICES = ("cpu", "gpu")

# Columns of the per-reflection integer accumulator.
ACC_SIGNAL_PIXELS = 0
ACC_SIGNAL_SUM = 1
ACC_BACKGROUND_PIXELS = 2
ACC_BACKGROUND_SUM = 3
ACC_BACKGROUND_SUM_SQ = 4
ACC_SIGNAL_COLS = 5  # Σ column index over the disc
ACC_SIGNAL_ROWS = 6
ACC_SIGNAL_VALUE_COLS = 7  # Σ value·column over the disc
ACC_SIGNAL_VALUE_ROWS = 8
ACC_SIGNAL_LOST = 9  # disc pixels that are not viable (or outside the image)
N_ACC = 10


@dataclass(frozen=True)
class IntegrationPlan:
    """Everything fixed for the integration of one run's images.

    Attributes:
        prediction: predicts each lattice's reflections from the file's geometry.
        sensitive: uint8 ``[H, W]``, 1 where the pixel mask allows signal.
        error_value, saturation_value: the run's pixel sentinels.
        settings: radii and defaults.
    """

    prediction: BraggPrediction
    sensitive: npt.NDArray[np.uint8]
    error_value: int
    saturation_value: int
    settings: IntegrationSettings

    @property
    def radii_pxl(self) -> tuple[float, float, float]:
        s = self.settings
        return s.signal_radius_pxl, s.background_inner_radius_pxl, s.background_outer_radius_pxl


@dataclass(frozen=True, slots=True)
class ImageIntegration:
    """What integration did on one image (the per-image result's ``integration``).

    Attributes:
        lattices: the lattices predicted with (their cells give the run's merging cell).
        reflections: :func:`integrate_image` of them (``image`` = the run's image number).
    """

    lattices: tuple[ImageLattice, ...]
    reflections: IntegratedReflections


def integration_plan(
    run: NxmxRun,
    settings: IntegrationSettings,
    *,
    space_group: gemmi.SpaceGroup | None = None,
    max_hkl: int = 100,
) -> IntegrationPlan:
    """The plan for ``run`` (``space_group``: its absences are not predicted)."""
    prediction = BraggPrediction(
        run.geometry,
        space_group=space_group,
        d_min_A=settings.high_resolution_limit_A,
        max_hkl=max_hkl,
        mosaicity_deg=settings.mosaicity_deg,
        profile_radius_invA=settings.profile_radius_invA,
    )
    return IntegrationPlan(
        prediction=prediction,
        sensitive=np.ascontiguousarray(run.valid_pixels, dtype=np.uint8),
        error_value=run.error_value,
        saturation_value=run.saturation_value,
        settings=settings,
    )


def integrate_image(
    pixels: npt.NDArray[Any],
    plan: IntegrationPlan,
    image: int,
    lattices: Sequence[ImageLattice],
    *,
    device: str = "cpu",
) -> IntegratedReflections:
    """Predict and integrate the reflections of every lattice on run image ``image``.

    Args:
        pixels: the frame ``[H, W]`` in the run's pixel type.
        plan: the run's :func:`integration_plan`.
        image: the image's number in the run (0-based; its scan angle for rotation data).
        lattices: what indexing found on this image (none: an empty table).
        device: ``cpu`` or ``gpu`` (the engine of the per-reflection sums).

    Returns:
        One row per reflection integrated, ``image`` in the ``image`` column.
    """
    if pixels.shape != plan.sensitive.shape:
        raise FrameError(
            f"image {image}: frame is {pixels.shape}, the run's images are {plan.sensitive.shape}"
        )
    tables = []
    for lattice in lattices:
        predicted = plan.prediction.predict(image, lattice)
        accumulators = sum_pixels(pixels, plan, predicted.x_pxl, predicted.y_pxl, device=device)
        tables.append(_reflections(predicted, accumulators, image, lattice.lattice))
    return IntegratedReflections.concatenate(tables)


def sum_pixels(
    pixels: npt.NDArray[Any],
    plan: IntegrationPlan,
    x_pxl: npt.NDArray[np.float64],
    y_pxl: npt.NDArray[np.float64],
    *,
    device: str = "cpu",
) -> npt.NDArray[np.int64]:
    """The integer accumulators ``[n, N_ACC]`` of reflections centred at (x, y) (index
    coordinates) on one frame, computed by the ``device`` engine."""
    r1, r2, r3 = plan.radii_pxl
    n = x_pxl.shape[0]
    accumulators = np.zeros((n, N_ACC), dtype=np.int64)
    if n == 0:
        return accumulators
    frame = np.ascontiguousarray(pixels)
    arguments = (
        np.ascontiguousarray(x_pxl, dtype=np.float64),
        np.ascontiguousarray(y_pxl, dtype=np.float64),
        r1 * r1,
        r2 * r2,
        r3 * r3,
        r3,
        np.int64(plan.error_value),
        np.int64(plan.saturation_value),
    )
    if device == "cpu":
        _sum_all_cpu(frame, plan.sensitive, *arguments, accumulators)  # returns a dummy
    elif device == "gpu":
        _sum_all_gpu(frame, plan.sensitive, arguments, accumulators)
    else:
        raise ValueError(f"device {device!r}: use one of {', '.join(INTEGRATION_DEVICES)}")
    return accumulators


def _reflections(
    predicted: PredictedReflections,
    acc: npt.NDArray[np.int64],
    image: int,
    lattice: int,
) -> IntegratedReflections:
    """Intensities from the accumulators; reflections that cannot be integrated dropped."""
    rows = np.empty(acc.shape[0], dtype=np.int64)
    values = np.empty((5, acc.shape[0]), dtype=np.float64)
    count = _intensities(acc, MIN_BACKGROUND_PIXELS, rows, values)
    rows = rows[:count]
    intensity, sigma, background, observed_x, observed_y = (v[:count].copy() for v in values)
    hkl = predicted.hkl[rows]
    return IntegratedReflections(
        image=np.full(count, image, dtype=np.int64),
        lattice=np.full(count, lattice, dtype=np.int32),
        h=hkl[:, 0].copy(),
        k=hkl[:, 1].copy(),
        l=hkl[:, 2].copy(),
        d_A=predicted.d_A[rows],
        intensity_photons=intensity,
        sigma_photons=sigma,
        background_photons=background,
        predicted_x_pxl=predicted.x_pxl[rows],
        predicted_y_pxl=predicted.y_pxl[rows],
        observed_x_pxl=observed_x,
        observed_y_pxl=observed_y,
        phi_deg=predicted.phi_deg[rows],
        delta_phi_deg=predicted.delta_phi_deg[rows],
        zeta=predicted.zeta[rows],
        lp=predicted.lp[rows],
        partiality=predicted.partiality[rows],
        signal_pixels=acc[rows, ACC_SIGNAL_PIXELS].astype(np.int32),
        background_pixels=acc[rows, ACC_BACKGROUND_PIXELS].astype(np.int32),
    )


@numba.njit(nogil=True, cache=True)
def _intensities(acc, min_background_pixels, rows, values):  # type: ignore[no-untyped-def]  # numba kernel
    """The reflections that can be integrated (no lost disc pixel, a signal, enough
    background) and, for each, I, σ(I), ⟨b⟩ and the observed x, y (the module doc's
    formulas; NaN where I ≤ 0), in one pass (numpy's two dozen array operations cost more
    than the sums). Writes their rows to ``rows`` and the five values to ``values``;
    returns how many."""
    count = 0
    for i in range(acc.shape[0]):
        signal_pixels = acc[i, ACC_SIGNAL_PIXELS]
        if acc[i, ACC_SIGNAL_LOST] != 0 or signal_pixels <= 0:
            continue
        if acc[i, ACC_BACKGROUND_PIXELS] < min_background_pixels:
            continue
        n = float(signal_pixels)
        m = float(acc[i, ACC_BACKGROUND_PIXELS])
        signal = float(acc[i, ACC_SIGNAL_SUM])
        background_sum = float(acc[i, ACC_BACKGROUND_SUM])
        background = background_sum / m
        variance = (float(acc[i, ACC_BACKGROUND_SUM_SQ]) - background_sum * background) / max(
            m - 1.0, 1.0
        )
        variance = max(variance, 0.0)
        intensity = signal - n * background
        rows[count] = i
        values[0, count] = intensity
        values[1, count] = math.sqrt(max(signal, 0.0) + n * n * variance / m)
        values[2, count] = background
        if intensity > 0:
            values[3, count] = (
                float(acc[i, ACC_SIGNAL_VALUE_COLS]) - background * float(acc[i, ACC_SIGNAL_COLS])
            ) / intensity
            values[4, count] = (
                float(acc[i, ACC_SIGNAL_VALUE_ROWS]) - background * float(acc[i, ACC_SIGNAL_ROWS])
            ) / intensity
        else:
            values[3, count] = math.nan
            values[4, count] = math.nan
        count += 1
    return count


# -- the per-reflection sums, written once ------------------------------------------------------
def build_integration_functions(compile_function: Callable[[Callable[..., Any]], Any]) -> Any:
    """``sum_reflection(i, frame, sensitive, xs, ys, r1², r2², r3², r3, error, saturation,
    acc)``: the accumulators of reflection ``i``, compiled by ``compile_function``."""

    def sum_reflection(  # type: ignore[no-untyped-def]  # numba device/host function
        i, frame, sensitive, xs, ys, r1_sq, r2_sq, r3_sq, r3, error, saturation, acc
    ):
        height = frame.shape[0]
        width = frame.shape[1]
        x = xs[i]
        y = ys[i]
        first_row = math.floor(y - r3)
        last_row = math.ceil(y + r3)
        first_col = math.floor(x - r3)
        last_col = math.ceil(x + r3)
        for row in range(first_row, last_row + 1):
            dy = row - y
            for col in range(first_col, last_col + 1):
                dx = col - x
                distance_sq = dx * dx + dy * dy
                in_signal = distance_sq <= r1_sq
                in_background = distance_sq > r2_sq and distance_sq <= r3_sq
                if not (in_signal or in_background):
                    continue
                inside = 0 <= row < height and 0 <= col < width
                viable = False
                value = np.int64(0)
                if inside:
                    value = np.int64(frame[row, col])  # the products below need 64 bits
                    viable = sensitive[row, col] != 0 and value != error and value < saturation
                if in_signal:
                    if not viable:
                        acc[i, ACC_SIGNAL_LOST] += 1
                        continue
                    acc[i, ACC_SIGNAL_PIXELS] += 1
                    acc[i, ACC_SIGNAL_SUM] += value
                    acc[i, ACC_SIGNAL_COLS] += col
                    acc[i, ACC_SIGNAL_ROWS] += row
                    acc[i, ACC_SIGNAL_VALUE_COLS] += value * col
                    acc[i, ACC_SIGNAL_VALUE_ROWS] += value * row
                elif viable:
                    acc[i, ACC_BACKGROUND_PIXELS] += 1
                    acc[i, ACC_BACKGROUND_SUM] += value
                    acc[i, ACC_BACKGROUND_SUM_SQ] += value * value

    return compile_function(sum_reflection)


_sum_reflection_cpu = build_integration_functions(lambda f: numba.njit(inline="always")(f))


@numba.njit(nogil=True)
def _sum_all_cpu(  # type: ignore[no-untyped-def]  # numba kernel
    frame, sensitive, xs, ys, r1_sq, r2_sq, r3_sq, r3, error, saturation, acc
):
    """The reflections one after the other, each with the rows of the next one read ahead
    (:func:`_read_ahead`); returns what the read-ahead read, so that it is not optimised
    away (callers ignore it)."""
    read = 0
    for i in range(xs.shape[0]):
        if i + 1 < xs.shape[0]:
            read += _read_ahead(frame, sensitive, xs[i + 1], ys[i + 1], r3)
        _sum_reflection_cpu(
            i, frame, sensitive, xs, ys, r1_sq, r2_sq, r3_sq, r3, error, saturation, acc
        )
    return read


@numba.njit(inline="always")
def _read_ahead(frame, sensitive, x, y, r3):  # type: ignore[no-untyped-def]  # numba function
    """Read both ends of every row of a reflection's box: loads without branches on their
    values, so the memory system fetches all rows at once while the current reflection is
    summed (the sums' own loads come one row at a time; on a JF4M frame, waiting for them
    was most of the time)."""
    height = frame.shape[0]
    width = frame.shape[1]
    first_col = min(max(math.floor(x - r3), 0), width - 1)
    last_col = min(max(math.ceil(x + r3), 0), width - 1)
    read = 0
    for row in range(max(math.floor(y - r3), 0), min(math.ceil(y + r3), height - 1) + 1):
        read += frame[row, first_col] + frame[row, last_col]
        read += sensitive[row, first_col] + sensitive[row, last_col]
    return read


#: Threads per block of the GPU kernel (one thread per reflection).
_THREADS_PER_BLOCK = 128


@functools.cache
def _gpu_kernel() -> Any:
    """Compile the CUDA kernel on first use."""
    sum_reflection = build_integration_functions(lambda f: cuda.jit(device=True, inline=True)(f))

    @cuda.jit
    def sum_all(  # type: ignore[no-untyped-def]
        frame, sensitive, xs, ys, r1_sq, r2_sq, r3_sq, r3, error, saturation, acc
    ):
        i = cuda.grid(1)
        if i < xs.shape[0]:
            sum_reflection(
                i, frame, sensitive, xs, ys, r1_sq, r2_sq, r3_sq, r3, error, saturation, acc
            )

    return sum_all


def _sum_all_gpu(
    frame: npt.NDArray[Any],
    sensitive: npt.NDArray[np.uint8],
    arguments: tuple[Any, ...],
    accumulators: npt.NDArray[np.int64],
) -> None:
    kernel = _gpu_kernel()
    xs, ys, *scalars = arguments
    device_acc = cuda.to_device(accumulators)
    blocks = (xs.shape[0] + _THREADS_PER_BLOCK - 1) // _THREADS_PER_BLOCK
    kernel[blocks, _THREADS_PER_BLOCK](
        cuda.to_device(frame),
        cuda.to_device(sensitive),
        cuda.to_device(xs),
        cuda.to_device(ys),
        *scalars,
        device_acc,
    )
    device_acc.copy_to_host(accumulators)
