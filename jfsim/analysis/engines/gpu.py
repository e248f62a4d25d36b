"""The GPU engine: numba.cuda kernels, the twin of the CPU engine.

One CUDA thread per pixel runs :mod:`jfsim.analysis.pixel_pass`'s ``visit_pixel`` (the
per-pixel functions of every analysis, compiled as device functions with atomic
accumulation) on the non-zero pixels; one thread per spot candidate runs ``strong_mean``,
the same function the CPU engine calls. Accumulators are integers, so the order of the
atomics does not matter and the results equal the CPU engine's; only the candidate list
comes back unordered and is sorted (row-major) before the strong pixels are grouped.
Tested against the CPU engine under ``NUMBA_ENABLE_CUDASIM=1``.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import cuda  # module level: the CUDA simulator patches this global

from jfsim.analysis.azimuthal import AZ_LOST
from jfsim.analysis.engines import EngineOutput
from jfsim.analysis.pixel_statistics import new_statistics_accumulator
from jfsim.analysis.plan import AnalysisPlan
from jfsim.analysis.roi import new_roi_accumulator
from jfsim.engines import cuda_probe

__all__ = ["NAME", "GpuOptions", "PreparedGpu", "prepare", "probe", "run"]

NAME = "gpu"


@dataclass(frozen=True, slots=True)
class GpuOptions:
    """Threads per block of the pixel and candidate kernels; ``max_candidates`` as the CPU
    engine's (None = the plan's)."""

    threads_per_block: int = 256
    max_candidates: int | None = None


def probe() -> str | None:
    """None when a CUDA device (or the numba CUDA simulator) is usable, else the reason."""
    return cuda_probe()


@functools.cache
def _kernels() -> dict[str, Any]:
    """Compile the kernels on first use (CUDA compilation is slow; CPU-only runs skip it)."""
    from jfsim.analysis.pixel_pass import build_pixel_pass
    from jfsim.analysis.primitives import gpu_primitives

    functions = build_pixel_pass(gpu_primitives())
    visit_pixel = functions.visit_pixel
    strong_mean = functions.strong_mean

    @cuda.jit
    def pixel_pass(  # type: ignore[no-untyped-def]
        frame,
        pixel_class,
        bin_map,
        correction,
        roi_map,
        has_rois,
        width,
        error,
        saturation,
        threshold,
        skip_zero,
        stats,
        azimuthal,
        lost_correction,
        rois,
        candidates,
        counter,
    ):
        index = cuda.grid(1)
        if index >= frame.shape[0]:
            return
        value = frame[index]
        if value == 0 and skip_zero:
            return
        visit_pixel(
            index,
            value,
            pixel_class,
            bin_map,
            correction,
            roi_map,
            has_rois,
            width,
            error,
            saturation,
            threshold,
            stats,
            azimuthal,
            lost_correction,
            rois,
            candidates,
            counter,
        )

    @cuda.jit
    def test_candidates(  # type: ignore[no-untyped-def]
        frame,
        pixel_class,
        candidates,
        n_candidates,
        half,
        error,
        saturation,
        nsigma,
        min_count,
        means,
    ):
        k = cuda.grid(1)
        if k >= n_candidates:
            return
        width = frame.shape[1]
        index = candidates[k]
        means[k] = strong_mean(
            frame,
            pixel_class,
            index // width,
            index % width,
            half,
            error,
            saturation,
            nsigma,
            min_count,
        )

    return dict(cuda=cuda, pixel_pass=pixel_pass, test_candidates=test_candidates)


class PreparedGpu:
    """Device copies of the plan's maps (one per thread)."""

    def __init__(self, plan: AnalysisPlan, options: GpuOptions) -> None:
        kernels = _kernels()
        cuda = kernels["cuda"]
        self.plan = plan
        self.options = options
        self.kernels = kernels
        self.pixel_class = cuda.to_device(np.ascontiguousarray(plan.pixel_class))
        self.pixel_class_flat = self.pixel_class.reshape(plan.pixel_class.size)
        self.bin_map = cuda.to_device(np.ascontiguousarray(plan.azimuthal.bin_map).reshape(-1))
        self.correction = cuda.to_device(
            np.ascontiguousarray(plan.azimuthal.correction).reshape(-1)
        )
        self.roi_map = cuda.to_device(np.ascontiguousarray(plan.rois.roi_map).reshape(-1))
        self.capacity = options.max_candidates or plan.spots.max_candidates
        self.candidates = cuda.device_array(self.capacity, dtype=np.int64)
        self.skip_zero = plan.error_value != 0 and plan.saturation_value > 0

    def blocks(self, n_threads: int) -> int:
        return max(1, math.ceil(n_threads / self.options.threads_per_block))


