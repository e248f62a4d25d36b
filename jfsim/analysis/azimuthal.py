"""Azimuthal integration into q (and φ) bins (seed 001 §4.3, ``AzimIntSettings``).

Bins: ``q_spacing`` wide from ``low_q_recipA`` up to ``high_q_recipA`` (or the largest q
on the detector), times ``azimuthal_bins`` equal φ sectors from φ = 0 (lab x, see
:mod:`jfsim.analysis.geometry`). A pixel belongs to the bin of its centre (no pixel
splitting). The pixel → bin map is computed once per run (:func:`azimuthal_plan`).

Per bin and image, over the viable pixels (sensitive, not error, not saturated):

* ``image`` = Σ I / Σ C, with C = Ω·P the pixel's correction (solid angle and/or
  polarisation as the settings ask): the corrected mean intensity, pyFAI's estimator
  (``integrate1d`` without pixel splitting divides the summed signal by the summed
  normalisation), NaN for an empty bin;
* ``image_std`` = the standard deviation of the raw values in the bin, divided by the mean
  correction Σ C / n;
* ``image_count`` = n, the number of viable pixels.

Engines visit only non-zero pixels and accumulate integers (Σ I, Σ I², and the pixels an
image loses to error or saturation, with their Σ C): n and Σ C follow from the run's static
sums, and CPU and GPU results agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from jfjoch_client.models.azim_int_settings import AzimIntSettings

from jfsim.analysis.errors import SettingsError
from jfsim.analysis.geometry import PixelMaps
from jfsim.analysis.primitives import Primitives

__all__ = [
    "AZ_LOST",
    "AZ_SUM",
    "AZ_SUM_SQ",
    "AzimuthalPlan",
    "AzimuthalProfile",
    "azimuthal_plan",
    "azimuthal_profile_from",
    "build_azimuthal_functions",
]

#: Columns of the int64 ``[n_bins, 3]`` accumulator.
AZ_SUM, AZ_SUM_SQ, AZ_LOST = 0, 1, 2
#: Largest number of bins (the int32 bin map and memory per image).
MAX_BINS = 1 << 22


@dataclass(frozen=True, slots=True)
class AzimuthalPlan:
    """Everything fixed per run.

    Attributes:
        bin_map: int32 ``[H, W]``: bin index φ_bin·n_q + q_bin, −1 for masked pixels and
            pixels outside the q range.
        correction: float32 ``[H, W]``: C = Ω·P per pixel (1 where a correction is off).
        n_q, n_phi: bins along q and φ.
        bin_to_q_recipA, bin_to_two_theta_deg, bin_to_phi_deg: ``[n_phi, n_q]`` bin centres.
        correction_sum: float64 ``[n_bins]``: Σ C over the sensitive pixels of each bin.
        pixel_count: int64 ``[n_bins]``: the sensitive pixels of each bin.
    """

    bin_map: npt.NDArray[np.int32]
    correction: npt.NDArray[np.float32]
    n_q: int
    n_phi: int
    bin_to_q_recipA: npt.NDArray[np.float64]
    bin_to_two_theta_deg: npt.NDArray[np.float64]
    bin_to_phi_deg: npt.NDArray[np.float64]
    correction_sum: npt.NDArray[np.float64]
    pixel_count: npt.NDArray[np.int64]

    @property
    def n_bins(self) -> int:
        return self.n_q * self.n_phi

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_phi, n_q)``, the shape of each image's profile."""
        return (self.n_phi, self.n_q)


