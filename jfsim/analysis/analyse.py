"""The front of the analysis: pick an engine, turn a frame into an :class:`ImageAnalysis`.

``ImageAnalyser(plan, device=...)`` prepares one engine (``cpu``, ``gpu`` — which fails
with ``EngineUnavailable`` without a CUDA device — or ``auto``: the GPU when usable, else
the CPU with one INFO line) and analyses frames with it. The engine computes accumulators
and strong pixels; grouping, filters and final numbers are shared code, so results differ
between engines only where their accumulators do (they do not: all are integers). One
analyser per thread: the prepared engine holds scratch buffers.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import numpy.typing as npt

from jfsim import engines
from jfsim.analysis.azimuthal import azimuthal_profile_from
from jfsim.analysis.bragg_prediction import ImageLattice
from jfsim.analysis.engines import cpu, gpu
from jfsim.analysis.errors import FrameError
from jfsim.analysis.indexing.indexer import ImageIndexer
from jfsim.analysis.indexing.solution import ImageIndexing
from jfsim.analysis.integration import ImageIntegration, integrate_image
from jfsim.analysis.pixel_statistics import statistics_from_counts
from jfsim.analysis.plan import AnalysisPlan
from jfsim.analysis.result import ImageAnalysis, ImageTiming
from jfsim.analysis.roi import roi_results_from
from jfsim.analysis.spot_finding import spots_from

__all__ = ["DEVICES", "ImageAnalyser", "select_engine"]

#: Allowed values of ``device`` / ``--device``.
DEVICES = engines.DEVICES
_ENGINES: dict[str, ModuleType] = {cpu.NAME: cpu, gpu.NAME: gpu}


def select_engine(device: str) -> ModuleType:
    """The analysis engine for ``device`` (:func:`jfsim.engines.select_engine`)."""
    return engines.select_engine(device, _ENGINES)


class ImageAnalyser:
    """One prepared engine for ``plan``: frames in, :class:`ImageAnalysis` out."""

    def __init__(self, plan: AnalysisPlan, *, device: str = "auto", options: Any = None) -> None:
        self.plan = plan
        self.engine = select_engine(device)
        self._prepared = self.engine.prepare(plan, options)
        self.indexer = (
            None if plan.indexing is None else ImageIndexer(plan.indexing, device=self.engine_name)
        )

    @property
    def engine_name(self) -> str:
        return str(self.engine.NAME)

    def analyse(
        self,
        position: int,
        pixels: npt.NDArray[Any],
        *,
        preprocessing_s: float = 0.0,
        image_number: int | None = None,
    ) -> ImageAnalysis:
        """Analyse one frame ``[H, W]`` (the run's pixel type) at row ``position``;
        ``preprocessing_s`` is what reading and decoding it cost, for the profile;
        ``image_number`` is the frame's number in the run (its goniometer angle; default
        ``position``)."""
        plan = self.plan
        if pixels.shape != plan.image_shape:
            raise FrameError(
                f"image {position}: frame is {pixels.shape}, the run's images are "
                f"{plan.image_shape}"
            )
        started = time.perf_counter()
        output = self.engine.run(self._prepared, pixels)
        grouping = time.perf_counter()
        spots = spots_from(plan.spots, output.strong_rows, output.strong_cols, output.strong_excess)
        spot_finding_s = output.spot_finding_s + time.perf_counter() - grouping
        azimuthal = azimuthal_profile_from(plan.azimuthal, output.azimuthal, output.lost_correction)
        rois = roi_results_from(plan.rois, output.rois)
        pixel_statistics = statistics_from_counts(
            output.stats, plan.sensitive_pixels, plan.band_pixels
        )
        number = position if image_number is None else image_number
        indexing = None if self.indexer is None else self.indexer.index(spots, number)
        integrating = time.perf_counter()
        integration = self._integrate(pixels, number, indexing)
        integration_s = time.perf_counter() - integrating
        return ImageAnalysis(
            position=position,
            engine=self.engine_name,
            spots=spots,
            azimuthal=azimuthal,
            rois=rois,
            pixels=pixel_statistics,
            timing=ImageTiming(
                preprocessing_s=preprocessing_s,
                pixel_pass_s=output.pixel_pass_s,
                spot_finding_s=spot_finding_s,
                integration_s=integration_s,
                processing_s=preprocessing_s + time.perf_counter() - started,
            ),
            candidates_truncated=output.truncated,
            indexing=indexing,
            integration=integration,
        )

    def _integrate(
        self, pixels: npt.NDArray[Any], image_number: int, indexing: ImageIndexing | None
    ) -> ImageIntegration | None:
        """Integration of the image's indexed lattice (None when it did not index)."""
        if indexing is None or not indexing.indexed or indexing.lattice is None:
            return None
        lattices = (ImageLattice(indexing.lattice.reciprocal_invA),)
        reflections = integrate_image(
            pixels, self.plan.integration, image_number, lattices, device=self.engine_name
        )
        return ImageIntegration(lattices, reflections)
