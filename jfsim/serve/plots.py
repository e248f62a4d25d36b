"""``/preview/plot``: per-image quantities of the current series, binned, as ``Plots``.

Image ``k`` of a series carries the pixels and analysis fields of pool frame ``k % K``, so
every per-image quantity is a per-frame quantity looked up for the images that were sent.
The analysis fields (spots, indexing, cell) are ground truth; the pixel quantities
(background estimate, error pixels, maximum) are computed once per frame, on first request.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from jfjoch_client.models import Plot, Plots, PlotUnitX

from jfsim.detectors import Detector
from jfsim.serve.errors import BadRequest
from jfsim.stream import PoolFrame
from jfsim.stream.frames import Frames

__all__ = ["PLOT_TYPES", "FrameMetrics", "SeriesView", "make_plots"]

#: At most this many points per plot when the client asks for the default binning (0).
DEFAULT_MAX_POINTS = 1000
_CELL_LENGTHS = ("a", "b", "c")
_CELL_ANGLES = ("alpha", "beta", "gamma")


class FrameMetrics:
    """Per-pool-frame quantities; the pixel ones decompress each frame once, when asked."""

    def __init__(self, pool: Frames, detector: Detector) -> None:
        self.pool: tuple[PoolFrame, ...] = tuple(pool[i] for i in range(len(pool)))
        self.detector = detector
        fields = [frame.pixel_fields for frame in self.pool]
        self.spot_count = np.array([f.get("spot_count", 0) for f in fields], dtype=np.float64)
        self.spot_count_indexed = np.array(
            [sum(1 for s in f.get("spots", ()) if s.get("indexed")) for f in fields],
            dtype=np.float64,
        )
        self.indexed = np.array([bool(f.get("indexing_result")) for f in fields], dtype=np.float64)
        self.cell = {
            name: np.array(
                [f.get("indexing_unit_cell", {}).get(name, math.nan) for f in fields],
                dtype=np.float64,
            )
            for name in _CELL_LENGTHS + _CELL_ANGLES
        }
        ratios = [frame.pixels.nbytes / max(1, len(frame.pixels.payload)) for frame in self.pool]
        self.compression_ratio = float(np.mean(ratios))
        self._pixel_lock = threading.Lock()
        self._pixel: dict[str, np.ndarray] | None = None

    def pixel_metrics(self) -> dict[str, np.ndarray]:
        """``bkg_estimate`` (mean count of valid pixels), ``error_pixels``, ``max_value``."""
        with self._pixel_lock:
            if self._pixel is None:
                error, saturation = self.detector.error_value, self.detector.saturation_value
                metrics: dict[str, list[float]] = {
                    "bkg_estimate": [],
                    "error_pixels": [],
                    "max_value": [],
                }
                for frame in self.pool:
                    pixels = frame.pixels.to_numpy()
                    valid = pixels[(pixels != error) & (pixels < saturation)]
                    metrics["bkg_estimate"].append(float(valid.mean()) if valid.size else 0.0)
                    metrics["error_pixels"].append(float(np.count_nonzero(pixels == error)))
                    metrics["max_value"].append(float(valid.max()) if valid.size else 0.0)
                self._pixel = {key: np.array(values) for key, values in metrics.items()}
            return self._pixel


@dataclass(frozen=True, slots=True)
class SeriesView:
    """What the plots need of a series: which images were sent, and their frame metrics."""

    sent: np.ndarray  # bool [images done so far]
    metrics: FrameMetrics
    rotation_start_deg: float | None = None
    rotation_step_deg: float | None = None

    def per_image(self, per_frame: np.ndarray) -> np.ndarray:
        """Per-frame values spread over the images, NaN where the image was not sent."""
        n_images = len(self.sent)
        values = per_frame[np.arange(n_images) % len(per_frame)].astype(np.float64)
        values[~self.sent] = math.nan
        return values


def _collection_efficiency(view: SeriesView) -> dict[str, np.ndarray]:
    return {"image_collection_efficiency": view.sent.astype(np.float64)}


def _frame(view: SeriesView, title: str, values: np.ndarray) -> dict[str, np.ndarray]:
    return {title: view.per_image(values)}


PLOT_TYPES = {
    "spot_count": lambda v: _frame(v, "Spot count", v.metrics.spot_count),
    "spot_count_indexed": lambda v: _frame(v, "Indexed spots", v.metrics.spot_count_indexed),
    "indexing_rate": lambda v: _frame(v, "Indexing rate", v.metrics.indexed),
    "indexing_unit_cell_length": lambda v: {
        name: v.per_image(v.metrics.cell[name]) for name in _CELL_LENGTHS
    },
    "indexing_unit_cell_angle": lambda v: {
        name: v.per_image(v.metrics.cell[name]) for name in _CELL_ANGLES
    },
    "bkg_estimate": lambda v: _frame(
        v, "Background estimate", v.metrics.pixel_metrics()["bkg_estimate"]
    ),
    "error_pixels": lambda v: _frame(v, "Error pixels", v.metrics.pixel_metrics()["error_pixels"]),
    "max_value": lambda v: _frame(v, "Max value", v.metrics.pixel_metrics()["max_value"]),
    "image_collection_efficiency": _collection_efficiency,
}


def _binned_mean(values: np.ndarray, binning: int) -> np.ndarray:
    """Mean of each run of ``binning`` values, ignoring NaN (NaN where a bin has none)."""
    n_bins = -(-len(values) // binning)
    padded = np.full(n_bins * binning, math.nan)
    padded[: len(values)] = values
    blocks = padded.reshape(n_bins, binning)
    counts = np.count_nonzero(~np.isnan(blocks), axis=1)
    sums = np.nansum(blocks, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), math.nan)


def make_plots(
    kind: str,
    view: SeriesView,
    *,
    binning: int = 0,
    fill: float | None = None,
    experimental_coord: bool = False,
) -> Plots:
    """The ``Plots`` answer for plot ``kind`` (``PLOT_TYPES``); ``binning`` 0 = default."""
    if kind not in PLOT_TYPES:
        raise BadRequest(
            f"type {kind!r}: jfsim has no such plot; use one of {', '.join(PLOT_TYPES)}"
        )
    if binning < 0:
        raise BadRequest(f"binning: must be >= 0 (0 = default), got {binning}")
    n_images = len(view.sent)
    if binning == 0:
        binning = max(1, -(-n_images // DEFAULT_MAX_POINTS))
    binning = min(binning, max(1, n_images))  # a wider bin is one bin: memory stays bounded
    image_numbers = _binned_mean(np.arange(n_images, dtype=np.float64), binning)
    unit_x = PlotUnitX.IMAGE_NUMBER
    x = image_numbers
    if experimental_coord and view.rotation_step_deg is not None:
        unit_x = PlotUnitX.ANGLE_DEG
        x = (view.rotation_start_deg or 0.0) + image_numbers * view.rotation_step_deg
    plots = []
    for title, values in PLOT_TYPES[kind](view).items():
        binned = _binned_mean(values, binning)
        y = [fill if math.isnan(v) else float(v) for v in binned]
        plots.append(Plot(title=title, x=[float(v) for v in x], y=y))
    return Plots(title=kind, unit_x=unit_x, plot=plots)
