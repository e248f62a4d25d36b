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

import math
from dataclasses import dataclass, field

import numba
import numpy as np
import numpy.typing as npt

from jfsim.analysis.indexing.lattice import Lattice
from jfsim.analysis.indexing.matrix3 import inverse

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
        return int(np.count_nonzero(self.indexed))


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
    lattice; NaN rows never index): the nearest integers to the fractional coordinates
    r·(a, b, c), indexed when every one is within ``tolerance`` and h ≠ 0, and the
    excitation error |s0 + UB·h| − 1/λ of the indexed (Å⁻¹, positive outside the Ewald
    sphere), in one compiled pass."""
    n = r_invA.shape[0]
    hkl = np.empty((n, 3), dtype=np.int32)
    indexed = np.empty(n, dtype=np.bool_)
    excitation = np.empty(n)
    _assign_into(
        np.ascontiguousarray(r_invA, dtype=np.float64),
        np.ascontiguousarray(lattice.real_space_A, dtype=np.float64),
        float(tolerance),
        1.0 / wavelength_A,
        hkl,
        indexed,
        excitation,
    )
    return SpotAssignment(hkl, indexed, excitation)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _assign_into(  # type: ignore[no-untyped-def]  # numba kernel
    r_invA, real_space_A, tolerance, inv_wavelength, hkl, indexed, excitation
):
    ub = inverse(real_space_A)
    nearest = np.empty(3)
    for spot in range(r_invA.shape[0]):
        finite = True
        within = True
        for i in range(3):
            fractional = (
                r_invA[spot, 0] * real_space_A[i, 0]
                + r_invA[spot, 1] * real_space_A[i, 1]
                + r_invA[spot, 2] * real_space_A[i, 2]
            )
            finite = finite and math.isfinite(fractional)
            nearest[i] = np.rint(fractional) if math.isfinite(fractional) else 0.0
            within = within and abs(fractional - nearest[i]) < tolerance
        if not finite:
            nearest[:] = 0.0
        for i in range(3):
            hkl[spot, i] = np.int32(nearest[i])
        indexed[spot] = (
            finite and within and (nearest[0] != 0 or nearest[1] != 0 or nearest[2] != 0)
        )
        excitation[spot] = np.nan
        if indexed[spot]:
            s1_x = ub[0, 0] * nearest[0] + ub[0, 1] * nearest[1] + ub[0, 2] * nearest[2]
            s1_y = ub[1, 0] * nearest[0] + ub[1, 1] * nearest[1] + ub[1, 2] * nearest[2]
            s1_z = inv_wavelength + (
                ub[2, 0] * nearest[0] + ub[2, 1] * nearest[1] + ub[2, 2] * nearest[2]
            )
            excitation[spot] = math.sqrt(s1_x * s1_x + s1_y * s1_y + s1_z * s1_z) - inv_wavelength


def image_numbers(assignment: SpotAssignment, r_invA: FloatArray) -> tuple[float, float]:
    """(profile radius Å⁻¹, resolution estimate Å) of an image's indexed spots (NaN when
    none is)."""
    numbers = _image_numbers(
        assignment.indexed,
        assignment.excitation_error_invA,
        np.ascontiguousarray(r_invA, dtype=np.float64),
    )
    return float(numbers[0]), float(numbers[1])


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _image_numbers(indexed, excitation, r_invA):  # type: ignore[no-untyped-def]  # numba kernel
    """(root-mean-square excitation error, smallest d = 1/|r|) of the indexed spots."""
    count, squares, largest_r = 0, 0.0, 0.0
    for spot in range(indexed.size):
        if indexed[spot]:
            count += 1
            squares += excitation[spot] * excitation[spot]
            r = r_invA[spot]
            largest_r = max(largest_r, math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]))
    if count == 0:
        return np.nan, np.nan
    return math.sqrt(squares / count), 1.0 / largest_r
