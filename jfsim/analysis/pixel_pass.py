"""The per-pixel work of one image, written once and compiled by each engine.

:func:`build_pixel_pass` composes the per-pixel functions of every analysis into
``visit_pixel`` (classify a non-zero pixel, bin it, add it to its ROIs, note it as a
spot candidate) and ``strong_mean`` (Jungfraujoch's strong-pixel test of one candidate).
The CPU engine calls them in loops; the GPU engine in one CUDA thread per pixel or
candidate. Both see the same arrays: flat ``[H·W]`` views of the per-run maps.
"""

from __future__ import annotations

from types import SimpleNamespace

from jfsim.analysis.azimuthal import build_azimuthal_functions
from jfsim.analysis.pixel_statistics import SENSITIVE, build_pixel_statistics_functions
from jfsim.analysis.primitives import Primitives
from jfsim.analysis.roi import build_roi_functions
from jfsim.analysis.spot_finding import build_spot_functions

__all__ = ["build_pixel_pass"]


def build_pixel_pass(primitives: Primitives) -> SimpleNamespace:
    """``visit_pixel(...)`` and ``strong_mean(...)`` compiled with ``primitives``."""
    classify_pixel = build_pixel_statistics_functions(primitives)
    bin_pixel = build_azimuthal_functions(primitives)
    add_to_rois = build_roi_functions(primitives)
    spot = build_spot_functions(primitives)
    note_candidate = spot.note_candidate

    def visit_pixel(  # type: ignore[no-untyped-def]
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
    ):
        """Everything one non-zero pixel contributes to its image's results."""
        klass = pixel_class[index]
        viable = classify_pixel(stats, value, klass, error, saturation)
        bin_pixel(azimuthal, lost_correction, bin_map[index], value, viable, correction[index])
        if has_rois and (klass & SENSITIVE) != 0:
            add_to_rois(rois, roi_map[index], value, viable, index // width, index % width)
        note_candidate(candidates, counter, index, value, viable, threshold)

    return SimpleNamespace(
        visit_pixel=primitives.compile(visit_pixel), strong_mean=spot.strong_mean
    )
