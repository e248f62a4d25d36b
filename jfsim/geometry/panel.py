"""A flat detector panel in the lab frame, and its PONI (pyFAI) description.

A panel maps continuous pixel coordinates (centre of pixel i at i + 0.5) to lab positions in
mm and back. jfsim treats the assembled Jungfraujoch image as one panel (as the Jungfraujoch
NXmx writer does); module gaps are pixels without sensor, masked in the pixel mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: pyFAI's panel axes (t1 along slow, t2 along fast, t3 along the beam) → McStas lab axes for
#: the jfsim default orientation f̂ = (−1, 0, 0), ŝ = (0, −1, 0): lab = M·t.
_PYFAI_TO_LAB = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True, slots=True)
class Panel:
    """One flat panel: ``origin_mm`` is the outer corner of pixel (0, 0); ``fast``/``slow``
    are the lab unit vectors of increasing x (column) and y (row)."""

    origin_mm: tuple[float, float, float]
    fast: tuple[float, float, float]
    slow: tuple[float, float, float]
    pixel_size_mm: float
    width_pxl: int
    height_pxl: int

    @property
    def normal(self) -> np.ndarray:
        """Unit normal f̂ × ŝ, pointing away from the sample for the default orientation."""
        n = np.cross(self.fast, self.slow)
        return n / np.linalg.norm(n)

    @property
    def distance_mm(self) -> float:
        """Perpendicular distance from the sample (lab origin) to the panel plane."""
        return float(abs(np.dot(self.normal, self.origin_mm)))

    def basis_mm(self) -> np.ndarray:
        """Columns: f̂·p, ŝ·p, O (mm): one pixel step along x and along y, and the corner of
        pixel (0, 0), so that lab = basis @ (x, y, 1)."""
        p = self.pixel_size_mm
        return np.column_stack(
            [np.multiply(self.fast, p), np.multiply(self.slow, p), self.origin_mm]
        )

    def pixel_to_lab_mm(self, x_pxl: npt.ArrayLike, y_pxl: npt.ArrayLike) -> np.ndarray:
        """Lab positions (mm, shape ``(..., 3)``) of continuous pixel coordinates."""
        x = np.asarray(x_pxl, dtype=np.float64)
        y = np.asarray(y_pxl, dtype=np.float64)
        stacked = np.stack([x, y, np.ones_like(x)], axis=-1)
        lab_mm: np.ndarray = stacked @ self.basis_mm().T
        return lab_mm

    def ray_to_pixel(self, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where rays from the sample along ``directions`` (``(..., 3)``) cross the panel.

        Returns ``(x_pxl, y_pxl, hits)`` in continuous coordinates; ``hits`` is False for rays
        that point away from the panel plane (the coordinates are NaN there). Positions outside
        the image are returned as they are; callers decide about bounds.
        """
        d = np.asarray(directions, dtype=np.float64)
        uvw = d @ np.linalg.inv(self.basis_mm()).T
        w = uvw[..., 2]
        hits = w > 1e-12
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(hits, uvw[..., 0] / w, np.nan)
            y = np.where(hits, uvw[..., 1] / w, np.nan)
        return x, y, hits

    def lab_to_pixel(self, points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Continuous pixel coordinates of lab points that lie on the panel (central projection
        from the sample, so points off the plane map to where their ray crosses it)."""
        x, y, _ = self.ray_to_pixel(points_mm)
        return x, y

    def pixel_to_reciprocal(
        self, x_pxl: np.ndarray, y_pxl: np.ndarray, wavelength_A: float
    ) -> np.ndarray:
        """Scattering vectors r = s1 − s0 (Å⁻¹, ``(..., 3)``) of the rays through these pixels."""
        lab = self.pixel_to_lab_mm(x_pxl, y_pxl)
        unit = lab / np.linalg.norm(lab, axis=-1, keepdims=True)
        r_invA: np.ndarray = (unit - np.array([0.0, 0.0, 1.0])) / wavelength_A
        return r_invA

    def reciprocal_to_pixel(
        self, r_invA: np.ndarray, wavelength_A: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel coordinates of the diffracted rays s1 = s0 + r (r on the Ewald sphere)."""
        s1 = np.asarray(r_invA, dtype=np.float64) + np.array([0.0, 0.0, 1.0 / wavelength_A])
        return self.ray_to_pixel(s1)


@dataclass(frozen=True, slots=True)
class Poni:
    """pyFAI's detector description: PONI distance and point (mm), rotations (rad).

    ``poni1_mm`` runs along the slow (row) axis, ``poni2_mm`` along the fast (column) axis,
    both from the outer corner of pixel (0, 0).
    """

    dist_mm: float
    poni1_mm: float
    poni2_mm: float
    rot1_rad: float = 0.0
    rot2_rad: float = 0.0
    rot3_rad: float = 0.0


def _pyfai_axes(rot1: float, rot2: float, rot3: float) -> tuple[np.ndarray, ...]:
    """∂t/∂d1, ∂t/∂d2 and the unit vector towards the PONI, in pyFAI's (t1, t2, t3) axes."""
    c1, s1 = math.cos(rot1), math.sin(rot1)
    c2, s2 = math.cos(rot2), math.sin(rot2)
    c3, s3 = math.cos(rot3), math.sin(rot3)
    along_slow = np.array([c2 * c3, c2 * s3, s2])
    along_fast = np.array([c3 * s1 * s2 - c1 * s3, c1 * c3 + s1 * s2 * s3, -c2 * s1])
    towards_poni = np.array([c1 * c3 * s2 + s1 * s3, c1 * s2 * s3 - c3 * s1, -c1 * c2]) * -1.0
    return along_slow, along_fast, towards_poni


def _lab_vector(vector_pyfai: np.ndarray) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in _PYFAI_TO_LAB @ vector_pyfai)
    return (x, y, z)


