"""What the analysis says about one image, and about a whole run.

:class:`ImageAnalysis` is the per-image result every engine leads to; it names the engine
that computed it. Each analysis step has its own field beside ``spots`` (``indexing``, and
the integration's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jfsim.analysis.azimuthal import AzimuthalProfile
from jfsim.analysis.indexing.solution import ImageIndexing
from jfsim.analysis.integration import ImageIntegration
from jfsim.analysis.pixel_statistics import PixelStatistics
from jfsim.analysis.roi import RoiResult
from jfsim.analysis.spot_finding import Spots

__all__ = ["ImageAnalysis", "ImageTiming", "SkippedImage"]


@dataclass(frozen=True, slots=True)
class ImageTiming:
    """Seconds spent on one image (seed 001 §4.6): ``preprocessing_s`` reading and
    decompressing, ``pixel_pass_s`` the pass over all pixels (azimuthal integration, ROIs,
    statistics, spot candidates), ``spot_finding_s`` the candidates' windows, grouping and
    filters, ``integration_s`` prediction and integration, ``processing_s`` all of it."""

    preprocessing_s: float = 0.0
    pixel_pass_s: float = 0.0
    spot_finding_s: float = 0.0
    integration_s: float = 0.0
    processing_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ImageAnalysis:
    """One image's results.

    Attributes:
        position: the image's row in the analysed run (0-based).
        engine: ``cpu`` or ``gpu``: which engine computed the pixel work.
        spots, azimuthal, rois, pixels: the results of each analysis.
        timing: where the time went.
        candidates_truncated: more pixels passed the photon threshold than the engine's
            candidate list holds; the spots of this image are incomplete.
        indexing: the indexing result (None when indexing is off).
        integration: the lattices integrated and their reflections (None when the image
            was not indexed).
    """

    position: int
    engine: str
    spots: Spots
    azimuthal: AzimuthalProfile
    rois: dict[str, RoiResult]
    pixels: PixelStatistics
    timing: ImageTiming = field(default_factory=ImageTiming)
    candidates_truncated: bool = False
    indexing: ImageIndexing | None = None
    integration: ImageIntegration | None = None


@dataclass(frozen=True, slots=True)
class SkippedImage:
    """An image that could not be analysed (corrupt chunk, missing frame): counted, reported,
    its rows left at the fill values."""

    position: int
    reason: str
