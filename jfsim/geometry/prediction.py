"""Where reflections land: Ewald-sphere prediction for rotation sweeps and for stills.

Rotation (physics.md §2.3-2.4): every reciprocal-lattice point crosses the Ewald sphere at
two angles φ_c per turn; its rocking curve is a Gaussian in φ of width σ_φ = σ/|ζ| with
σ² = mosaicity² + divergence², and an image covering [φ_lo, φ_hi] records the fraction
Φ((φ_hi − φ_c)/σ_φ) − Φ((φ_lo − φ_c)/σ_φ). Stills: partiality exp(−ε²/2σ_ε²) of the
excitation error ε = |s0 + r| − 1/λ with σ_ε² = (|r|σ_M)² + (|r|σ_div)² + (½λ|r|²·σ_λ/λ)²
+ (1/domain)². Spot positions are in continuous pixel coordinates (see the package doc).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import gemmi
import numpy as np

from jfsim.geometry.panel import Panel

#: Reflections closer than this to the rotation axis (|ζ| below it) are not predicted:
#: their rocking curves are too wide for a meaningful per-image partiality (physics.md §2.3).
MIN_ZETA = 0.02
_SQRT2 = math.sqrt(2.0)


#: Reflections recording less than this fraction of their intensity are not predicted.
MIN_PARTIALITY = 1e-3


@dataclass(frozen=True, slots=True)
class Predicted:
    """Reflections predicted on one image (structure of arrays, one row per reflection).

    ``phi_rad`` is the crossing angle (NaN for stills); ``excitation_error_invA`` is NaN for
    rotation data; ``lorentz`` is 1 for stills; ``polarization`` is the pyFAI-style factor.
    """

    hkl: np.ndarray
    x_pxl: np.ndarray
    y_pxl: np.ndarray
    phi_rad: np.ndarray
    excitation_error_invA: np.ndarray
    partiality: np.ndarray
    d_A: np.ndarray
    lorentz: np.ndarray
    polarization: np.ndarray

    def __len__(self) -> int:
        return int(self.hkl.shape[0])


def observable_miller_indices(
    cell: Sequence[float], space_group_number: int, d_min_A: float
) -> np.ndarray:
    """All Miller indices with d ≥ ``d_min_A`` that the space group allows (int32 ``(n, 3)``).

    Systematic absences and (0, 0, 0) are excluded (gemmi ``make_miller_array``).
    """
    space_group = gemmi.find_spacegroup_by_number(space_group_number)
    return np.asarray(
        gemmi.make_miller_array(gemmi.UnitCell(*cell), space_group, d_min_A, 0, False),
        dtype=np.int32,
    )


def panel_d_min_A(panel: Panel, wavelength_A: float) -> float:
    """Best resolution (Å) anywhere on the panel: the largest 2θ is at one of its corners."""
    corners_x = np.array([0.0, panel.width_pxl, 0.0, panel.width_pxl])
    corners_y = np.array([0.0, 0.0, panel.height_pxl, panel.height_pxl])
    lab = panel.pixel_to_lab_mm(corners_x, corners_y)
    cos_2theta = lab[:, 2] / np.linalg.norm(lab, axis=1)
    two_theta = float(np.max(np.arccos(np.clip(cos_2theta, -1.0, 1.0))))
    return wavelength_A / (2.0 * math.sin(two_theta / 2.0))


def polarization_factor_of(s1_unit: np.ndarray, polarization_factor: float) -> np.ndarray:
    """P = f(1 − (ŝ1·x̂)²) + (1 − f)(1 − (ŝ1·ŷ)²) with f = (1 + pf)/2 (pyFAI's pf)."""
    horizontal = 0.5 * (1.0 + polarization_factor)
    return horizontal * (1.0 - s1_unit[..., 0] ** 2) + (1.0 - horizontal) * (
        1.0 - s1_unit[..., 1] ** 2
    )


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(z / _SQRT2))


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.2e-7 (Numerical Recipes erfc Chebyshev fit), vectorised, no scipy needed."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (
        -z * z
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t
                        * (
                            0.27886807
                            + t
                            * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))
                        )
                    )
                )
            )
        )
    )
    erfc = t * np.exp(poly)
    erf: np.ndarray = np.where(x >= 0, 1.0 - erfc, erfc - 1.0)
    return erf


