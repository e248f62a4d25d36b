"""Diffraction geometry: detector pixels ⇄ lab frame ⇄ reciprocal space, Ewald prediction.

Conventions (physics.md §0, §2.1), used by every function of this package:

* Lab frame = NeXus/McStas: z along the incident beam (downstream), y up, x = y × z.
  The incident wave vector is s0 = ẑ/λ; reciprocal vectors are in Å⁻¹ without 2π (|r| = 1/d).
* Arrays are indexed ``[slow, fast]`` = ``[y, x]``.
* Pixel coordinates are **continuous**: pixel index i covers [i, i+1), its centre is at
  i + 0.5, the outer corner of pixel (0, 0) is at (0, 0). ``beam_x_pxl``/``beam_y_pxl`` and
  every ``x_pxl``/``y_pxl`` in this package use this convention. (Spot lists on the wire and
  CXI peak lists use the index convention, continuous − 0.5; convert at that edge.)
* A panel is an origin O (lab position in mm of the outer corner of pixel (0, 0)) and unit
  vectors f̂ (fast, increasing x) and ŝ (slow, increasing y): X(x, y) = O + x·p·f̂ + y·p·ŝ.
  The jfsim default panel is f̂ = (−1, 0, 0), ŝ = (0, −1, 0), O = (bx·p, by·p, D).
* Tilts use pyFAI's PONI description (dist, poni1 along slow, poni2 along fast, rot1..3);
  jfsim takes the PONI point at the beam-centre pixel: poni1 = by·p, poni2 = bx·p.
* Angles are radians; the goniometer rotation φ is right-handed about the axis ê.
* Crystal: A = U·B (gemmi's B = fractionalisation matrixᵀ), r_h(φ) = R_ê(φ)·A·h.

Pure: no I/O. The renderer, the analysis and the truth checks share it.
"""

from __future__ import annotations

from jfsim.geometry.lattice import (
    b_matrix,
    cell_from_ub,
    direct_lattice_rows,
    random_orientation,
    refine_ub,
    rotation_matrix,
)
from jfsim.geometry.panel import Panel, Poni, panel_from_poni, panel_from_position, poni_from_panel
from jfsim.geometry.prediction import (
    Predicted,
    RotationPredictor,
    observable_miller_indices,
    panel_d_min_A,
    polarization_factor_of,
    predict_still,
)

__all__ = [
    "Panel",
    "Poni",
    "Predicted",
    "RotationPredictor",
    "b_matrix",
    "cell_from_ub",
    "direct_lattice_rows",
    "observable_miller_indices",
    "panel_d_min_A",
    "panel_from_poni",
    "panel_from_position",
    "polarization_factor_of",
    "poni_from_panel",
    "predict_still",
    "random_orientation",
    "refine_ub",
    "rotation_matrix",
]
