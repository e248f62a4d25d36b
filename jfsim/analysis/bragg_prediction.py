"""Where the reflections of an indexed lattice land on one image, and how much of each.

The analysis predicts from what the file says (the run's :class:`RunGeometry`: modules,
wavelength, polarisation, scan axis and angles) and what indexing found (an
:class:`ImageLattice`), never from the experiment that made the data. The physics is
:mod:`jfsim.geometry.prediction`'s, the simulator's own (physics.md §2.3–2.6): rotation
images record the fraction Φ((φ_hi − φ_c)/σ_φ) − Φ((φ_lo − φ_c)/σ_φ) of a reflection
crossing the Ewald sphere at φ_c, σ_φ = σ_M/|ζ|; stills the fraction exp(−ε²/2σ_ε²) of
their excitation error ε, σ_ε² = (|r|·σ_M)² + ρ² with ρ the crystal's profile radius.

Why a numba pre-selection: a lysozyme lattice to 1.6 Å has ~250 000 reflections, of which a
few hundred are near the Ewald sphere on an image. One compiled pass over the Miller-index
box keeps those that can be (a cheap bound, no trigonometry), and the exact prediction of
:mod:`jfsim.geometry.prediction` runs on those alone: a few milliseconds per JF4M image.

Positions are returned in index coordinates of the image (first pixel's centre at 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gemmi
import numba
import numpy as np
import numpy.typing as npt

from jfsim.analysis.errors import AnalysisInputError
from jfsim.analysis.geometry import DetectorModule, RunGeometry
from jfsim.geometry import (
    Predicted,
    RotationPredictor,
    direct_lattice_rows,
    panel_d_min_A,
)
from jfsim.geometry.prediction import MIN_ZETA

__all__ = [
    "MIN_PREDICTED_PARTIALITY",
    "BraggPrediction",
    "ImageLattice",
    "PredictedReflections",
    "detector_d_min_A",
    "image_exposure_rad",
]

#: Reflections recording less than this fraction of their intensity are not predicted
#: (the simulator's own cut-off, so that every rendered partial is looked at).
MIN_PREDICTED_PARTIALITY = 1e-3
#: Rocking-curve half-widths (σ_φ) beyond the image kept by the pre-selection; the exact
#: prediction keeps 6 (:class:`jfsim.geometry.RotationPredictor`).
_ROTATION_SIGMAS = 7.0
#: Extra angle (rad) of the pre-selection window, for the curvature of the crossing.
_ROTATION_MARGIN_RAD = math.radians(0.5)

#: Largest Miller-index box whose systematic absences are kept as a table (entries).
_ABSENCE_TABLE_MAX = 4_000_000

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ImageLattice:
    """One crystal lattice on one image, as indexing and refinement found it.

    Attributes:
        ub_invA: reciprocal UB (3×3, Å⁻¹, r = UB·h without 2π) in the lab frame at the
            *middle* of the image's exposure (for stills: the image's orientation). The
            rows of its inverse are the real-space vectors a, b, c (``latticeIndexed``).
        mosaicity_deg: rms mosaic spread; None: the integration settings' default.
        profile_radius_invA: rms radius of a reciprocal-lattice point (stills' excitation
            error beyond mosaicity); None: the settings' default.
        lattice: the lattice's number on the image (0 = first).
    """

    ub_invA: FloatArray
    mosaicity_deg: float | None = None
    profile_radius_invA: float | None = None
    lattice: int = 0


@dataclass(frozen=True, slots=True)
class PredictedReflections:
    """Reflections predicted on one image (index coordinates, degrees; see the module doc).

    ``phi_deg``/``delta_phi_deg``/``zeta`` are NaN for stills; ``lp`` is the Lorentz ×
    polarisation factor of the full reflection (L = 1 for stills).
    """

    hkl: npt.NDArray[np.int32]
    x_pxl: FloatArray
    y_pxl: FloatArray
    d_A: FloatArray
    phi_deg: FloatArray
    delta_phi_deg: FloatArray
    zeta: FloatArray
    lp: FloatArray
    partiality: FloatArray

    def __len__(self) -> int:
        return int(self.hkl.shape[0])


def image_exposure_rad(geometry: RunGeometry, image: int) -> tuple[float, float] | None:
    """(start, width) of image ``image``'s rotation in radians; None for stills.

    The width is the difference to the next image's angle (the last image takes the one
    before it), as NXmx stores only the start angle of each exposure.
    """
    angles = geometry.rotation_angles_rad
    if geometry.rotation_axis is None or angles is None or len(angles) < 2:
        return None
    if not 0 <= image < len(angles):
        raise AnalysisInputError(
            f"image {image}: the scan axis has angles for images 0..{len(angles) - 1} only"
        )
    after = image + 1 if image + 1 < len(angles) else image
    width = angles[after] - angles[after - 1]
    return angles[image], width


def detector_d_min_A(geometry: RunGeometry) -> float:
    """The best resolution anywhere on the detector (Å): the corner of the widest module."""
    return min(panel_d_min_A(module.panel, geometry.wavelength_A) for module in geometry.modules)


class BraggPrediction:
    """Predicts reflections of indexed lattices on the images of one run.

    Args:
        geometry: the run's geometry (from its NXmx file).
        space_group: reflections it forbids are not predicted (None: P1, none forbidden).
        d_min_A: highest resolution predicted (None: the detector's corners).
        max_hkl: largest |h|, |k|, |l| predicted (the broker's ``max_hkl``).
        mosaicity_deg, profile_radius_invA: used when a lattice brings no estimate.
    """

    def __init__(
        self,
        geometry: RunGeometry,
        *,
        space_group: gemmi.SpaceGroup | None = None,
        d_min_A: float | None = None,
        max_hkl: int = 100,
        mosaicity_deg: float = 0.1,
        profile_radius_invA: float = 1e-3,
    ) -> None:
        self.geometry = geometry
        self.operations = None if space_group is None else space_group.operations()
        #: gemmi's systematic absences over the box |h|, |k|, |l| ≤ limits, looked up per
        #: image instead of asked again (grown when an image's box is larger).
        self._absent: npt.NDArray[np.bool_] = np.zeros((1, 1, 1), dtype=bool)
        corner = detector_d_min_A(geometry)
        self.d_min_A = corner if d_min_A is None else max(d_min_A, corner)
        self.max_hkl = max_hkl
        self.mosaicity_deg = mosaicity_deg
        self.profile_radius_invA = profile_radius_invA
        factor = geometry.polarization_factor
        self._polarization_factor = 0.0 if factor is None else factor

    def predict(self, image: int, lattice: ImageLattice) -> PredictedReflections:
        """The reflections of ``lattice`` recorded on run image ``image``."""
        geometry = self.geometry
        ub = np.asarray(lattice.ub_invA, dtype=np.float64)
        if ub.shape != (3, 3) or not np.all(np.isfinite(ub)) or abs(np.linalg.det(ub)) < 1e-12:
            raise AnalysisInputError(f"image {image}: the lattice's UB matrix is not usable")
        mosaicity_rad = math.radians(
            self.mosaicity_deg if lattice.mosaicity_deg is None else lattice.mosaicity_deg
        )
        profile_radius = (
            self.profile_radius_invA
            if lattice.profile_radius_invA is None
            else lattice.profile_radius_invA
        )
        exposure = image_exposure_rad(geometry, image)
        candidates, box = self._candidates(ub, exposure, mosaicity_rad, profile_radius)
        if self.operations is not None and len(candidates):
            candidates = candidates[~self._systematically_absent(candidates, box)]
        parts = []
        for module in geometry.modules:
            if exposure is None:
                parts.append(
                    self._still_on_module(ub, candidates, module, mosaicity_rad, profile_radius)
                )
                continue
            width = exposure[1]
            predicted = RotationPredictor(
                ub=ub,
                hkl=candidates,
                axis=geometry.rotation_axis or (1.0, 0.0, 0.0),
                wavelength_A=geometry.wavelength_A,
                panel=module.panel,
                mosaicity_rad=mosaicity_rad,
                polarization_factor=self._polarization_factor,
            ).predict(-0.5 * width, 0.5 * width, min_partiality=MIN_PREDICTED_PARTIALITY)
            parts.append(self._on_image(predicted, module.origin_col, module.origin_row, exposure))
        return _concatenate(parts)

    def _systematically_absent(
        self, hkl: npt.NDArray[np.int32], box: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        """gemmi's ``systematic_absences`` of ``hkl`` (|h|, |k|, |l| ≤ ``box``), from a
        table of the Miller-index box: asking gemmi for every image's few thousand
        candidates cost a third of the prediction. Threads share the table: it is replaced
        whole, never changed."""
        assert self.operations is not None
        absent = self._absent
        limits = (np.asarray(absent.shape, dtype=np.int64) - 1) // 2
        if np.any(box > limits):
            limits = np.maximum(limits, box + 2)  # room for the next images' boxes
            if np.prod(2 * limits + 1) > _ABSENCE_TABLE_MAX:
                return np.asarray(self.operations.systematic_absences(hkl), dtype=bool)
            axes = [np.arange(-limit, limit + 1, dtype=np.int32) for limit in limits]
            every = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
            absent = np.asarray(self.operations.systematic_absences(every), dtype=bool)
            absent = absent.reshape([2 * limit + 1 for limit in limits])
            self._absent = absent
        _, cols, layers = absent.shape
        flat = ((hkl[:, 0] + limits[0]) * cols + hkl[:, 1] + limits[1]) * layers
        found: npt.NDArray[np.bool_] = absent.ravel()[flat + hkl[:, 2] + limits[2]]
        return found

    def _candidates(
        self,
        ub: FloatArray,
        exposure: tuple[float, float] | None,
        mosaicity_rad: float,
        profile_radius_invA: float,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """Miller indices that may be recorded on the image (a superset; see the module),
        and the largest |h|, |k|, |l| searched."""
        lengths = np.linalg.norm(direct_lattice_rows(ub), axis=1)
        limits = np.minimum(np.floor(lengths / self.d_min_A), self.max_hkl).astype(np.int64)
        box = int(np.prod(2 * limits + 1))
        found = np.empty((box, 3), dtype=np.int32)
        axis = np.asarray(self.geometry.rotation_axis or (1.0, 0.0, 0.0), dtype=np.float64)
        axis = axis / np.linalg.norm(axis)
        count = _near_ewald_sphere(
            ub,
            int(limits[0]),
            int(limits[1]),
            int(limits[2]),
            1.0 / self.d_min_A**2,
            1.0 / self.geometry.wavelength_A,
            exposure is not None,
            axis,
            0.0 if exposure is None else 0.5 * abs(exposure[1]) + _ROTATION_MARGIN_RAD,
            _ROTATION_SIGMAS * mosaicity_rad,
            MIN_ZETA,
            profile_radius_invA**2,
            mosaicity_rad**2,
            math.sqrt(-2.0 * math.log(MIN_PREDICTED_PARTIALITY)) + 0.5,
            found,
        )
        return found[:count].copy(), limits

    def _still_on_module(
        self,
        ub: FloatArray,
        hkl: npt.NDArray[np.int32],
        module: DetectorModule,
        mosaicity_rad: float,
        profile_radius_invA: float,
    ) -> PredictedReflections:
        """:func:`jfsim.geometry.predict_still` of ``hkl`` on one module, in image index
        coordinates, as one compiled pass (the numpy version spent more on its two dozen
        array operations than on arithmetic); the same formulas in the same order, equal
        to rounding (``tests/analysis/test_bragg_prediction.py``)."""
        panel = module.panel
        domain_size_A = 1.0 / profile_radius_invA if profile_radius_invA > 0 else math.inf
        n = hkl.shape[0]
        rows = np.empty(n, dtype=np.int64)
        columns = np.empty((5, n), dtype=np.float64)
        count = _predict_stills(
            np.ascontiguousarray(ub, dtype=np.float64),
            hkl,
            1.0 / self.geometry.wavelength_A,
            mosaicity_rad,
            (1.0 / domain_size_A) ** 2,
            math.log(MIN_PREDICTED_PARTIALITY),
            np.ascontiguousarray(np.linalg.inv(panel.basis_mm())),
            float(panel.width_pxl),
            float(panel.height_pxl),
            0.5 * (1.0 + self._polarization_factor),
            float(module.origin_col),
            float(module.origin_row),
            rows,
            columns,
        )
        x, y, d, partiality, polarization = (column[:count].copy() for column in columns)
        nan = np.full(count, np.nan)
        return PredictedReflections(
            hkl=np.ascontiguousarray(hkl[rows[:count]], dtype=np.int32),
            x_pxl=x,
            y_pxl=y,
            d_A=d,
            phi_deg=nan,
            delta_phi_deg=nan,
            zeta=nan,
            lp=polarization,
            partiality=partiality,
        )

    def _on_image(
        self,
        predicted: Predicted,
        origin_col: int,
        origin_row: int,
        exposure: tuple[float, float],
    ) -> PredictedReflections:
        """Rotation predictions: module coordinates → image index coordinates; ζ, Δφ and
        L·P of each row."""
        axis = np.asarray(self.geometry.rotation_axis, dtype=np.float64)
        delta = np.degrees(predicted.phi_rad)
        phi = np.degrees(exposure[0] + 0.5 * exposure[1]) + delta
        zeta = _zeta(predicted, axis / np.linalg.norm(axis), self.geometry.wavelength_A)
        lp = predicted.lorentz * predicted.polarization
        return PredictedReflections(
            hkl=np.asarray(predicted.hkl, dtype=np.int32),
            x_pxl=predicted.x_pxl + origin_col - 0.5,
            y_pxl=predicted.y_pxl + origin_row - 0.5,
            d_A=predicted.d_A,
            phi_deg=phi,
            delta_phi_deg=delta,
            zeta=zeta,
            lp=lp,
            partiality=predicted.partiality,
        )


def _zeta(predicted: Predicted, axis: FloatArray, wavelength_A: float) -> FloatArray:
    """Kabsch's ζ = ê·(ŝ1 × ŝ0)/|ŝ1 × ŝ0| of rotation predictions, from d and L:
    |ê·(ŝ1 × ŝ0)| = 1/L and |ŝ1 × ŝ0| = sin 2θ; the sign is that of the crossing's
    direction, which L does not keep, so ζ is reported as |ζ| (entering and exiting
    reflections alike)."""
    sin_theta = np.clip(wavelength_A / (2.0 * predicted.d_A), 0.0, 1.0)
    sin_two_theta = 2.0 * sin_theta * np.sqrt(1.0 - sin_theta**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        zeta: FloatArray = (1.0 / predicted.lorentz) / sin_two_theta
    return zeta


def _concatenate(parts: list[PredictedReflections]) -> PredictedReflections:
    if len(parts) == 1:
        return parts[0]
    names = PredictedReflections.__slots__
    return PredictedReflections(*(np.concatenate([getattr(p, n) for p in parts]) for n in names))


@numba.njit(nogil=True, cache=True)
def _near_ewald_sphere(  # type: ignore[no-untyped-def]  # numba kernel
    ub,
    h_max,
    k_max,
    l_max,
    inv_d_min_sq,
    inv_wavelength,
    rotation,
    axis,
    half_window_rad,
    rocking_rad,
    min_zeta,
    profile_radius_sq,
    mosaicity_sq,
    still_sigmas,
    found,
):
    """Miller indices of the box that may be recorded; returns how many were written.

    Rotation (UB at the middle of the image): f(φ) = a cos φ + b sin φ − c vanishes at a
    crossing (physics.md §2.3) and |f(φ) − f(0)| ≤ A·|φ|(1 + |φ|/2) with A = √(a² + b²),
    so no crossing lies within the window W if f(0)² > A²·W²(1 + W/2)². W is half the
    exposure plus the rocking width σ_M/|ζ| times a few, ζ taken at φ = 0. Stills: the
    excitation error ε = |s0 + r| − 1/λ within ``still_sigmas`` σ_ε.
    """
    ex, ey, ez = axis[0], axis[1], axis[2]
    # Stills: |s0 + r| is a quadratic in l along a row (h, k), so the l that can pass the
    # test lie in at most two runs, where |ε| ≤ the largest σ_ε times ``still_sigmas``;
    # only those are visited (one l of margin either side: the test below decides).
    cx, cy, cz = ub[0, 2], ub[1, 2], ub[2, 2]
    quadratic = cx * cx + cy * cy + cz * cz
    band = still_sigmas * math.sqrt(profile_radius_sq + inv_d_min_sq * mosaicity_sq)
    outer_sq = (inv_wavelength + band) ** 2
    inner_sq = (inv_wavelength - band) ** 2 if inv_wavelength > band else -1.0
    count = 0
    for h in range(-h_max, h_max + 1):
        for k in range(-k_max, k_max + 1):
            first_run = (-l_max, l_max)
            second_run = (1, 0)  # empty
            if not rotation:
                bx = ub[0, 0] * h + ub[0, 1] * k
                by = ub[1, 0] * h + ub[1, 1] * k
                bz = ub[2, 0] * h + ub[2, 1] * k + inv_wavelength
                linear = 2.0 * (bx * cx + by * cy + bz * cz)
                constant = bx * bx + by * by + bz * bz
                outer = linear * linear - 4.0 * quadratic * (constant - outer_sq)
                if outer < 0.0:
                    continue
                root = math.sqrt(outer)
                low = math.floor((-linear - root) / (2.0 * quadratic)) - 1
                high = math.ceil((-linear + root) / (2.0 * quadratic)) + 1
                first_run = (max(low, -l_max), min(high, l_max))
                inner = linear * linear - 4.0 * quadratic * (constant - inner_sq)
                if inner_sq > 0.0 and inner > 0.0:
                    root = math.sqrt(inner)
                    hole_low = math.ceil((-linear - root) / (2.0 * quadratic)) + 1
                    hole_high = math.floor((-linear + root) / (2.0 * quadratic)) - 1
                    if hole_low <= hole_high:
                        first_run = (max(low, -l_max), min(hole_low - 1, l_max))
                        second_run = (max(hole_high + 1, -l_max), min(high, l_max))
            for run in range(2):
                first, last = first_run if run == 0 else second_run
                for ll in range(first, last + 1):
                    if h == 0 and k == 0 and ll == 0:
                        continue
                    rx = ub[0, 0] * h + ub[0, 1] * k + ub[0, 2] * ll
                    ry = ub[1, 0] * h + ub[1, 1] * k + ub[1, 2] * ll
                    rz = ub[2, 0] * h + ub[2, 1] * k + ub[2, 2] * ll
                    r_sq = rx * rx + ry * ry + rz * rz
                    if r_sq > inv_d_min_sq:
                        continue
                    if rotation:
                        r_par = rx * ex + ry * ey + rz * ez
                        a = inv_wavelength * (rz - r_par * ez)
                        b = inv_wavelength * (ex * ry - ey * rx)
                        f0 = inv_wavelength * rz + 0.5 * r_sq  # a − c = s0·r + |r|²/2
                        across = math.sqrt(rx * rx + ry * ry)
                        zeta = abs(ex * ry - ey * rx) / across if across > 0.0 else 0.0
                        window = half_window_rad + rocking_rad / max(zeta, min_zeta)
                        bound = window * (1.0 + 0.5 * window)
                        if f0 * f0 > (a * a + b * b) * bound * bound:
                            continue
                    else:
                        sz = rz + inv_wavelength
                        epsilon = math.sqrt(rx * rx + ry * ry + sz * sz) - inv_wavelength
                        sigma_sq = profile_radius_sq + r_sq * mosaicity_sq
                        if epsilon * epsilon > still_sigmas * still_sigmas * sigma_sq:
                            continue
                    found[count, 0] = h
                    found[count, 1] = k
                    found[count, 2] = ll
                    count += 1
    return count


@numba.njit(nogil=True, cache=True)
def _predict_stills(  # type: ignore[no-untyped-def]  # numba kernel
    ub,
    hkl,
    inv_wavelength,
    mosaicity_rad,
    inverse_domain_sq,
    log_min_partiality,
    lab_to_panel,
    width_pxl,
    height_pxl,
    horizontal,
    origin_col,
    origin_row,
    rows,
    columns,
):
    """:func:`jfsim.geometry.predict_still` (no divergence, no bandwidth) row by row: the
    excited reflections of ``hkl`` that land on the panel. Writes their row numbers in
    ``hkl`` to ``rows`` and x, y (image index coordinates), d, partiality and polarisation
    to ``columns``; returns how many."""
    count = 0
    for i in range(hkl.shape[0]):
        h, k, ll = hkl[i, 0], hkl[i, 1], hkl[i, 2]
        rx = h * ub[0, 0] + k * ub[0, 1] + ll * ub[0, 2]
        ry = h * ub[1, 0] + k * ub[1, 1] + ll * ub[1, 2]
        rz = h * ub[2, 0] + k * ub[2, 1] + ll * ub[2, 2]
        r_len = math.sqrt(rx * rx + ry * ry + rz * rz)
        sz = inv_wavelength + rz
        s1_len = math.sqrt(rx * rx + ry * ry + sz * sz)
        epsilon = s1_len - inv_wavelength
        sigma_sq = max((r_len * mosaicity_rad) ** 2 + inverse_domain_sq, 1e-18)
        if not epsilon**2 <= -2.0 * sigma_sq * log_min_partiality:
            continue
        ux, uy, uz = rx / s1_len, ry / s1_len, sz / s1_len
        u = ux * lab_to_panel[0, 0] + uy * lab_to_panel[0, 1] + uz * lab_to_panel[0, 2]
        v = ux * lab_to_panel[1, 0] + uy * lab_to_panel[1, 1] + uz * lab_to_panel[1, 2]
        w = ux * lab_to_panel[2, 0] + uy * lab_to_panel[2, 1] + uz * lab_to_panel[2, 2]
        if not w > 1e-12:
            continue
        x = u / w
        y = v / w
        if not (0.0 <= x < width_pxl and 0.0 <= y < height_pxl):
            continue
        rows[count] = i
        columns[0, count] = x + origin_col - 0.5
        columns[1, count] = y + origin_row - 0.5
        columns[2, count] = 1.0 / r_len
        columns[3, count] = math.exp(-0.5 * epsilon**2 / sigma_sq)
        columns[4, count] = horizontal * (1.0 - ux**2) + (1.0 - horizontal) * (1.0 - uy**2)
        count += 1
    return count