def _inside(panel: Panel, x: np.ndarray, y: np.ndarray, hits: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return hits & (x >= 0) & (x < panel.width_pxl) & (y >= 0) & (y < panel.height_pxl)


class RotationPredictor:
    """Crossing angles of every reflection of one crystal, computed once per sweep.

    ``predict(phi_lo, phi_hi)`` then selects the reflections recorded on one image.
    """

    def __init__(
        self,
        *,
        ub: np.ndarray,
        hkl: np.ndarray,
        axis: Sequence[float],
        wavelength_A: float,
        panel: Panel,
        mosaicity_rad: float,
        divergence_rad: float = 0.0,
        polarization_factor: float = 0.0,
    ) -> None:
        e = np.asarray(axis, dtype=np.float64)
        e = e / np.linalg.norm(e)
        s0 = np.array([0.0, 0.0, 1.0 / wavelength_A])
        r0 = np.asarray(hkl, dtype=np.float64) @ np.asarray(ub, dtype=np.float64).T
        r_par = np.outer(r0 @ e, e)
        r_perp = r0 - r_par
        r_cross = np.cross(e, r0)
        a = r_perp @ s0
        b = r_cross @ s0
        c = -0.5 * np.einsum("ij,ij->i", r0, r0) - r_par @ s0
        amplitude = np.hypot(a, b)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = c / amplitude
        reachable = np.abs(ratio) <= 1.0
        base = np.arctan2(b, a)
        spread = np.arccos(np.clip(ratio, -1.0, 1.0))
        phis = np.concatenate([base + spread, base - spread])[np.concatenate([reachable] * 2)]
        index = np.concatenate([np.nonzero(reachable)[0]] * 2)
        cos_phi, sin_phi = np.cos(phis)[:, None], np.sin(phis)[:, None]
        r_phi = r_par[index] + cos_phi * r_perp[index] + sin_phi * r_cross[index]
        s1 = s0 + r_phi
        s1_unit = s1 / np.linalg.norm(s1, axis=1, keepdims=True)
        x, y, hits = panel.ray_to_pixel(s1)
        cross = np.cross(s1_unit, np.array([0.0, 0.0, 1.0]))
        sin_2theta = np.linalg.norm(cross, axis=1)
        axis_component = cross @ e
        with np.errstate(invalid="ignore", divide="ignore"):
            zeta = axis_component / sin_2theta
        keep = _inside(panel, x, y, hits) & (np.abs(zeta) >= MIN_ZETA)
        self._hkl = np.asarray(hkl, dtype=np.int32)[index[keep]]
        self._phi_rad = phis[keep]
        self._x_pxl = x[keep]
        self._y_pxl = y[keep]
        self._d_A = 1.0 / np.linalg.norm(r0[index[keep]], axis=1)
        self._lorentz = 1.0 / np.abs(axis_component[keep])
        self._polarization = polarization_factor_of(s1_unit[keep], polarization_factor)
        width = math.hypot(mosaicity_rad, divergence_rad)
        self._sigma_phi_rad = np.maximum(width, 1e-9) / np.abs(zeta[keep])

    def __len__(self) -> int:
        return int(self._phi_rad.shape[0])

    def predict(
        self, phi_lo_rad: float, phi_hi_rad: float, *, min_partiality: float = MIN_PARTIALITY
    ) -> Predicted:
        """Reflections recorded while the crystal turns from ``phi_lo_rad`` to ``phi_hi_rad``.

        ``phi_rad`` of each row is the crossing angle nearest to the image (not wrapped to
        [0, 2π)), so the spot centroid in φ is that value.
        """
        lo, hi = min(phi_lo_rad, phi_hi_rad), max(phi_lo_rad, phi_hi_rad)
        middle = 0.5 * (lo + hi)
        turns = np.round((middle - self._phi_rad) / (2 * math.pi))
        phi = self._phi_rad + turns * 2 * math.pi
        near = np.abs(phi - middle) <= 0.5 * (hi - lo) + 6.0 * self._sigma_phi_rad
        sigma = self._sigma_phi_rad[near]
        fraction = _normal_cdf((hi - phi[near]) / sigma) - _normal_cdf((lo - phi[near]) / sigma)
        chosen = np.nonzero(near)[0][fraction >= min_partiality]
        fraction = fraction[fraction >= min_partiality]
        n = chosen.shape[0]
        return Predicted(
            hkl=self._hkl[chosen],
            x_pxl=self._x_pxl[chosen],
            y_pxl=self._y_pxl[chosen],
            phi_rad=phi[chosen],
            excitation_error_invA=np.full(n, np.nan),
            partiality=fraction,
            d_A=self._d_A[chosen],
            lorentz=self._lorentz[chosen],
            polarization=self._polarization[chosen],
        )


def predict_still(
    *,
    ub: np.ndarray,
    hkl: np.ndarray,
    wavelength_A: float,
    panel: Panel,
    mosaicity_rad: float,
    divergence_rad: float = 0.0,
    bandwidth_fraction: float = 0.0,
    domain_size_A: float = math.inf,
    polarization_factor: float = 0.0,
    min_partiality: float = MIN_PARTIALITY,
) -> Predicted:
    """Reflections excited on a still of a crystal with reciprocal matrix ``ub``."""
    s0 = np.array([0.0, 0.0, 1.0 / wavelength_A])
    r = np.asarray(hkl, dtype=np.float64) @ np.asarray(ub, dtype=np.float64).T
    r_len = np.linalg.norm(r, axis=1)
    s1 = s0 + r
    s1_len = np.linalg.norm(s1, axis=1)
    epsilon = s1_len - 1.0 / wavelength_A
    sigma_sq = (
        (r_len * mosaicity_rad) ** 2
        + (r_len * divergence_rad) ** 2
        + (0.5 * wavelength_A * r_len**2 * bandwidth_fraction) ** 2
        + (1.0 / domain_size_A) ** 2
    )
    sigma_sq = np.maximum(sigma_sq, 1e-18)
    excited = epsilon**2 <= -2.0 * sigma_sq * math.log(min_partiality)
    s1_unit = s1[excited] / s1_len[excited, None]
    x, y, hits = panel.ray_to_pixel(s1_unit)
    keep = np.nonzero(excited)[0][_inside(panel, x, y, hits)]
    inside = _inside(panel, x, y, hits)
    eps = epsilon[keep]
    return Predicted(
        hkl=np.asarray(hkl, dtype=np.int32)[keep],
        x_pxl=x[inside],
        y_pxl=y[inside],
        phi_rad=np.full(keep.shape[0], np.nan),
        excitation_error_invA=eps,
        partiality=np.exp(-0.5 * eps**2 / sigma_sq[keep]),
        d_A=1.0 / r_len[keep],
        lorentz=np.ones(keep.shape[0]),
        polarization=polarization_factor_of(s1_unit[inside], polarization_factor),
    )
