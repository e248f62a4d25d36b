"""Jungfraujoch analysis fields made from ground truth (spots and lattice "as found").

The streamer and ``jfsim simulate`` put these in the image messages, marked with
``source = "jfsim-truth"`` so no consumer mistakes them for a real spot finder's output.
"""

from __future__ import annotations

import numpy as np

from jfsim.experiment import Experiment, RotationScan
from jfsim.geometry import direct_lattice_rows, rotation_matrix
from jfsim.image_truth import ImageTruth
from jfsim.series import ImageAnalysis

#: Reflections with fewer expected photons on the image are not reported as spots.
STRONG_SPOT_MIN_PHOTONS = 20.0


def analysis_from_truth(
    truth: ImageTruth,
    experiment: Experiment,
    *,
    min_photons: float = STRONG_SPOT_MIN_PHOTONS,
) -> ImageAnalysis:
    """Strong, unmasked reflections as a spot list (index convention: continuous − 0.5),
    brightest first (``jfsim.series`` keeps the ``max_spot_count`` brightest on the wire);
    the first lattice at this image's goniometer angle (rows a, b, c in Å) when the image
    has one."""
    table = truth.reflections
    strong = np.nonzero((table.intensity_photons >= min_photons) & ~table.masked)[0]
    order = strong[np.argsort(-table.intensity_photons[strong], kind="stable")]
    lattice = None
    if truth.n_lattices > 0:
        ub = truth.ub_matrices[0]
        scan = experiment.scan
        if isinstance(scan, RotationScan):
            middle_rad = scan.start_rad + (truth.image_id + 0.5) * scan.step_rad
            ub = rotation_matrix(scan.axis_vector, middle_rad) @ ub
        lattice = direct_lattice_rows(ub)
    return ImageAnalysis(
        spot_x_pxl=table.x_pxl[order] - 0.5,
        spot_y_pxl=table.y_pxl[order] - 0.5,
        spot_intensity=table.intensity_photons[order],
        spot_hkl=table.hkl[order],
        lattice_A=lattice,
        indexed=lattice is not None,
    )