def prepare(plan: AnalysisPlan, options: GpuOptions | None = None) -> PreparedGpu:
    """Upload the plan and compile the kernels (call ``probe()`` first)."""
    return PreparedGpu(plan, options or GpuOptions())


def run(prepared: PreparedGpu, pixels: npt.NDArray[Any]) -> EngineOutput:
    """The accumulators and strong pixels of one frame ``[H, W]`` of the run's type."""
    kernels = prepared.kernels
    cuda = kernels["cuda"]
    plan = prepared.plan
    spot = plan.spots
    threads = prepared.options.threads_per_block
    frame_host = np.ascontiguousarray(pixels)
    started = time.perf_counter()
    frame = cuda.to_device(frame_host)
    stats = cuda.to_device(new_statistics_accumulator())
    azimuthal = cuda.to_device(np.zeros((plan.azimuthal.n_bins, AZ_LOST + 1), dtype=np.int64))
    lost_correction = cuda.to_device(np.zeros(plan.azimuthal.n_bins, dtype=np.float64))
    rois = cuda.to_device(new_roi_accumulator(plan.rois.n_rois))
    counter = cuda.to_device(np.zeros(1, dtype=np.int64))
    n_pixels = frame_host.size
    kernels["pixel_pass"][prepared.blocks(n_pixels), threads](
        frame.reshape(n_pixels),
        prepared.pixel_class_flat,
        prepared.bin_map,
        prepared.correction,
        prepared.roi_map,
        plan.rois.n_rois > 0,
        plan.image_shape[1],
        plan.error_value,
        plan.saturation_value,
        spot.photon_count_threshold,
        prepared.skip_zero,
        stats,
        azimuthal,
        lost_correction,
        rois,
        prepared.candidates,
        counter,
    )
    n_found = int(counter.copy_to_host()[0])
    n_candidates = min(n_found, prepared.capacity)
    candidates = np.sort(prepared.candidates.copy_to_host()[:n_candidates])
    passed = time.perf_counter()
    means = np.full(n_candidates, np.nan)
    if n_candidates:
        device_means = cuda.device_array(n_candidates, dtype=np.float64)
        kernels["test_candidates"][prepared.blocks(n_candidates), threads](
            frame,
            prepared.pixel_class,
            cuda.to_device(candidates),
            n_candidates,
            spot.window_half_pxl,
            plan.error_value,
            plan.saturation_value,
            spot.signal_to_noise_threshold,
            spot.min_window_pixels,
            device_means,
        )
        means = device_means.copy_to_host()
    strong = ~np.isnan(means)
    rows, cols = np.divmod(candidates[strong], plan.image_shape[1])
    excess = frame_host[rows, cols].astype(np.float64) - means[strong]
    return EngineOutput(
        stats=stats.copy_to_host(),
        azimuthal=azimuthal.copy_to_host(),
        lost_correction=lost_correction.copy_to_host(),
        rois=rois.copy_to_host()[: plan.rois.n_rois],
        strong_rows=rows.astype(np.int64),
        strong_cols=cols.astype(np.int64),
        strong_excess=excess,
        candidates=n_found,
        truncated=n_found > prepared.capacity,
        pixel_pass_s=passed - started,
        spot_finding_s=time.perf_counter() - passed,
    )
