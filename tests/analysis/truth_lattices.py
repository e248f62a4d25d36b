"""Integrate a run with the lattices its truth file states, as indexing would find them:
the reflection steps tested on their own (prediction, integration, scaling, merging)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jfsim.analysis.bragg_prediction import ImageLattice, image_exposure_rad
from jfsim.analysis.frames import FrameReader
from jfsim.analysis.integration import IntegrationPlan, integrate_image
from jfsim.analysis.nxmx_run import NxmxRun
from jfsim.analysis.reflections import IntegratedReflections
from jfsim.geometry import rotation_matrix
from jfsim.truth import read_truth


def truth_lattices(run: NxmxRun, truth_path: Path, image: int) -> list[ImageLattice]:
    """The true lattices of run image ``image``, at the middle of its exposure."""
    truth = read_truth(truth_path)
    lattices = []
    exposure = image_exposure_rad(run.geometry, image)
    for number, ub in enumerate(truth.ub_matrix[image]):
        if not np.isfinite(ub).all():
            continue
        if exposure is not None:
            axis = run.geometry.rotation_axis
            assert axis is not None
            ub = rotation_matrix(axis, exposure[0] + 0.5 * exposure[1]) @ ub
        lattices.append(ImageLattice(ub, lattice=number))
    return lattices


def integrate_with_truth(
    run: NxmxRun, plan: IntegrationPlan, truth_path: Path, images: range
) -> IntegratedReflections:
    """Every image of ``images`` integrated with its true lattices."""
    tables = []
    with FrameReader(run) as reader:
        for image in images:
            pixels = reader.read(image).pixels
            lattices = truth_lattices(run, truth_path, image)
            tables.append(integrate_image(pixels, plan, image, lattices))
    return IntegratedReflections.concatenate(tables)
