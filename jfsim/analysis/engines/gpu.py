"""The GPU engine: numba.cuda kernels, the twin of the CPU engine.

One CUDA thread per pixel runs :mod:`jfsim.analysis.pixel_pass`'s ``visit_pixel`` (the
per-pixel functions of every analysis, compiled as device functions with atomic
accumulation) on the non-zero pixels; one thread per spot candidate runs ``strong_mean``,
the same function the CPU engine calls. Accumulators are integers, so the order of the
atomics does not matter and the results equal the CPU engine's; only the candidate list
comes back unordered and is sorted (row-major) before the strong pixels are grouped.
Tested against the CPU engine under ``NUMBA_ENABLE_CUDASIM=1``.

Every viable pixel updates the same five statistics slots, and every ROI pixel its ROI's
row: as global atomics those serialise millions of threads on a few addresses (measured
on an H200: a JF4M frame's pass took longer than one CPU core's). Each block therefore
accumulates them in shared memory and adds its totals to the frame's once. The frame and
the accumulators live in device buffers made once per thread, not once per frame.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from numba import cuda  # module level: the CUDA simulator patches this global

from jfsim.analysis.azimuthal import AZ_LOST
from jfsim.analysis.engines import EngineOutput
from jfsim.analysis.pixel_statistics import (
    N_STATS,
    STAT_MAX,
    STAT_MIN,
    new_statistics_accumulator,
)
from jfsim.analysis.plan import AnalysisPlan
from jfsim.analysis.roi import N_ROI_FIELDS, ROI_MAX, new_roi_accumulator
from jfsim.analysis.settings import MAX_ROIS
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
        stats_start,
        roi_start,
    ):
        block_stats = cuda.shared.array(N_STATS, numba.int64)
        block_rois = cuda.shared.array((MAX_ROIS, N_ROI_FIELDS), numba.int64)
        thread, n_threads = cuda.threadIdx.x, cuda.blockDim.x
        for slot in range(thread, N_STATS, n_threads):
            block_stats[slot] = stats_start[slot]
        for slot in range(thread, MAX_ROIS * N_ROI_FIELDS, n_threads):
            row, field = slot // N_ROI_FIELDS, slot % N_ROI_FIELDS
            block_rois[row, field] = roi_start[field]
        cuda.syncthreads()
        index = cuda.grid(1)
        if index < frame.shape[0]:
            value = frame[index]
            if value != 0 or not skip_zero:
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
                    block_stats,
                    azimuthal,
                    lost_correction,
                    block_rois,
                    candidates,
                    counter,
                )
        cuda.syncthreads()
        for slot in range(thread, N_STATS, n_threads):
            if slot == STAT_MIN:
                cuda.atomic.min(stats, slot, block_stats[slot])
            elif slot == STAT_MAX:
                cuda.atomic.max(stats, slot, block_stats[slot])
            else:
                cuda.atomic.add(stats, slot, block_stats[slot])
        if has_rois:
            for slot in range(thread, rois.shape[0] * N_ROI_FIELDS, n_threads):
                row, field = slot // N_ROI_FIELDS, slot % N_ROI_FIELDS
                if field == ROI_MAX:
                    cuda.atomic.max(rois, (row, field), block_rois[row, field])
                else:
                    cuda.atomic.add(rois, (row, field), block_rois[row, field])

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
        n_bins = plan.azimuthal.n_bins
        #: Each accumulator's starting value, copied into its device buffer before a frame.
        self.fresh = (
            new_statistics_accumulator(),
            np.zeros((n_bins, AZ_LOST + 1), dtype=np.int64),
            np.zeros(n_bins, dtype=np.float64),
            new_roi_accumulator(plan.rois.n_rois),
            np.zeros(1, dtype=np.int64),
        )
        self.stats, self.azimuthal, self.lost_correction, self.rois, self.counter = (
            cuda.device_array_like(fresh) for fresh in self.fresh
        )
        #: The starting values of a block's shared statistics and of each of its ROI rows
        #: (the frame's accumulators themselves are being added to by other blocks).
        self.stats_start = cuda.to_device(self.fresh[0])
        self.roi_start = cuda.to_device(self.fresh[3][0])
        self.frame: Any = None  # made at the first frame, in the frames' type
        #: This thread's queue of GPU work: threads sharing the legacy default stream would
        #: wait for each other's copies and kernels.
        self.stream = cuda.stream()

    def upload(self, frame: npt.NDArray[Any]) -> Any:
        """The frame in its device buffer, the accumulators reset."""
        if self.frame is None or self.frame.shape != frame.shape or self.frame.dtype != frame.dtype:
            self.frame = self.kernels["cuda"].device_array_like(frame, stream=self.stream)
        self.frame.copy_to_device(frame, stream=self.stream)
        buffers = (self.stats, self.azimuthal, self.lost_correction, self.rois, self.counter)
        for buffer, fresh in zip(buffers, self.fresh, strict=True):
            buffer.copy_to_device(fresh, stream=self.stream)
        return self.frame

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
    stream = prepared.stream
    frame_host = np.ascontiguousarray(pixels)
    started = time.perf_counter()
    frame = prepared.upload(frame_host)
    stats, azimuthal, rois = prepared.stats, prepared.azimuthal, prepared.rois
    lost_correction, counter = prepared.lost_correction, prepared.counter
    n_pixels = frame_host.size
    kernels["pixel_pass"][prepared.blocks(n_pixels), threads, stream](
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
        prepared.stats_start,
        prepared.roi_start,
    )
    n_found = int(counter.copy_to_host(stream=stream)[0])
    n_candidates = min(n_found, prepared.capacity)
    candidates = prepared.candidates[:n_candidates].copy_to_host(stream=stream)
    stream.synchronize()
    candidates = np.sort(candidates)
    passed = time.perf_counter()
    means = np.full(n_candidates, np.nan)
    if n_candidates:
        device_means = cuda.device_array(n_candidates, dtype=np.float64, stream=stream)
        kernels["test_candidates"][prepared.blocks(n_candidates), threads, stream](
            frame,
            prepared.pixel_class,
            cuda.to_device(candidates, stream=stream),
            n_candidates,
            spot.window_half_pxl,
            plan.error_value,
            plan.saturation_value,
            spot.signal_to_noise_threshold,
            spot.min_window_pixels,
            device_means,
        )
        means = device_means.copy_to_host(stream=stream)
    stats_host = stats.copy_to_host(stream=stream)
    azimuthal_host = azimuthal.copy_to_host(stream=stream)
    lost_correction_host = lost_correction.copy_to_host(stream=stream)
    rois_host = rois.copy_to_host(stream=stream)[: plan.rois.n_rois]
    stream.synchronize()
    strong = ~np.isnan(means)
    rows, cols = np.divmod(candidates[strong], plan.image_shape[1])
    excess = frame_host[rows, cols].astype(np.float64) - means[strong]
    return EngineOutput(
        stats=stats_host,
        azimuthal=azimuthal_host,
        lost_correction=lost_correction_host,
        rois=rois_host,
        strong_rows=rows.astype(np.int64),
        strong_cols=cols.astype(np.int64),
        strong_excess=excess,
        candidates=n_found,
        truncated=n_found > prepared.capacity,
        pixel_pass_s=passed - started,
        spot_finding_s=time.perf_counter() - passed,
    )
