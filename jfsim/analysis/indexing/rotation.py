"""Two-pass rotation indexing (``-R[=N]``, seed 003): one lattice for the whole sweep.

First pass: the spots of the first N images, each rotated back to φ = 0 by its image's
goniometer angle, are indexed as one wedge — a 3-D sample of reciprocal space, which is
what de novo indexing needs — by the run's algorithm (FFT, or the known-cell search with
``-C``), put in its setting and refined against every spot of the wedge (each predicted
at its own image's angle). Second pass: every image is indexed against that lattice
(:class:`jfsim.analysis.indexing.ImageIndexer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from jfsim.analysis.indexing.engines import ScoringEngine
from jfsim.analysis.indexing.indexer import IndexingPlan, RunLattice, find_lattice, refine
from jfsim.analysis.indexing.reciprocal import image_frame, scattering_vectors
from jfsim.analysis.indexing.solution import assign
from jfsim.analysis.spot_finding import Spots

__all__ = ["WedgeResult", "index_wedge"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class WedgeResult:
    """The first pass: the run's lattice (None when it failed, with the step and a
    sentence for the user), and how many spots of how many images it saw and indexed."""

    run_lattice: RunLattice | None
    images: int
    spots: int
    indexed_spots: int = 0
    failure: str | None = None
    message: str = ""


def index_wedge(
    spot_lists: Sequence[tuple[int, Spots]], plan: IndexingPlan, engine: ScoringEngine
) -> WedgeResult:
    """Index the spots of images ``(image_number, spots)`` as one wedge."""
    xs, ys, rotations = [], [], []
    for number, spots in spot_lists:
        usable = np.ones(len(spots), dtype=bool) if plan.index_ice_rings else ~spots.ice_ring
        xs.append(spots.x[usable])
        ys.append(spots.y[usable])
        rotation = image_frame(plan.geometry, number).rotation
        rotations.append(np.broadcast_to(rotation, (int(usable.sum()), 3, 3)))
    x = np.concatenate(xs) if xs else np.zeros(0)
    y = np.concatenate(ys) if ys else np.zeros(0)
    turns = np.concatenate(rotations) if rotations else np.zeros((0, 3, 3))
    images = len(spot_lists)
    if x.size < plan.min_spots:
        return WedgeResult(
            None, images, int(x.size), failure="too_few_spots",
            message=f"{x.size} spots in the first {images} images: too few to index the sweep",
        )  # fmt: skip
    r_lab = scattering_vectors(plan.geometry, x, y)
    r0 = np.einsum("nji,nj->ni", turns, r_lab)  # back to φ = 0: Qᵀ·r
    found, failure = find_lattice(r0, plan, engine)
    if found is None:
        why = {
            "no_lattice": "no lattice fits them",
            "cell_mismatch": "the lattice found does not match the unit cell given (-C)",
        }.get(str(failure), str(failure))
        return WedgeResult(
            None, images, int(x.size), failure=failure,
            message=f"{x.size} spots of the first {images} images: {why}",
        )  # fmt: skip
    lattice, beam_shift = refine(found, x, y, plan, rotations=turns)
    r0 = np.einsum(
        "nji,nj->ni", turns, scattering_vectors(plan.geometry, x, y, beam_shift_pxl=beam_shift)
    )
    indexed = assign(lattice, r0, plan.tolerance, plan.geometry.wavelength_A).n_indexed
    cell = ", ".join(f"{v:.2f}" for v in lattice.cell)
    return WedgeResult(
        RunLattice(lattice, beam_shift),
        images,
        int(x.size),
        indexed,
        message=(
            f"sweep lattice {lattice.bravais} ({cell}) from {indexed} of {x.size} spots of "
            f"the first {images} images"
        ),
    )
