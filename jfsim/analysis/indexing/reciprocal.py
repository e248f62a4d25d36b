"""From spot positions to reciprocal-space vectors (analysis.md §3).

A spot at image position (x, y) (index coordinates, pixel centre at i, as the spot finder
reports) lies on the ray of unit direction ŝ1 from the sample; its scattering vector is
r = (ŝ1 − ŝ0)/λ (Å⁻¹, no 2π; ŝ0 = ẑ, the beam). For rotation data the crystal has turned by
φ about the goniometer axis while the image was taken: r is rotated back by the angle at
the middle of the image's exposure, so that vectors of every image refer to φ = 0, where
the run's lattice is defined. A refined beam centre is a shift of the spot positions: the
beam moved by (dx, dy) pixels is the same as every spot moved by (−dx, −dy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from jfsim.analysis.geometry import RunGeometry
from jfsim.geometry import rotation_matrix

__all__ = [
    "ImageFrame",
    "excitation_errors",
    "image_frame",
    "pixel_steps_mm",
    "resolution_A",
    "scattering_vectors",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ImageFrame:
    """Where an image sits in the crystal's frame.

    Attributes:
        rotation: 3×3; turns vectors at φ = 0 into the lab frame of this image (the
            goniometer rotation at the middle of its exposure; identity for stills).
        angle_rad: that angle (0 for stills).
        half_width_rad: half the angle the image covers (0 for stills).
    """

    rotation: FloatArray
    angle_rad: float = 0.0
    half_width_rad: float = 0.0


def image_frame(geometry: RunGeometry, image_number: int) -> ImageFrame:
    """The goniometer position of image ``image_number`` (0-based, in the run)."""
    angles = geometry.rotation_angles_rad
    if geometry.rotation_axis is None or angles is None:
        return ImageFrame(np.eye(3))
    step = float(np.median(np.diff(np.asarray(angles))))
    middle = angles[image_number] + 0.5 * step
    return ImageFrame(rotation_matrix(geometry.rotation_axis, middle), middle, 0.5 * abs(step))


def scattering_vectors(
    geometry: RunGeometry,
    x_index: FloatArray,
    y_index: FloatArray,
    *,
    beam_shift_pxl: tuple[float, float] = (0.0, 0.0),
) -> FloatArray:
    """r = (ŝ1 − ŝ0)/λ (Å⁻¹, ``(n, 3)``, lab frame) of spots at index coordinates; NaN rows
    for positions outside every module. ``beam_shift_pxl`` is a correction to the beam
    centre (pixels along x and y)."""
    lab = geometry.lab_mm_at(
        np.asarray(x_index, dtype=np.float64) - beam_shift_pxl[0],
        np.asarray(y_index, dtype=np.float64) - beam_shift_pxl[1],
    )
    unit = lab / np.linalg.norm(lab, axis=-1, keepdims=True)
    return np.asarray((unit - np.array([0.0, 0.0, 1.0])) / geometry.wavelength_A)


def pixel_steps_mm(
    geometry: RunGeometry, x_index: FloatArray, y_index: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Lab vectors (mm, ``(n, 3)`` each) of one pixel step along x and along y at image
    positions (index coordinates): the fast and slow axes of each position's module times
    its pixel size (the derivatives of :meth:`RunGeometry.lab_mm_at`); NaN outside every
    module."""
    x = np.asarray(x_index, dtype=np.float64)
    y = np.asarray(y_index, dtype=np.float64)
    step_x = np.full((x.size, 3), np.nan)
    step_y = np.full((x.size, 3), np.nan)
    for module in geometry.modules:
        panel = module.panel
        first_x, first_y = module.origin_col - 0.5, module.origin_row - 0.5
        inside = (
            (x >= first_x)
            & (x <= first_x + panel.width_pxl)
            & (y >= first_y)
            & (y <= first_y + panel.height_pxl)
        )
        step_x[inside] = np.multiply(panel.fast, panel.pixel_size_mm)
        step_y[inside] = np.multiply(panel.slow, panel.pixel_size_mm)
    return step_x, step_y


def resolution_A(r_invA: FloatArray) -> FloatArray:
    """d = 1/|r| (Å) of scattering vectors."""
    with np.errstate(divide="ignore"):
        return np.asarray(1.0 / np.linalg.norm(r_invA, axis=-1))


def excitation_errors(ub: FloatArray, hkl: FloatArray, wavelength_A: float) -> FloatArray:
    """Excitation error |s0 + UB·h| − 1/λ (Å⁻¹) of reflections ``hkl`` (``(n, 3)``) of a
    lattice ``ub`` in the lab frame: positive outside the Ewald sphere."""
    s0 = np.array([0.0, 0.0, 1.0 / wavelength_A])
    r = np.asarray(hkl, dtype=np.float64) @ np.asarray(ub).T
    return np.asarray(np.linalg.norm(s0 + r, axis=-1) - 1.0 / wavelength_A)
