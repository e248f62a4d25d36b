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

import functools
import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from jfsim.analysis.geometry import DetectorModule, RunGeometry
from jfsim.geometry import rotation_matrix

__all__ = [
    "ImageFrame",
    "image_frame",
    "scattering_vectors",
    "scattering_vectors_of_lab",
    "spot_positions",
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


def spot_positions(
    geometry: RunGeometry,
    x_index: FloatArray,
    y_index: FloatArray,
    *,
    beam_shift_pxl: tuple[float, float] = (0.0, 0.0),
) -> tuple[FloatArray, FloatArray]:
    """(lab positions ``(n, 3)``, pixel steps ``(n, 3, 2)``), mm, of spots at index
    coordinates, the beam centre corrected by ``beam_shift_pxl`` (pixels along x and y);
    NaN outside every module. ``steps[:, :, 0]`` and ``steps[:, :, 1]`` are the lab vectors
    of one pixel step along x and along y: the fast and slow axes of each position's module
    times its pixel size (the derivatives of :meth:`RunGeometry.lab_mm_at`, which gives
    the same positions: here one compiled pass over the spots, as the indexer needs them
    several times per image)."""
    x = np.ascontiguousarray(x_index, dtype=np.float64)
    y = np.ascontiguousarray(y_index, dtype=np.float64)
    lab_mm = np.empty((x.size, 3))
    steps_mm = np.empty((x.size, 3, 2))
    _positions_into(
        *_module_table(geometry.modules),
        x,
        y,
        float(beam_shift_pxl[0]),
        float(beam_shift_pxl[1]),
        lab_mm,
        steps_mm,
    )
    return lab_mm, steps_mm


@functools.lru_cache(maxsize=16)
def _module_table(modules: tuple[DetectorModule, ...]) -> tuple[FloatArray, ...]:
    """(corner of pixel (0, 0), fast and slow pixel steps, all ``(m, 3)`` mm; first column,
    first row, width, height, all ``(m,)`` pixels) of each module, for compiled code."""
    panels = [module.panel for module in modules]
    bases = np.array([panel.basis_mm() for panel in panels], dtype=np.float64)
    fast_mm, slow_mm, origin_mm = (np.ascontiguousarray(bases[:, :, k]) for k in range(3))
    return (
        origin_mm,
        fast_mm,
        slow_mm,
        np.array([module.origin_col for module in modules], dtype=np.float64),
        np.array([module.origin_row for module in modules], dtype=np.float64),
        np.array([panel.width_pxl for panel in panels], dtype=np.float64),
        np.array([panel.height_pxl for panel in panels], dtype=np.float64),
    )


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _positions_into(  # type: ignore[no-untyped-def]  # numba kernel
    origin_mm, fast_mm, slow_mm, first_col, first_row, width, height, x, y, shift_x, shift_y,
    lab_mm, steps_mm,
):  # fmt: skip
    """:func:`spot_positions` (the last module holding a position wins, as in
    :meth:`RunGeometry.lab_mm_at`)."""
    for spot in range(x.size):
        for k in range(3):
            lab_mm[spot, k] = np.nan
            steps_mm[spot, k, 0] = np.nan
            steps_mm[spot, k, 1] = np.nan
        for module in range(first_col.size):
            local_x = x[spot] - shift_x - first_col[module] + 0.5
            local_y = y[spot] - shift_y - first_row[module] + 0.5
            if 0.0 <= local_x <= width[module] and 0.0 <= local_y <= height[module]:
                for k in range(3):
                    lab_mm[spot, k] = (
                        local_x * fast_mm[module, k]
                        + local_y * slow_mm[module, k]
                        + origin_mm[module, k]
                    )
                    steps_mm[spot, k, 0] = fast_mm[module, k]
                    steps_mm[spot, k, 1] = slow_mm[module, k]


def scattering_vectors_of_lab(lab_mm: FloatArray, wavelength_A: float) -> FloatArray:
    """r = (ŝ1 − ŝ0)/λ (Å⁻¹, ``(n, 3)``) of spots at lab positions ``lab_mm`` (NaN rows
    stay NaN)."""
    r_invA = np.empty_like(lab_mm)
    _scattering_into(np.ascontiguousarray(lab_mm), float(wavelength_A), r_invA)
    return r_invA


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _scattering_into(lab_mm, wavelength_A, r_invA):  # type: ignore[no-untyped-def]  # numba kernel
    for spot in range(lab_mm.shape[0]):
        x, y, z = lab_mm[spot, 0], lab_mm[spot, 1], lab_mm[spot, 2]
        length = math.sqrt(x * x + y * y + z * z)
        r_invA[spot, 0] = x / length / wavelength_A
        r_invA[spot, 1] = y / length / wavelength_A
        r_invA[spot, 2] = (z / length - 1.0) / wavelength_A


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
    lab_mm, _steps = spot_positions(geometry, x_index, y_index, beam_shift_pxl=beam_shift_pxl)
    return scattering_vectors_of_lab(lab_mm, geometry.wavelength_A)
