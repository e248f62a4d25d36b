"""One image's indexing result: the lattice, each spot's Miller indices, and why an image
did not index (seed 001 §4.1).

:func:`assign` gives every spot its nearest Miller indices under a lattice, flags those
within the tolerance as indexed and measures their distance from the Ewald sphere
(``peakDistEwaldSphere``); the per-image numbers follow from those spots:

* ``profile_radius_invA``: the root-mean-square excitation error of the indexed spots
  (Å⁻¹), the radius of the reciprocal-lattice points that the still recorded;
* ``resolution_estimate_A``: d of the highest-resolution indexed spot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from jfsim.analysis.indexing.lattice import Lattice
from jfsim.analysis.indexing.reciprocal import excitation_errors, resolution_A

__all__ = ["FAILURE_STEPS", "ImageIndexing", "SpotAssignment", "assign"]

FloatArray = npt.NDArray[np.float64]

#: Why an image did not index, in pipeline order (the summary counts each):
#: too few spots to try; no lattice found; a lattice unlike the reference cell (-C);
#: a lattice that indexes fewer than ``viable_cell_min_spots`` spots.
FAILURE_STEPS = ("too_few_spots", "no_lattice", "cell_mismatch", "too_few_indexed")


@dataclass(frozen=True)
class SpotAssignment:
    """Per spot, in the spot list's order: ``hkl`` int32 ``(n, 3)``, ``indexed`` bool,
    ``excitation_error_invA`` (NaN where not indexed)."""

    hkl: npt.NDArray[np.int32]
    indexed: npt.NDArray[np.bool_]
    excitation_error_invA: FloatArray

    @property
    def n_indexed(self) -> int:
        return int(self.indexed.sum())


@dataclass(frozen=True)
class ImageIndexing:
    """The indexing result of one image.

    Attributes:
        lattice: the lattice in the lab frame of this image (rotation data: turned to the
            middle of its exposure), None when the image did not index.
        failure: the step at which it failed (one of :data:`FAILURE_STEPS`), or None.
        spots: the assignment of every spot (None when the image did not index).
        profile_radius_invA, resolution_estimate_A: see the module docstring.
        beam_shift_pxl: refined beam-centre correction (x, y pixels).
        algorithm: ``ffbidx``, ``fft`` or ``rotation`` (two-pass: the run's lattice).
        engine: which engine scored the candidates.
        indexing_s, refinement_s: seconds finding the lattice and refining it (seed 001
            §4.6 ``indexingTime``, ``refinementTime``).
    """

    lattice: Lattice | None
    failure: str | None = None
    spots: SpotAssignment | None = None
    profile_radius_invA: float = float("nan")
    resolution_estimate_A: float = float("nan")
    beam_shift_pxl: tuple[float, float] = (0.0, 0.0)
    algorithm: str = ""
    engine: str = ""
    indexing_s: float = field(default=0.0, compare=False)
    refinement_s: float = field(default=0.0, compare=False)

    @property
    def indexed(self) -> bool:
        return self.lattice is not None and self.failure is None

    @property
    def n_indexed(self) -> int:
        return 0 if self.spots is None else self.spots.n_indexed


def assign(
    lattice: Lattice, r_invA: FloatArray, tolerance: float, wavelength_A: float
) -> SpotAssignment:
    """Miller indices of the spots with scattering vectors ``r_invA`` (lab frame of the
    lattice; NaN rows never index)."""
    fractional = r_invA @ lattice.real_space_A.T
    finite = np.all(np.isfinite(fractional), axis=1)
    nearest = np.where(finite[:, None], np.rint(np.nan_to_num(fractional)), 0.0)
    indexed = (
        finite
        & np.all(np.abs(np.nan_to_num(fractional) - nearest) < tolerance, axis=1)
        & np.any(nearest != 0, axis=1)
    )
    excitation = np.full(r_invA.shape[0], np.nan)
    if indexed.any():
        excitation[indexed] = excitation_errors(
            lattice.reciprocal_invA, nearest[indexed], wavelength_A
        )
    return SpotAssignment(nearest.astype(np.int32), indexed, excitation)


def image_numbers(assignment: SpotAssignment, r_invA: FloatArray) -> tuple[float, float]:
    """(profile radius Å⁻¹, resolution estimate Å) of an image's indexed spots."""
    chosen = assignment.indexed
    if not chosen.any():
        return float("nan"), float("nan")
    radius = float(np.sqrt(np.mean(assignment.excitation_error_invA[chosen] ** 2)))
    return radius, float(np.min(resolution_A(r_invA[chosen])))
