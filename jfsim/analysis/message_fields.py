"""Per-image results in Jungfraujoch's image-message vocabulary (stream.md §6.2).

jfjoch_broker sends its analysis results as image-message fields (``spots``,
``spot_count``, ``az_int_profile``, ``roi_integrals``, ``pixel_sum``, …) and jfjoch_writer
stores them under seed 001 §4's names. Turning an :class:`ImageAnalysis` into those fields
lets ``_process.h5`` be written by the very code that writes a live stream's results
(:class:`jfsim.writer.per_image.AnalysisBuffer`), with the same names, types, units and
fill values.
"""

from __future__ import annotations

from typing import Any

from jfsim.analysis.indexing.solution import ImageIndexing
from jfsim.analysis.result import ImageAnalysis

__all__ = ["image_message_fields", "indexing_fields"]


def image_message_fields(result: ImageAnalysis, image_number: int) -> dict[str, Any]:
    """The image-message analysis fields of one result (``image_number``: the image's
    number in the original run, Jungfraujoch's ``original_number``)."""
    spots = result.spots
    pixels = result.pixels
    timing = result.timing
    fields: dict[str, Any] = {
        "original_number": int(image_number),
        "spots": [  # Python numbers through tolist(): one conversion per column, not per value
            {"x": float(x), "y": float(y), "I": float(intensity), "ice_ring": bool(ice)}
            for x, y, intensity, ice in zip(
                spots.x.tolist(),
                spots.y.tolist(),
                spots.intensity.tolist(),
                spots.ice_ring.tolist(),
                strict=True,
            )
        ],
        "spot_count": spots.unfiltered,
        "strong_pixel_count": spots.strong_pixels,
        "spot_count_low_res": spots.low_resolution,
        "spot_count_ice_rings": spots.in_ice_rings,
        "bkg_estimate": pixels.bkg_estimate,
        "az_int_profile": result.azimuthal.mean,
        "az_int_profile_std": result.azimuthal.std,
        "az_int_profile_count": result.azimuthal.count,
        "error_pixel_count": pixels.error_pixels,
        "saturated_pixel_count": pixels.saturated_pixels,
        "pixel_sum": pixels.pixel_sum,
        "preprocessing_time": timing.preprocessing_s,
        "az_int_time": timing.pixel_pass_s,
        "spot_finding_time": timing.spot_finding_s,
        "processing_time": timing.processing_s,
    }
    if pixels.max_value is not None and pixels.min_value is not None:
        fields["max_viable_pixel_value"] = pixels.max_value
        fields["min_viable_pixel_value"] = pixels.min_value
    if result.indexing is not None:
        fields.update(indexing_fields(result.indexing, fields["spots"]))
    if result.integration is not None:
        fields["integration_time"] = timing.integration_s
    if result.rois:
        fields["roi_integrals"] = {
            name: {
                "sum": roi.sum,
                "sum_square": roi.sum_sq,
                "max_count": roi.max,
                "pixels": roi.npixel,
                "x_weighted": roi.x,
                "y_weighted": roi.y,
            }
            for name, roi in result.rois.items()
        }
    return fields


def indexing_fields(indexing: ImageIndexing, spots: list[dict[str, Any]]) -> dict[str, Any]:
    """The indexing fields of one image (stream.md §6.2, seed 001 §4.1); adds each spot's
    ``h``, ``k``, ``l``, ``indexed``, ``dist_ewald`` and ``lattice`` to ``spots`` (the
    image's spot maps, same order) when it indexed."""
    fields: dict[str, Any] = {
        "indexing_result": indexing.indexed,
        "indexing_lattice_count": int(indexing.indexed),
        "spot_count_indexed": indexing.n_indexed,
        "indexing_time": indexing.indexing_s,
        "refinement_time": indexing.refinement_s,
    }
    if not indexing.indexed or indexing.lattice is None or indexing.spots is None:
        return fields
    lattice = indexing.lattice
    fields.update(
        {
            "indexing_lattice": [float(v) for v in lattice.real_space_A.reshape(-1)],
            "bravais_lattice": lattice.bravais,
            "profile_radius": indexing.profile_radius_invA,
            "resolution_estimate": indexing.resolution_estimate_A,
            "beam_corr_x": indexing.beam_shift_pxl[0],
            "beam_corr_y": indexing.beam_shift_pxl[1],
        }
    )
    assignment = indexing.spots
    for spot, (h, k, ell), indexed, excitation in zip(
        spots,
        assignment.hkl.tolist(),
        assignment.indexed.tolist(),
        assignment.excitation_error_invA.tolist(),
        strict=True,
    ):
        if indexed:
            spot.update(h=h, k=k, l=ell, indexed=True, dist_ewald=excitation, lattice=0)
        else:
            spot.update(indexed=False, lattice=-1)
    return fields
