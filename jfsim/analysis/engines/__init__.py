"""Analysis engines behind one contract (style.md Part 2 §5).

Each engine module exposes ``NAME``, ``probe() -> str | None`` (None when usable, else the
reason), ``prepare(plan, options) -> prepared`` and ``run(prepared, pixels) ->
EngineOutput``: the raw per-image accumulators and strong pixels of one frame, which
:mod:`jfsim.analysis.analyse` turns into results with code shared by all engines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["EngineOutput"]


@dataclass(frozen=True, slots=True)
class EngineOutput:
    """What an engine computed for one frame.

    Attributes:
        stats: int64 ``[N_STATS]`` pixel-statistics accumulator.
        azimuthal: int64 ``[n_bins, 3]`` (Σ I, Σ I², lost pixels) per bin.
        lost_correction: float64 ``[n_bins]`` Σ C of the pixels the frame lost.
        rois: int64 ``[n_rois, N_ROI_FIELDS]``.
        strong_rows, strong_cols: int64, the strong pixels in row-major order.
        strong_excess: float64, I − μ of each strong pixel.
        candidates: pixels above the photon threshold.
        truncated: more candidates than the engine's list holds (spots incomplete).
        pixel_pass_s, spot_finding_s: seconds in the pixel pass and the candidate tests.
    """

    stats: npt.NDArray[np.int64]
    azimuthal: npt.NDArray[np.int64]
    lost_correction: npt.NDArray[np.float64]
    rois: npt.NDArray[np.int64]
    strong_rows: npt.NDArray[np.int64]
    strong_cols: npt.NDArray[np.int64]
    strong_excess: npt.NDArray[np.float64]
    candidates: int
    truncated: bool
    pixel_pass_s: float
    spot_finding_s: float
