"""Regions of interest (seed 001 §4.4, §4.4.1; broker ``RoiDefinitions``).

ROIs get bits in the order boxes, circles, azimuthal ROIs; ``roi_map`` (uint16 ``[H, W]``)
sets bit *k* on every pixel of ROI *k*: the footprint, masked pixels included, so it can be
recovered exactly. Pixel coordinates are indices (pixel centre at i), as box bounds are:

* ``box``: ``min_x_pxl ≤ x ≤ max_x_pxl`` and ``min_y_pxl ≤ y ≤ max_y_pxl`` (inclusive);
* ``circle``: (x − centre_x)² + (y − centre_y)² ≤ radius²;
* ``azim``: ``q_min_recipA ≤ q < q_max_recipA`` and, when both are given, φ in
  [``phi_min_deg``, ``phi_max_deg``) (a sector with phi_min > phi_max wraps across 0).

Per image and ROI, over its viable pixels: ``sum``, ``sum_sq``, ``max``, ``npixel`` and the
value-weighted centroid ``x``, ``y`` (NaN when the sum is 0). Accumulators are int64;
engines visit only non-zero sensitive pixels (``npixel`` = the ROI's sensitive pixels minus
those an image loses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from jfjoch_client.models.roi_azimuthal import RoiAzimuthal
from jfjoch_client.models.roi_box import RoiBox
from jfjoch_client.models.roi_circle import RoiCircle
from jfjoch_client.models.roi_definitions import RoiDefinitions

from jfsim.analysis.errors import SettingsError
from jfsim.analysis.geometry import PixelMaps
from jfsim.analysis.primitives import Primitives
from jfsim.analysis.settings import roi_list

__all__ = [
    "N_ROI_FIELDS",
    "RoiPlan",
    "RoiResult",
    "build_roi_functions",
    "new_roi_accumulator",
    "roi_plan",
    "roi_results_from",
]

#: Columns of the int64 ``[n_rois, 7]`` accumulator.
ROI_SUM, ROI_SUM_SQ, ROI_MAX, ROI_NONZERO, ROI_LOST, ROI_SUM_X, ROI_SUM_Y = range(7)
N_ROI_FIELDS = 7
_INT64 = np.iinfo(np.int64)


@dataclass(frozen=True, slots=True)
class RoiPlan:
    """ROI names, their definitions as ``roi_defs`` fields, the footprint bitmask and the
    number of sensitive pixels of each ROI."""

    names: tuple[str, ...]
    definitions: tuple[dict[str, Any], ...]
    roi_map: npt.NDArray[np.uint16]
    sensitive_pixels: tuple[int, ...]

    @property
    def n_rois(self) -> int:
        return len(self.names)


def roi_plan(
    definitions: RoiDefinitions, maps: PixelMaps, sensitive: npt.NDArray[np.bool_]
) -> RoiPlan:
    """Footprints of every ROI (``SettingsError`` for an ROI with no pixel on the image)."""
    shape = sensitive.shape
    height, width = shape
    rows = np.arange(height)[:, None]
    cols = np.arange(width)[None, :]
    roi_map = np.zeros(shape, dtype=np.uint16)
    names: list[str] = []
    fields: list[dict[str, Any]] = []
    counts: list[int] = []
    for bit, roi in enumerate(roi_list(definitions)):
        if isinstance(roi, RoiBox):
            footprint = (
                (cols >= roi.min_x_pxl)
                & (cols <= roi.max_x_pxl)
                & (rows >= roi.min_y_pxl)
                & (rows <= roi.max_y_pxl)
            )
            described: dict[str, Any] = {
                "type": "box",
                "min_x_pxl": roi.min_x_pxl,
                "max_x_pxl": roi.max_x_pxl,
                "min_y_pxl": roi.min_y_pxl,
                "max_y_pxl": roi.max_y_pxl,
            }
        elif isinstance(roi, RoiCircle):
            footprint = (cols - roi.center_x_pxl) ** 2 + (rows - roi.center_y_pxl) ** 2 <= (
                roi.radius_pxl**2
            )
            described = {
                "type": "circle",
                "center_x_pxl": float(roi.center_x_pxl),
                "center_y_pxl": float(roi.center_y_pxl),
                "radius_pxl": float(roi.radius_pxl),
            }
        else:
            footprint, described = _azimuthal_footprint(roi, maps)
        footprint = np.broadcast_to(footprint, shape)
        if not footprint.any():
            raise SettingsError(f"roi {roi.name!r}: no pixel of the {width} x {height} image")
        roi_map[footprint] |= np.uint16(1 << bit)
        names.append(roi.name)
        fields.append({"bit_index": bit, **described})
        counts.append(int(np.count_nonzero(footprint & sensitive)))
    return RoiPlan(tuple(names), tuple(fields), roi_map, tuple(counts))


def _azimuthal_footprint(
    roi: RoiAzimuthal, maps: PixelMaps
) -> tuple[npt.NDArray[np.bool_], dict[str, Any]]:
    if roi.q_max_recip_a <= roi.q_min_recip_a:
        raise SettingsError(
            f"roi {roi.name!r}: q_max_recipA {roi.q_max_recip_a} must exceed q_min_recipA "
            f"{roi.q_min_recip_a}"
        )
    if (roi.phi_min_deg is None) != (roi.phi_max_deg is None):
        raise SettingsError(
            f"roi {roi.name!r}: give both phi_min_deg and phi_max_deg, or neither (full ring)"
        )
    q = maps.q_recipA
    with np.errstate(invalid="ignore"):
        footprint = (q >= roi.q_min_recip_a) & (q < roi.q_max_recip_a)
    described: dict[str, Any] = {
        "type": "azim",
        "q_min_recipA": float(roi.q_min_recip_a),
        "q_max_recipA": float(roi.q_max_recip_a),
    }
    if roi.phi_min_deg is not None and roi.phi_max_deg is not None:
        low, high = roi.phi_min_deg % 360.0, roi.phi_max_deg % 360.0
        phi_deg = np.degrees(maps.phi_rad.astype(np.float64))
        with np.errstate(invalid="ignore"):
            sector = (
                (phi_deg >= low) & (phi_deg < high)
                if low <= high
                else (phi_deg >= low) | (phi_deg < high)
            )
        footprint &= sector
        described |= {"phi_min_deg": float(roi.phi_min_deg), "phi_max_deg": float(roi.phi_max_deg)}
    return np.asarray(footprint), described


def new_roi_accumulator(n_rois: int) -> npt.NDArray[np.int64]:
    accumulator = np.zeros((max(n_rois, 1), N_ROI_FIELDS), dtype=np.int64)
    accumulator[:, ROI_MAX] = _INT64.min
    return accumulator


def build_roi_functions(primitives: Primitives) -> Any:
    """``add_to_rois(accumulator, bits, value, viable, row, col)`` compiled for one engine,
    for a non-zero sensitive pixel: a viable one adds to every ROI whose bit is set, another
    leaves those ROIs' pixel counts."""
    add, maximum = primitives.add, primitives.maximum

    def add_to_rois(accumulator, bits, value, viable, row, col):  # type: ignore[no-untyped-def]
        if bits == 0:
            return
        count = np.int64(value)
        for k in range(accumulator.shape[0]):
            if (bits >> k) & 1:
                if not viable:
                    add(accumulator, (k, ROI_LOST), 1)
                    continue
                add(accumulator, (k, ROI_SUM), count)
                add(accumulator, (k, ROI_SUM_SQ), count * count)
                maximum(accumulator, (k, ROI_MAX), count)
                add(accumulator, (k, ROI_NONZERO), 1)
                add(accumulator, (k, ROI_SUM_X), count * col)
                add(accumulator, (k, ROI_SUM_Y), count * row)

    return primitives.compile(add_to_rois)


@dataclass(frozen=True, slots=True)
class RoiResult:
    """One ROI in one image (``max`` is 0 and the centroid NaN for an empty ROI)."""

    sum: int
    sum_sq: int
    max: int
    npixel: int
    x: float
    y: float


def roi_results_from(plan: RoiPlan, accumulator: npt.NDArray[np.int64]) -> dict[str, RoiResult]:
    results = {}
    for k, name in enumerate(plan.names):
        row = accumulator[k]
        total = int(row[ROI_SUM])
        npixel = plan.sensitive_pixels[k] - int(row[ROI_LOST])
        zeros = npixel - int(row[ROI_NONZERO])
        candidates = ([int(row[ROI_MAX])] if row[ROI_NONZERO] else []) + ([0] if zeros else [])
        results[name] = RoiResult(
            sum=total,
            sum_sq=int(row[ROI_SUM_SQ]),
            max=max(candidates) if candidates else 0,
            npixel=npixel,
            x=float(row[ROI_SUM_X]) / total if total else math.nan,
            y=float(row[ROI_SUM_Y]) / total if total else math.nan,
        )
    return results
