"""The front of the analysis: pick an engine, turn a frame into an :class:`ImageAnalysis`.

``ImageAnalyser(plan, device=...)`` prepares one engine (``cpu``, ``gpu`` — which fails
with ``EngineUnavailable`` without a CUDA device — or ``auto``: the GPU when usable, else
the CPU with one INFO line) and analyses frames with it. The engine computes accumulators
and strong pixels; grouping, filters and final numbers are shared code, so results differ
between engines only where their accumulators do (they do not: all are integers). One
analyser per thread: the prepared engine holds scratch buffers.
"""

from __future__ import annotations

import logging
import time
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from jfsim.analysis.azimuthal import azimuthal_profile_from
from jfsim.analysis.engines import cpu, gpu
from jfsim.analysis.pixel_statistics import statistics_from_counts
from jfsim.analysis.plan import AnalysisPlan
from jfsim.analysis.result import ImageAnalysis, ImageTiming
from jfsim.analysis.roi import roi_results_from
from jfsim.analysis.spot_finding import spots_from
from jfsim.errors import ConfigError, EngineUnavailable

__all__ = ["DEVICES", "ImageAnalyser", "select_engine"]

_log = logging.getLogger(__name__)

#: Allowed values of ``device`` / ``--device``.
DEVICES = ("cpu", "gpu", "auto")
_ENGINES: dict[str, ModuleType] = {cpu.NAME: cpu, gpu.NAME: gpu}


def select_engine(device: str) -> ModuleType:
    """The engine module for ``device``; only ``auto`` falls back."""
    if device not in DEVICES:
        raise ConfigError(f"--device: must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        reason = gpu.probe()
        if reason is None:
            return gpu
        _log.info("device auto: using the CPU engine (gpu: %s)", reason)
        return cpu
    engine = _ENGINES[device]
    reason = engine.probe()
    if reason is not None:
        raise EngineUnavailable(f"{device}: {reason}; use --device cpu (or auto)")
    return engine


class ImageAnalyser:
    """One prepared engine for ``plan``: frames in, :class:`ImageAnalysis` out."""

    def __init__(self, plan: AnalysisPlan, *, device: str = "auto", options: Any = None) -> None:
        self.plan = plan
        self.engine = select_engine(device)
        self._prepared = self.engine.prepare(plan, options)

    @property
    def engine_name(self) -> str:
        return str(self.engine.NAME)

    def analyse(
        self, position: int, pixels: npt.NDArray[Any], *, preprocessing_s: float = 0.0
    ) -> ImageAnalysis:
        """Analyse one frame ``[H, W]`` (the run's pixel type) at row ``position``."""
        plan = self.plan
        if pixels.shape != plan.image_shape:
            raise ValueError(f"frame is {pixels.shape}, the run's images are {plan.image_shape}")
        output = self.engine.run(self._prepared, pixels)
        finishing = time.perf_counter()
        spots = spots_from(plan.spots, output.strong_rows, output.strong_cols, output.strong_excess)
        spot_finding_s = output.spot_finding_s + time.perf_counter() - finishing
        result = ImageAnalysis(
            position=position,
            engine=self.engine_name,
            spots=spots,
            azimuthal=azimuthal_profile_from(
                plan.azimuthal, output.azimuthal, output.lost_correction
            ),
            rois=roi_results_from(plan.rois, output.rois),
            pixels=statistics_from_counts(output.stats, plan.sensitive_pixels, plan.band_pixels),
            timing=ImageTiming(
                preprocessing_s=preprocessing_s,
                pixel_pass_s=output.pixel_pass_s,
                spot_finding_s=spot_finding_s,
                processing_s=preprocessing_s
                + output.pixel_pass_s
                + spot_finding_s
                + (time.perf_counter() - finishing - (spot_finding_s - output.spot_finding_s)),
            ),
            candidates_truncated=output.truncated,
        )
        return result


def frame_as_array(pixels: Any) -> npt.NDArray[Any]:
    """``pixels`` as a C-contiguous numpy array (no copy when it already is one)."""
    return np.ascontiguousarray(pixels)
