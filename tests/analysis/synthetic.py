"""Analysis plans for frames made in memory (no file): a flat detector facing the beam."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jfsim.analysis.geometry import DetectorModule, RunGeometry
from jfsim.analysis.nxmx_run import NxmxRun
from jfsim.analysis.plan import AnalysisPlan, analysis_plan
from jfsim.analysis.settings import ProcessSettings
from jfsim.geometry import panel_from_position

ERROR = -32768
SATURATION = 32767


def synthetic_plan(
    settings: ProcessSettings,
    *,
    shape: tuple[int, int] = (120, 160),
    valid: np.ndarray | None = None,
    distance_mm: float = 60.0,
    pixel_size_mm: float = 0.3,
    beam_xy_pxl: tuple[float, float] = (80.0, 60.0),
    wavelength_A: float = 1.0,
    polarization_factor: float | None = 0.99,
    image_dtype: np.dtype | type = np.int16,
    error_value: int = ERROR,
    saturation_value: int = SATURATION,
) -> AnalysisPlan:
    height, width = shape
    panel = panel_from_position(
        distance_mm=distance_mm,
        beam_x_pxl=beam_xy_pxl[0],
        beam_y_pxl=beam_xy_pxl[1],
        pixel_size_mm=pixel_size_mm,
        width_pxl=width,
        height_pxl=height,
    )
    run = NxmxRun(
        master_path=Path("synthetic_master.h5"),
        geometry=RunGeometry(
            modules=(DetectorModule(panel),),
            image_shape=shape,
            wavelength_A=wavelength_A,
            polarization_factor=polarization_factor,
        ),
        n_images=1,
        image_dtype=np.dtype(image_dtype),
        valid_pixels=np.ones(shape, dtype=bool) if valid is None else valid,
        error_value=error_value,
        saturation_value=saturation_value,
        blocks=(),
        image_numbers=np.arange(1),
    )
    return analysis_plan(run, settings)


def add_spot(
    frame: np.ndarray, x_pxl: float, y_pxl: float, photons: float, sigma_pxl: float = 0.8
) -> None:
    """Add a noise-free Gaussian spot centred at continuous coordinates (x, y)."""
    rows, cols = np.indices(frame.shape)
    profile = np.exp(-((cols + 0.5 - x_pxl) ** 2 + (rows + 0.5 - y_pxl) ** 2) / (2 * sigma_pxl**2))
    frame += np.rint(photons * profile / profile.sum()).astype(frame.dtype)