def panel_from_poni(poni: Poni, pixel_size_mm: float, width_pxl: int, height_pxl: int) -> Panel:
    """The panel described by pyFAI's PONI parameters (jfsim default axes when untilted)."""
    along_slow, along_fast, towards_poni = _pyfai_axes(poni.rot1_rad, poni.rot2_rad, poni.rot3_rad)
    corner_t = poni.dist_mm * towards_poni - poni.poni1_mm * along_slow - poni.poni2_mm * along_fast
    return Panel(
        origin_mm=_lab_vector(corner_t),
        fast=_lab_vector(along_fast),
        slow=_lab_vector(along_slow),
        pixel_size_mm=pixel_size_mm,
        width_pxl=width_pxl,
        height_pxl=height_pxl,
    )


def poni_from_panel(panel: Panel) -> Poni:
    """pyFAI PONI parameters of a panel (inverse of :func:`panel_from_poni`)."""
    to_t = _PYFAI_TO_LAB.T  # the mapping is orthogonal
    along_slow = to_t @ np.asarray(panel.slow)
    along_fast = to_t @ np.asarray(panel.fast)
    corner_t = to_t @ np.asarray(panel.origin_mm)
    rot2 = math.asin(max(-1.0, min(1.0, along_slow[2])))
    rot3 = math.atan2(along_slow[1], along_slow[0])
    c2 = math.cos(rot2)
    normal_t = np.cross(along_slow, along_fast)  # equals towards_poni for a proper basis
    rot1 = math.atan2(-along_fast[2] / c2, normal_t[2] / c2)
    dist = float(np.dot(corner_t, normal_t))
    in_plane = dist * normal_t - corner_t
    return Poni(
        dist_mm=dist,
        poni1_mm=float(np.dot(in_plane, along_slow)),
        poni2_mm=float(np.dot(in_plane, along_fast)),
        rot1_rad=rot1,
        rot2_rad=rot2,
        rot3_rad=rot3,
    )


def panel_from_position(
    *,
    distance_mm: float,
    beam_x_pxl: float,
    beam_y_pxl: float,
    pixel_size_mm: float,
    width_pxl: int,
    height_pxl: int,
    poni_rot1_rad: float = 0.0,
    poni_rot2_rad: float = 0.0,
    poni_rot3_rad: float = 0.0,
) -> Panel:
    """The panel of a Jungfraujoch-style detector position (beam centre, distance, PONI tilts).

    The PONI point is the beam-centre pixel and the PONI distance ``distance_mm``; untilted,
    the direct beam hits (beam_x_pxl, beam_y_pxl) at distance ``distance_mm``.
    """
    poni = Poni(
        dist_mm=distance_mm,
        poni1_mm=beam_y_pxl * pixel_size_mm,
        poni2_mm=beam_x_pxl * pixel_size_mm,
        rot1_rad=poni_rot1_rad,
        rot2_rad=poni_rot2_rad,
        rot3_rad=poni_rot3_rad,
    )
    return panel_from_poni(poni, pixel_size_mm, width_pxl, height_pxl)
