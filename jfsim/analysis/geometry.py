"""The geometry of a run as the analysis needs it, and the per-pixel maps derived from it.

A :class:`RunGeometry` is what the NXmx file says (read by :mod:`jfsim.analysis.nxmx_run`):
one or more flat modules, each a :class:`jfsim.geometry.Panel` over a block of the image,
the wavelength and the polarisation. :func:`pixel_maps` turns it into per-pixel arrays,
computed once per run and shared by every image and every analysis:

* ``q_recipA``: q = 4π·sin θ / λ at the pixel centre (Å⁻¹ *with* the 2π, as pyFAI's
  ``q_A^-1`` and the broker's ``*_q_recipA``; jfsim's reciprocal vectors elsewhere are 1/d);
* ``two_theta_rad`` and ``phi_rad``: scattering angle and azimuth, φ = atan2(y, x) in the
  McStas lab frame (x horizontal, y up), in [0, 2π);
* ``solid_angle``: cos³ of the angle between the pixel's ray and the module normal (pyFAI's
  relative solid angle, 1 at normal incidence);
* ``polarization``: P = ½·[1 + cos²2θ − f·cos 2φ·sin²2θ] (pyFAI's convention; 1 where the
  file gives no polarisation factor).

Pixel centres are at continuous coordinates (i + 0.5) of their module (``jfsim.geometry``).
Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from jfsim.geometry import Panel

__all__ = ["DetectorModule", "PixelMaps", "RunGeometry", "pixel_maps"]

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class DetectorModule:
    """One NXdetector_module: ``panel`` covers image rows ``origin_row … origin_row +
    panel.height_pxl`` and columns ``origin_col …`` (NXmx ``data_origin`` / ``data_size``)."""

    panel: Panel
    origin_row: int = 0
    origin_col: int = 0


@dataclass(frozen=True, slots=True)
class RunGeometry:
    """Detector, beam and goniometer of a run, in jfsim's units (mm, Å, rad).

    Attributes:
        modules: the detector modules (one for Jungfraujoch's assembled image).
        image_shape: ``(height, width)`` of a frame in pixels.
        wavelength_A: incident wavelength.
        polarization_factor: pyFAI's factor f (Stokes S1/S0), ``None`` if the file has none.
        rotation_axis: unit vector of the scan axis (McStas) for rotation data, else ``None``.
        rotation_angles_rad: the scan angle of each image (start of its exposure), or ``None``.
    """

    modules: tuple[DetectorModule, ...]
    image_shape: tuple[int, int]
    wavelength_A: float
    polarization_factor: float | None = None
    rotation_axis: tuple[float, float, float] | None = None
    rotation_angles_rad: tuple[float, ...] | None = None

    def module_at(self, row: float, col: float) -> DetectorModule | None:
        """The module whose block holds image pixel (row, col) (index coordinates)."""
        for module in self.modules:
            panel = module.panel
            if (
                module.origin_row <= row < module.origin_row + panel.height_pxl
                and module.origin_col <= col < module.origin_col + panel.width_pxl
            ):
                return module
        return None

    def lab_mm_at(self, x_index: FloatArray, y_index: FloatArray) -> FloatArray:
        """Lab positions (mm, ``(..., 3)``) of image positions in index coordinates (pixel
        centre at i); NaN outside every module."""
        x = np.asarray(x_index, dtype=np.float64)
        y = np.asarray(y_index, dtype=np.float64)
        lab = np.full((*x.shape, 3), np.nan)
        for module in self.modules:
            panel = module.panel
            local_x = x - module.origin_col + 0.5
            local_y = y - module.origin_row + 0.5
            inside = (
                (local_x >= 0)
                & (local_x <= panel.width_pxl)
                & (local_y >= 0)
                & (local_y <= panel.height_pxl)
            )
            if inside.any():
                lab[inside] = panel.pixel_to_lab_mm(local_x[inside], local_y[inside])
        return lab

    def q_at(self, x_index: FloatArray, y_index: FloatArray) -> FloatArray:
        """q (Å⁻¹, with 2π) at image positions in index coordinates (pixel centre at i);
        NaN outside every module."""
        return _q_of_lab(self.lab_mm_at(x_index, y_index), self.wavelength_A)


def _q_of_lab(lab_mm: FloatArray, wavelength_A: float) -> FloatArray:
    unit_z = lab_mm[..., 2] / np.linalg.norm(lab_mm, axis=-1)
    theta = 0.5 * np.arccos(np.clip(unit_z, -1.0, 1.0))
    return np.asarray(4.0 * math.pi * np.sin(theta) / wavelength_A)


@dataclass(frozen=True, slots=True)
class PixelMaps:
    """Per-pixel geometry ``[height, width]``; NaN (q, angles) or 0 (corrections) outside
    every module. See the module docstring for definitions and units."""

    q_recipA: FloatArray
    two_theta_rad: Float32Array
    phi_rad: Float32Array
    solid_angle: Float32Array
    polarization: Float32Array

    @property
    def d_A(self) -> FloatArray:
        """Resolution d = 2π/q (Å); inf at q = 0."""
        with np.errstate(divide="ignore"):
            return np.asarray(2.0 * math.pi / self.q_recipA)


#: Rows per block when building the maps (bounded temporary memory).
_ROWS_PER_BLOCK = 256


def pixel_maps(geometry: RunGeometry) -> PixelMaps:
    """The per-pixel maps of ``geometry`` (float64 q, float32 angles and corrections).

    Only 2θ and φ take a trigonometric function; q and the polarisation follow from the
    lab vector by algebra (sin θ = √((1 − cos 2θ)/2), cos 2φ = (x² − y²)/(x² + y²)), which
    keeps a 4M detector's maps to a fraction of a second: they are part of every run.
    """
    height, width = geometry.image_shape
    q = np.full((height, width), np.nan)
    two_theta = np.full((height, width), np.nan, dtype=np.float32)
    phi = np.full((height, width), np.nan, dtype=np.float32)
    solid = np.zeros((height, width), dtype=np.float32)
    polarization = np.zeros((height, width), dtype=np.float32)
    factor = geometry.polarization_factor
    q_per_sin_theta = 4.0 * math.pi / geometry.wavelength_A
    for module in geometry.modules:
        panel = module.panel
        normal = panel.normal
        fast = np.multiply(panel.fast, panel.pixel_size_mm)
        slow = np.multiply(panel.slow, panel.pixel_size_mm)
        rows_end = min(module.origin_row + panel.height_pxl, height)
        cols = slice(module.origin_col, min(module.origin_col + panel.width_pxl, width))
        local_cols = np.arange(cols.stop - cols.start, dtype=np.float64) + 0.5
        for first in range(module.origin_row, rows_end, _ROWS_PER_BLOCK):
            last = min(first + _ROWS_PER_BLOCK, rows_end)
            local_rows = np.arange(first, last, dtype=np.float64) - module.origin_row + 0.5
            x, y, z = (
                (panel.origin_mm[k] + slow[k] * local_rows)[:, np.newaxis]
                + fast[k] * local_cols[np.newaxis, :]
                for k in range(3)
            )
            radial_sq = x * x + y * y
            distance = np.sqrt(radial_sq + z * z)
            cos_two_theta = np.clip(z / distance, -1.0, 1.0)
            two_theta[first:last, cols] = np.arccos(cos_two_theta)
            q[first:last, cols] = q_per_sin_theta * np.sqrt(0.5 * (1.0 - cos_two_theta))
            block_phi = np.arctan2(y, x)
            block_phi[block_phi < 0.0] += 2.0 * math.pi
            phi[first:last, cols] = block_phi
            cosine = np.abs(x * normal[0] + y * normal[1] + z * normal[2]) / distance
            solid[first:last, cols] = cosine * cosine * cosine
            if factor is None:
                polarization[first:last, cols] = 1.0
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    cos_two_phi = np.where(radial_sq > 0.0, (x * x - y * y) / radial_sq, 1.0)
                cos_sq = cos_two_theta * cos_two_theta
                polarization[first:last, cols] = 0.5 * (
                    1.0 + cos_sq - factor * cos_two_phi * (1.0 - cos_sq)
                )
    return PixelMaps(q, two_theta, phi, solid, polarization)
