"""Everything fixed for one run: maps, bins, ROI footprints and the resolved settings.

An :class:`AnalysisPlan` is built once per run (:func:`analysis_plan`) and shared, read-only,
by every image and every engine. Building it costs about a second for a JUNGFRAU 4M; a
Dask worker builds its own from the master file and the settings (cheaper than shipping
~100 MB of maps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from jfsim.analysis.azimuthal import AzimuthalPlan, azimuthal_plan
from jfsim.analysis.geometry import PixelMaps, pixel_maps
from jfsim.analysis.indexing.indexer import IndexingPlan, indexing_plan
from jfsim.analysis.integration import IntegrationPlan, integration_plan
from jfsim.analysis.nxmx_run import NxmxRun
from jfsim.analysis.pixel_statistics import BKG_BAND, SENSITIVE, pixel_classes
from jfsim.analysis.roi import RoiPlan, roi_plan
from jfsim.analysis.settings import ProcessSettings
from jfsim.analysis.spot_finding import SpotFindingPlan, spot_finding_plan

__all__ = ["AnalysisPlan", "analysis_plan"]


@dataclass(frozen=True)
class AnalysisPlan:
    """Per-run constants of the analysis.

    Attributes:
        run: the input run (geometry, sentinels, image blocks).
        settings: the validated settings.
        maps: per-pixel geometry.
        pixel_class: uint8 ``[H, W]`` (``SENSITIVE``, ``BKG_BAND`` bits).
        spots, azimuthal, rois: each analysis's plan.
        indexing: the indexing plan, None when indexing is off (``-X none``).
        integration: prediction and summation integration of indexed lattices.
    """

    run: NxmxRun
    settings: ProcessSettings
    maps: PixelMaps
    pixel_class: npt.NDArray[np.uint8]
    spots: SpotFindingPlan
    azimuthal: AzimuthalPlan
    rois: RoiPlan
    integration: IntegrationPlan
    sensitive_pixels: int
    band_pixels: int
    indexing: IndexingPlan | None = None

    @property
    def error_value(self) -> int:
        return self.run.error_value

    @property
    def saturation_value(self) -> int:
        return self.run.saturation_value

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.run.image_shape


def analysis_plan(run: NxmxRun, settings: ProcessSettings) -> AnalysisPlan:
    """Resolve ``settings`` against ``run``'s geometry (``SettingsError`` if they do not fit)."""
    maps = pixel_maps(run.geometry)
    classes = pixel_classes(run.valid_pixels, maps)
    sensitive = run.valid_pixels
    return AnalysisPlan(
        run=run,
        settings=settings,
        maps=maps,
        pixel_class=classes,
        spots=spot_finding_plan(settings.spot_finding, maps, max_spots=settings.max_spots),
        azimuthal=azimuthal_plan(settings.azim_int, maps, sensitive, run.geometry.wavelength_A),
        rois=roi_plan(settings.roi, maps, sensitive),
        integration=integration_plan(
            run,
            settings.integration,
            space_group=settings.space_group(),
            max_hkl=settings.bragg_integration.max_hkl or 100,
        ),
        sensitive_pixels=int(np.count_nonzero(classes & SENSITIVE)),
        band_pixels=int(np.count_nonzero(classes & BKG_BAND)),
        indexing=indexing_plan(
            settings.indexing,
            run.geometry,
            space_group_number=settings.space_group_number,
            enabled=bool(settings.spot_finding.indexing),
        ),
    )
