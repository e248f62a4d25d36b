"""Unit cells inside compiled code: a lattice system's free cell parameters and B(cell).

The refinement (:mod:`.refine`) evaluates B(cell) and its derivatives at every step of its
compiled least squares, where gemmi cannot be called. :func:`b_matrix_into` is gemmi's
``UnitCell.frac.mat`` transposed (:func:`jfsim.geometry.b_matrix`) written out with the
same operations in the same order (``calculate_properties`` in gemmi's ``unitcell.hpp``:
right angles give exact cosines of 0 and sines of 1, degrees become radians as
(π/180)·angle), so that the two agree to rounding; ``tests/analysis/test_unit_cell.py``
holds it to gemmi over cells of every lattice system. B is the transpose of an upper
triangular matrix, so the reciprocal basis a* lies along x (gemmi's orthogonalisation).

The free parameters of each lattice system (:func:`free_cell`, :func:`full_cell_into`),
given by codes (:data:`FAMILIES`):
one length for cubic, a and c for tetragonal and hexagonal (γ = 120°), three lengths for
orthorhombic, and β too for monoclinic; all six for triclinic.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["FAMILIES", "b_matrix_into", "cell_of_basis", "free_cell", "full_cell_into"]

FloatArray = npt.NDArray[np.float64]

#: Crystal-family letter (a Bravais type's first) → its code in compiled code.
FAMILIES = {"a": 0, "m": 1, "o": 2, "t": 3, "h": 4, "c": 5}
_DEGREES_TO_RADIANS = math.pi / 180.0


@numba.njit(nogil=True, cache=True, error_model="numpy")
def cell_of_basis(real_space_A):  # type: ignore[no-untyped-def]  # numba kernel
    """(a, b, c in Å, α, β, γ in degrees) of a basis given as rows a, b, c (as
    :func:`.lattice.cell_of`)."""
    cell = np.empty(6)
    for i in range(3):
        v = real_space_A[i]
        cell[i] = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    for angle, (first, second) in enumerate(((1, 2), (0, 2), (0, 1))):
        u, v = real_space_A[first], real_space_A[second]
        cosine = (u[0] * v[0] + u[1] * v[1] + u[2] * v[2]) / (cell[first] * cell[second])
        cell[3 + angle] = math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
    return cell


@numba.njit(nogil=True, cache=True, error_model="numpy")
def free_cell(family, cell):  # type: ignore[no-untyped-def]  # numba kernel
    """The free cell parameters of lattice system ``family`` (a code of :data:`FAMILIES`)
    of ``cell`` (lengths Å, angles degrees), equal lengths averaged."""
    a, b, c = cell[0], cell[1], cell[2]
    if family == 5:  # cubic
        return np.array([(a + b + c) / 3.0])
    if family == 3 or family == 4:  # tetragonal, hexagonal
        return np.array([(a + b) / 2.0, c])
    if family == 2:  # orthorhombic
        return np.array([a, b, c])
    if family == 1:  # monoclinic
        return np.array([a, b, c, cell[4]])
    return cell[:6].copy()


@numba.njit(nogil=True, cache=True, error_model="numpy")
def full_cell_into(family, free, cell):  # type: ignore[no-untyped-def]  # numba kernel
    """Write the six cell parameters of ``free`` (lattice system ``family``, a code of
    :data:`FAMILIES`) into ``cell``."""
    if family == 5:  # cubic
        cell[0] = cell[1] = cell[2] = free[0]
        cell[3] = cell[4] = cell[5] = 90.0
    elif family == 3 or family == 4:  # tetragonal, hexagonal
        cell[0] = cell[1] = free[0]
        cell[2] = free[1]
        cell[3] = cell[4] = 90.0
        cell[5] = 120.0 if family == 4 else 90.0
    elif family == 2:  # orthorhombic
        cell[0], cell[1], cell[2] = free[0], free[1], free[2]
        cell[3] = cell[4] = cell[5] = 90.0
    elif family == 1:  # monoclinic
        cell[0], cell[1], cell[2] = free[0], free[1], free[2]
        cell[3], cell[4], cell[5] = 90.0, free[3], 90.0
    else:
        for i in range(6):
            cell[i] = free[i]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _cosine(angle_deg):  # type: ignore[no-untyped-def]  # numba kernel
    return 0.0 if angle_deg == 90.0 else math.cos(_DEGREES_TO_RADIANS * angle_deg)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _sine(angle_deg):  # type: ignore[no-untyped-def]  # numba kernel
    return 1.0 if angle_deg == 90.0 else math.sin(_DEGREES_TO_RADIANS * angle_deg)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def b_matrix_into(cell, b):  # type: ignore[no-untyped-def]  # numba kernel
    """Write gemmi's B (3×3, Å⁻¹; ``UnitCell.frac.mat`` transposed) of ``cell`` (a, b, c
    in Å, α, β, γ in degrees) into ``b``."""
    a_A, b_A, c_A = cell[0], cell[1], cell[2]
    cos_alpha, cos_beta, cos_gamma = _cosine(cell[3]), _cosine(cell[4]), _cosine(cell[5])
    sin_beta, sin_gamma = _sine(cell[4]), _sine(cell[5])
    cos_alphar_sin_beta = (cos_beta * cos_gamma - cos_alpha) / sin_gamma
    cos_alphar = cos_alphar_sin_beta / sin_beta
    sin_alphar = math.sqrt(1.0 - cos_alphar * cos_alphar)
    orth_11 = b_A * sin_gamma
    orth_22 = c_A * sin_beta * sin_alphar
    b[0, 0] = 1 / a_A
    b[0, 1] = 0.0
    b[0, 2] = 0.0
    b[1, 0] = -cos_gamma / (sin_gamma * a_A)
    b[1, 1] = 1 / orth_11
    b[1, 2] = 0.0
    b[2, 0] = -(cos_gamma * cos_alphar_sin_beta + cos_beta * sin_gamma) / (
        sin_alphar * sin_beta * sin_gamma * a_A
    )
    b[2, 1] = cos_alphar / (sin_alphar * sin_gamma * b_A)
    b[2, 2] = 1 / orth_22
