"""Expected diffuse background per pixel (photons), computed once per experiment.

b(pixel) = cos³α · P(ŝ1) · [air(q) + water(q) + ice(q)] + constant   (physics.md §2.7)

with q = 4π sinθ/λ (Å⁻¹, the 2π convention of azimuthal integration), α the incidence angle
on the panel (cos³α = relative solid angle), P the polarisation factor. Amplitudes are the
``Background`` values of the experiment, in photons per pixel per image:

* air scatter: ``air_scatter_photons · exp(−q / 0.3 Å⁻¹)`` (strongest at the beam);
* water ring: ``water_ring_photons · exp(−(q − q_w)² / 2σ_w²)`` at d = 3.7 Å
  (q_w = 1.698 Å⁻¹, vitrified water), σ_w = 0.2 Å⁻¹;
* ice rings (optional): hexagonal ice Ih, the 15 strongest rings of physics.md §2.7,
  ``ice_ring_photons`` × relative intensity / 100, Gaussian width σ_q = 0.01 Å⁻¹;
* constant: ``constant_photons`` on every pixel (not scaled by geometry).
"""

from __future__ import annotations

import math

import numpy as np

from jfsim.experiment import Background
from jfsim.geometry import Panel, polarization_factor_of

WATER_RING_D_A = 3.7
WATER_RING_SIGMA_Q_INVA = 0.2
AIR_SCATTER_DECAY_Q_INVA = 0.3
ICE_RING_SIGMA_Q_INVA = 0.01
#: Hexagonal ice Ih rings: (d in Å, relative powder intensity), physics.md §2.7.
ICE_RINGS = (
    (3.90, 55),
    (3.66, 18),
    (3.44, 100),
    (2.67, 76),
    (2.25, 29),
    (2.07, 51),
    (1.95, 22),
    (1.92, 43),
    (1.88, 42),
    (1.72, 34),
    (1.66, 31),
    (1.52, 25),
    (1.47, 23),
    (1.44, 43),
    (1.37, 54),
)
_ROWS_PER_BLOCK = 128


def q_of_d(d_A: float) -> float:
    """q = 2π/d (Å⁻¹)."""
    return 2.0 * math.pi / d_A


def background_image(
    background: Background, panel: Panel, wavelength_A: float, polarization_factor: float
) -> np.ndarray:
    """Expected background photons, float32 ``[height, width]`` (no noise, no mask)."""
    out = np.empty((panel.height_pxl, panel.width_pxl), dtype=np.float32)
    normal = panel.normal
    columns = np.arange(panel.width_pxl, dtype=np.float64) + 0.5
    for first in range(0, panel.height_pxl, _ROWS_PER_BLOCK):
        rows = np.arange(first, min(first + _ROWS_PER_BLOCK, panel.height_pxl)) + 0.5
        x, y = np.meshgrid(columns, rows)
        lab = panel.pixel_to_lab_mm(x, y)
        distance = np.linalg.norm(lab, axis=-1)
        unit = lab / distance[..., None]
        cos_alpha = np.abs(unit @ normal)
        theta = 0.5 * np.arccos(np.clip(unit[..., 2], -1.0, 1.0))
        q = 4.0 * math.pi * np.sin(theta) / wavelength_A
        diffuse = background.air_scatter_photons * np.exp(-q / AIR_SCATTER_DECAY_Q_INVA)
        diffuse += background.water_ring_photons * np.exp(
            -0.5 * ((q - q_of_d(WATER_RING_D_A)) / WATER_RING_SIGMA_Q_INVA) ** 2
        )
        if background.ice_rings:
            for d_A, relative in ICE_RINGS:
                diffuse += (background.ice_ring_photons * relative / 100.0) * np.exp(
                    -0.5 * ((q - q_of_d(d_A)) / ICE_RING_SIGMA_Q_INVA) ** 2
                )
        geometry = cos_alpha**3 * polarization_factor_of(unit, polarization_factor)
        out[first : first + rows.shape[0]] = geometry * diffuse + background.constant_photons
    return out