def azimuthal_plan(
    settings: AzimIntSettings,
    maps: PixelMaps,
    sensitive: npt.NDArray[np.bool_],
    wavelength_A: float,
) -> AzimuthalPlan:
    """Bins, pixel → bin map and corrections for one run."""
    low_q = float(settings.low_q_recip_a)
    spacing = float(settings.q_spacing)
    n_phi = int(settings.azimuthal_bins or 1)
    q = maps.q_recipA
    usable = sensitive & np.isfinite(q)
    if not usable.any():
        raise SettingsError("azim_int: no sensitive pixel: nothing to integrate")
    if settings.high_q_recip_a is not None:
        high_q = float(settings.high_q_recip_a)
        n_q = max(1, math.ceil((high_q - low_q) / spacing - 1e-9))  # bins end at high_q
    else:
        high_q = float(np.max(q[usable]))
        n_q = math.floor((high_q - low_q) / spacing) + 1  # the last bin holds the corner
    if high_q <= low_q:
        raise SettingsError(
            f"azim_int.low_q_recipA {low_q} is beyond the largest q {high_q:.4g} Å⁻¹"
        )
    if n_q * n_phi > MAX_BINS:
        raise SettingsError(
            f"azim_int: {n_q} q bins x {n_phi} phi bins exceed {MAX_BINS}; raise q_spacing"
        )
    with np.errstate(invalid="ignore"):
        bins = np.floor((q - low_q) / spacing)
        in_range = usable & (bins >= 0) & (bins < n_q)
        if n_phi > 1:  # φ is finite wherever q is
            phi_bin = np.floor(maps.phi_rad.astype(np.float64) / (2.0 * math.pi / n_phi))
            bins += n_q * np.clip(phi_bin, 0, n_phi - 1)
    bin_map = np.where(in_range, bins, -1).astype(np.int32)
    correction = np.ones(q.shape, dtype=np.float32)
    if settings.solid_angle_corr:
        correction *= maps.solid_angle
    if settings.polarization_corr:
        correction *= maps.polarization
    n_bins = n_q * n_phi
    inside = bin_map >= 0
    correction_sum = np.bincount(
        bin_map[inside], weights=correction[inside].astype(np.float64), minlength=n_bins
    ).astype(np.float64)
    pixel_count = np.bincount(bin_map[inside], minlength=n_bins).astype(np.int64)
    q_centres = low_q + (np.arange(n_q) + 0.5) * spacing
    phi_centres_deg = (np.arange(n_phi) + 0.5) * 360.0 / n_phi
    sin_theta = np.clip(q_centres * wavelength_A / (4.0 * math.pi), -1.0, 1.0)
    two_theta_deg = np.degrees(2.0 * np.arcsin(sin_theta))
    return AzimuthalPlan(
        bin_map=bin_map,
        correction=correction,
        n_q=n_q,
        n_phi=n_phi,
        bin_to_q_recipA=np.tile(q_centres, (n_phi, 1)),
        bin_to_two_theta_deg=np.tile(two_theta_deg, (n_phi, 1)),
        bin_to_phi_deg=np.repeat(phi_centres_deg[:, None], n_q, axis=1),
        correction_sum=correction_sum,
        pixel_count=pixel_count,
    )


def build_azimuthal_functions(primitives: Primitives) -> Any:
    """``bin_pixel(sums, lost_correction, bin_index, value, viable, correction)`` compiled
    for one engine, for a non-zero pixel: a viable pixel adds to its bin; a sensitive pixel
    that is not viable in this image leaves the bin's pixel count and normalisation."""
    add = primitives.add

    def bin_pixel(sums, lost_correction, bin_index, value, viable, correction):  # type: ignore[no-untyped-def]
        if bin_index < 0:
            return
        if viable:
            count = np.int64(value)
            add(sums, (bin_index, AZ_SUM), count)
            add(sums, (bin_index, AZ_SUM_SQ), count * count)
        else:
            add(sums, (bin_index, AZ_LOST), 1)
            add(lost_correction, bin_index, np.float64(correction))

    return primitives.compile(bin_pixel)


@dataclass(frozen=True, slots=True)
class AzimuthalProfile:
    """One image's profile, each ``[n_phi, n_q]`` (see the module docstring)."""

    mean: npt.NDArray[np.float32]
    std: npt.NDArray[np.float32]
    count: npt.NDArray[np.float32]


def azimuthal_profile_from(
    plan: AzimuthalPlan, sums: npt.NDArray[np.int64], lost_correction: npt.NDArray[np.float64]
) -> AzimuthalProfile:
    """The profile from one image's accumulators."""
    count = (plan.pixel_count - sums[:, AZ_LOST]).astype(np.float64)
    total = sums[:, AZ_SUM].astype(np.float64)
    squares = sums[:, AZ_SUM_SQ].astype(np.float64)
    correction = plan.correction_sum - lost_correction
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / correction, np.nan)
        raw_mean = total / count
        raw_std = np.sqrt(np.maximum(squares / count - raw_mean * raw_mean, 0.0))
        std = np.where(count > 0, raw_std * count / correction, np.nan)
    shape = plan.shape
    return AzimuthalProfile(
        mean=mean.reshape(shape).astype(np.float32),
        std=std.reshape(shape).astype(np.float32),
        count=count.reshape(shape).astype(np.float32),
    )
