"""Refinement of an indexed lattice against the observed spots (``-r``, analysis.md §3).

Least squares (Levenberg–Marquardt, :func:`_least_squares`) of observed against predicted
spots:

* a spot's observed direction ŝ1 comes from its position (with the beam-centre
  correction); the reflection h predicts the ray through s0 + Q·UB·h, Q the goniometer
  rotation of the spot's image (identity for stills). The residual is the difference of
  the two unit vectors (an angle on the detector, i.e. a position) plus the excitation
  error |s0 + Q·UB·h| − 1/λ (the distance from the Ewald sphere), each group scaled by its
  spread at the start, so that positions, which are measured to a fraction of a pixel,
  are not swamped by excitation errors of a fraction of the crystal's mosaic spread;
* ``orientation`` refines a small rotation of the lattice (3 parameters);
  ``beam_and_lattice`` also the cell, constrained to its lattice system (a = b for
  tetragonal, γ = 120° for hexagonal, …), and the beam centre (2 pixels);
* a second round drops spots whose residual exceeds :data:`OUTLIER_SIGMA` times the
  spread and starts again from the first round's solution.

Why it is compiled: a still's refinement is 3–11 parameters over a few hundred spots and
about a dozen evaluations, for which any per-evaluation Python (scipy's set-up, then numpy
calls on 3×3 matrices and gemmi's B) cost several times the arithmetic. Both rounds, with
the outlier test between them, are one ``nogil`` numba call (:func:`_refine`), which
also leaves the interpreter lock to other threads (``-N``). The Jacobian is analytic:
rotations through the left Jacobian of SO(3), the beam centre through each spot's pixel
steps (a module is flat: a beam shift moves a position along them); only B(cell) is
differentiated numerically (central differences of the closed form in :mod:`.unit_cell`,
exact to ~1e-10). The Jacobian is stored transposed, a row per parameter, so that the
normal equations are vectorised dot products (:func:`_normal_equations`); the residual
loop may contract to fused multiply-adds. Results differ from an uncompiled evaluation
by rounding only (``tests/analysis/test_refinement_reference.py``).

UB = R(ω)·U₀·B(cell), with B gemmi's (:func:`jfsim.geometry.b_matrix`, compiled in
:mod:`.unit_cell`) and U₀ the rotation nearest to UB₀·B₀⁻¹: the lattice keeps its setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from jfsim.analysis.geometry import RunGeometry
from jfsim.analysis.indexing.lattice import Lattice
from jfsim.analysis.indexing.matrix3 import determinant, inverse, product
from jfsim.analysis.indexing.reciprocal import spot_positions
from jfsim.analysis.indexing.unit_cell import (
    FAMILIES,
    b_matrix_into,
    cell_of_basis,
    free_cell,
    full_cell_into,
)

__all__ = ["REFINEMENTS", "Observations", "Refined", "refine_lattice", "refine_positions"]

FloatArray = npt.NDArray[np.float64]

#: ``-r`` values: none, orientation only, or orientation + cell + beam centre (default).
REFINEMENTS = ("none", "orientation", "beam_and_lattice")
#: Residuals beyond this many times their group's spread are outliers in the second round.
OUTLIER_SIGMA = 4.0
#: Fewest spots a refinement needs (two per parameter and some).
MIN_SPOTS = 12
#: Levenberg–Marquardt: relative change of the sum of squares (or of every parameter)
#: below which a refinement has converged; damping bounds and start; iteration cap.
_RELATIVE_TOLERANCE = 1e-12
_INITIAL_DAMPING = 1e-3
_MIN_DAMPING = 1e-9
_MAX_DAMPING = 1e9
_MAX_ITERATIONS = 100


@dataclass(frozen=True)
class Observations:
    """Indexed spots to refine against.

    Attributes:
        x_index, y_index: positions (index coordinates).
        hkl: their Miller indices (``(n, 3)``).
        rotations: ``(n, 3, 3)`` goniometer rotation of each spot's image (φ = 0 → lab),
            or None for stills (all identity).
    """

    x_index: FloatArray
    y_index: FloatArray
    hkl: FloatArray
    rotations: FloatArray | None = None


@dataclass(frozen=True)
class Refined:
    """A refined lattice (same setting and Bravais type) and the beam-centre correction
    (pixels, added to the file's beam centre)."""

    lattice: Lattice
    beam_shift_pxl: tuple[float, float] = (0.0, 0.0)


def refine_lattice(
    lattice: Lattice,
    observations: Observations,
    geometry: RunGeometry,
    mode: str,
    beam_shift_pxl: tuple[float, float] = (0.0, 0.0),
) -> Refined:
    """Refine ``lattice`` (and the beam centre) as ``mode`` says; unchanged when ``mode``
    is ``none`` or too few spots are given."""
    lab_mm, steps_mm = spot_positions(
        geometry, observations.x_index, observations.y_index, beam_shift_pxl=beam_shift_pxl
    )
    return refine_positions(
        lattice,
        observations.hkl,
        lab_mm,
        steps_mm,
        geometry.wavelength_A,
        mode,
        rotations=observations.rotations,
        beam_shift_pxl=beam_shift_pxl,
    )


def refine_positions(
    lattice: Lattice,
    hkl: FloatArray | npt.NDArray[np.int32],
    lab_mm: FloatArray,
    steps_mm: FloatArray,
    wavelength_A: float,
    mode: str,
    *,
    rotations: FloatArray | None = None,
    beam_shift_pxl: tuple[float, float] = (0.0, 0.0),
    chosen: npt.NDArray[np.bool_] | None = None,
) -> Refined:
    """:func:`refine_lattice` of spots given by their lab positions at ``beam_shift_pxl``
    and pixel steps (:func:`.reciprocal.spot_positions`): the indexer has them already,
    for all its spots, and refines against those it could index (``chosen``).

    Args:
        hkl: the spots' Miller indices (``(n, 3)``).
        lab_mm, steps_mm: ``(n, 3)`` and ``(n, 3, 2)``, mm.
        rotations: ``(n, 3, 3)`` goniometer rotation of each spot's image, None for stills.
        chosen: the spots to refine against (all when None).
    """
    if mode not in REFINEMENTS:
        raise ValueError(f"refinement: must be one of {', '.join(REFINEMENTS)}, got {mode!r}")
    if chosen is None:
        chosen = np.ones(hkl.shape[0], dtype=np.bool_)
    if mode == "none" or np.count_nonzero(chosen) < MIN_SPOTS:
        return Refined(lattice, beam_shift_pxl)
    beam = np.array(beam_shift_pxl, dtype=np.float64)
    real_space_A = np.empty((3, 3))
    proper = _refine(
        chosen,
        np.ascontiguousarray(hkl, dtype=np.float64),
        _NO_ROTATIONS if rotations is None else np.ascontiguousarray(rotations),
        np.ascontiguousarray(lab_mm, dtype=np.float64),
        np.ascontiguousarray(steps_mm, dtype=np.float64),
        np.ascontiguousarray(lattice.real_space_A, dtype=np.float64),
        FAMILIES[lattice.bravais[0]],
        1.0 / wavelength_A,
        mode == "beam_and_lattice",
        beam,
        real_space_A,
    )
    if not proper:
        raise ValueError("refinement: the lattice basis (rows a, b, c) must be right-handed")
    return Refined(Lattice(real_space_A, lattice.bravais), (float(beam[0]), float(beam[1])))


#: ``rotations`` of stills for :func:`_refine` (none: every Q is the identity).
_NO_ROTATIONS = np.zeros((0, 3, 3))


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _refine(  # type: ignore[no-untyped-def]  # numba kernel
    chosen, hkl, rotations, lab0_mm, steps_mm, real_space_A, family, inv_wavelength,
    with_cell_and_beam, beam, refined_A,
):  # fmt: skip
    """Both rounds of a refinement over the spots ``chosen`` (other arguments as
    :func:`_model`'s): the refined basis into ``refined_A`` and the refined beam shift
    into ``beam`` (the starting one on entry); False, and nothing refined, when the basis
    is left-handed.

    Parameters: ω (a small rotation, 3), then with ``with_cell_and_beam`` the free cell
    parameters and the beam shift (2). The residuals' scales are their spreads at the
    start (first round) and after the first round (second round, over the spots within
    :data:`OUTLIER_SIGMA` spreads, when that leaves out some but keeps at least
    :data:`MIN_SPOTS`)."""
    model, proper = _model(
        hkl, rotations, lab0_mm, steps_mm, real_space_A, family, beam, inv_wavelength
    )
    if not proper:
        return False
    cell0 = model[6]
    n_cell = cell0.size
    parameters = np.zeros(3 + (n_cell + 2 if with_cell_and_beam else 0))
    if with_cell_and_beam:
        parameters[3 : 3 + n_cell] = cell0
        parameters[3 + n_cell :] = beam
    spots = np.nonzero(chosen)[0]
    m = spots.size
    residuals = np.empty(4 * m)
    spread = _spread(parameters, spots, model, residuals)
    _least_squares(parameters, spots, model, spread)
    spread = _spread(parameters, spots, model, residuals)
    keep = np.empty(m, dtype=np.bool_)
    for i in range(m):
        dx, dy, dz = residuals[3 * i], residuals[3 * i + 1], residuals[3 * i + 2]
        keep[i] = (
            math.sqrt(dx * dx + dy * dy + dz * dz) < OUTLIER_SIGMA * math.sqrt(3) * spread[0]
            and abs(residuals[3 * m + i]) < OUTLIER_SIGMA * spread[1]
        )
    if MIN_SPOTS <= keep.sum() < m:
        _least_squares(parameters, spots[keep], model, spread)
    ub = np.empty((3, 3))
    _lattice_matrices(parameters, model, np.empty((3, 3)), ub, np.empty((0, 3, 3)))
    refined_A[:, :] = inverse(ub)
    if with_cell_and_beam:
        beam[:] = parameters[3 + n_cell :]
    return True


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _model(hkl, rotations, lab0_mm, steps_mm, real_space_A, family, beam, inv_wavelength):  # type: ignore[no-untyped-def]  # numba kernel
    """(the refinement's model, whether its U₀ is a proper rotation).

    The model: (hkl ``(n, 3)``, rotations ``(n, 3, 3)`` or ``(0, 3, 3)`` for stills, lab
    positions ``(n, 3)`` at the starting beam shift, pixel steps ``(n, 3, 2)``, U₀,
    lattice-system code (:data:`.unit_cell.FAMILIES`), starting free cell, starting beam
    shift, 1/λ). U₀ is the rotation nearest to UB₀·B₀⁻¹ = (B₀·A)⁻¹ (A: rows a, b, c;
    B₀: B of the free cell of A's cell), its polar factor (:func:`_nearest_rotation`)."""
    cell0 = free_cell(family, cell_of_basis(real_space_A))
    u0 = np.empty((3, 3))
    proper = _nearest_rotation(inverse(product(_b_of(family, cell0), real_space_A)), u0)
    model = (hkl, rotations, lab0_mm, steps_mm, u0, family, cell0, beam.copy(), inv_wavelength)
    return model, proper


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _nearest_rotation(matrix, rotation):  # type: ignore[no-untyped-def]  # numba kernel
    """The rotation nearest to ``matrix`` (its polar factor, U·Vᵀ of its singular value
    decomposition) into ``rotation``, by Newton's iteration X ← (X + X⁻ᵀ)/2, which
    converges quadratically from a matrix near a rotation; False when ``matrix`` has no
    positive determinant (the nearest orthogonal matrix is then no rotation)."""
    if determinant(matrix) <= 0.0:
        return False
    rotation[:, :] = matrix
    for _iteration in range(_MAX_ITERATIONS):
        inverted = inverse(rotation)
        change = 0.0
        for i in range(3):
            for j in range(3):
                updated = 0.5 * (rotation[i, j] + inverted[j, i])
                change = max(change, abs(updated - rotation[i, j]))
                rotation[i, j] = updated
        if change <= 1e-15:
            break
    return True


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _spread(parameters, spots, model, residuals):  # type: ignore[no-untyped-def]  # numba kernel
    """(rms of the direction differences, rms of the relative excitation errors) of
    ``spots`` at ``parameters``, each at least 1e-7; their residuals left in
    ``residuals`` (unscaled)."""
    _evaluate(parameters, spots, model, 1.0, 1.0, residuals, np.empty((0, 0)))
    m = spots.size
    direction = 0.0
    for row in range(3 * m):
        direction += residuals[row] * residuals[row]
    excitation = 0.0
    for row in range(3 * m, 4 * m):
        excitation += residuals[row] * residuals[row]
    return np.array(
        [max(math.sqrt(direction / (3 * m)), 1e-7), max(math.sqrt(excitation / m), 1e-7)]
    )


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _least_squares(parameters, spots, model, scale):  # type: ignore[no-untyped-def]  # numba kernel
    """Levenberg–Marquardt from ``parameters`` (refined in place) over ``spots``, residual
    groups divided by ``scale``, with Marquardt's scaling (the damping is relative to each
    parameter's curvature, so ω in radians, cells in Å and beam shifts in pixels need no
    scales of their own). Converged when a step would change no parameter by more than
    :data:`_RELATIVE_TOLERANCE` of its scale, or changes the sum of squares by less than
    that fraction of it (at the minimum, rounding decides the sign of the change)."""
    n_parameters = parameters.size
    residuals = np.empty(4 * spots.size)
    jacobian = np.empty((n_parameters, 4 * spots.size))
    no_jacobian = np.empty((0, 0))
    normal = np.empty((n_parameters, n_parameters))
    gradient = np.empty(n_parameters)
    cost = _evaluate(parameters, spots, model, scale[0], scale[1], residuals, jacobian)
    _normal_equations(jacobian, residuals, normal, gradient)
    damped = np.empty((n_parameters, n_parameters))
    step = np.empty(n_parameters)
    curvature = np.empty(n_parameters)
    trial = np.empty(n_parameters)
    damping = _INITIAL_DAMPING
    for _iteration in range(_MAX_ITERATIONS):
        converged = True
        for i in range(n_parameters):
            curvature[i] = math.sqrt(max(normal[i, i], 1e-300))
            for j in range(n_parameters):
                damped[i, j] = normal[i, j]
            damped[i, i] += damping * curvature[i] ** 2
            step[i] = -gradient[i]
        if not _solve_in_place(damped, step):
            break
        for i in range(n_parameters):
            if not abs(step[i]) <= _RELATIVE_TOLERANCE * (abs(parameters[i]) + 1.0 / curvature[i]):
                converged = False
        if converged:
            break
        for i in range(n_parameters):
            trial[i] = parameters[i] + step[i]
        trial_cost = _evaluate(trial, spots, model, scale[0], scale[1], residuals, no_jacobian)
        change = trial_cost - cost
        if not math.isfinite(trial_cost) or change > _RELATIVE_TOLERANCE * cost:
            damping *= 10.0  # worse: a shorter step, nearer the gradient
            if damping > _MAX_DAMPING:
                break
            continue
        parameters[:] = trial
        cost = trial_cost
        if -change <= _RELATIVE_TOLERANCE * cost:
            break
        _evaluate(parameters, spots, model, scale[0], scale[1], residuals, jacobian)
        _normal_equations(jacobian, residuals, normal, gradient)
        damping = max(damping / 10.0, _MIN_DAMPING)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _solve_in_place(matrix, rhs):  # type: ignore[no-untyped-def]  # numba kernel
    """Solve matrix·x = rhs by Gaussian elimination with partial pivoting (as LAPACK's
    ``gesv``), x into ``rhs``; False (both left spoilt) when a pivot is exactly 0."""
    n = rhs.size
    for column in range(n):
        pivot = column
        for row in range(column + 1, n):
            if abs(matrix[row, column]) > abs(matrix[pivot, column]):
                pivot = row
        if matrix[pivot, column] == 0.0:
            return False
        if pivot != column:
            for k in range(n):
                matrix[column, k], matrix[pivot, k] = matrix[pivot, k], matrix[column, k]
            rhs[column], rhs[pivot] = rhs[pivot], rhs[column]
        for row in range(column + 1, n):
            factor = matrix[row, column] / matrix[column, column]
            for k in range(column, n):
                matrix[row, k] -= factor * matrix[column, k]
            rhs[row] -= factor * rhs[column]
    for row in range(n - 1, -1, -1):
        total = rhs[row]
        for k in range(row + 1, n):
            total -= matrix[row, k] * rhs[k]
        rhs[row] = total / matrix[row, row]
    return True


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _small_rotation(omega, rotation):  # type: ignore[no-untyped-def]  # numba kernel
    """exp([ω]×) into ``rotation`` (Rodrigues' formula)."""
    w0, w1, w2 = omega[0], omega[1], omega[2]
    angle = math.sqrt(w0 * w0 + w1 * w1 + w2 * w2)
    if angle < 1e-15:
        rotation[:, :] = 0.0
        for i in range(3):
            rotation[i, i] = 1.0
        return
    x, y, z = w0 / angle, w1 / angle, w2 / angle
    s, v = math.sin(angle), 1.0 - math.cos(angle)  # sine and versine
    rotation[0, 0] = 1.0 - v * (y * y + z * z)
    rotation[0, 1] = v * x * y - s * z
    rotation[0, 2] = v * x * z + s * y
    rotation[1, 0] = v * x * y + s * z
    rotation[1, 1] = 1.0 - v * (x * x + z * z)
    rotation[1, 2] = v * y * z - s * x
    rotation[2, 0] = v * x * z - s * y
    rotation[2, 1] = v * y * z + s * x
    rotation[2, 2] = 1.0 - v * (x * x + y * y)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _left_jacobian(omega, jacobian):  # type: ignore[no-untyped-def]  # numba kernel
    """J with exp([ω + δ]×) = exp([J·δ]×)·exp([ω]×) to first order (SO(3)'s left
    Jacobian), into ``jacobian``."""
    angle = math.sqrt(omega[0] * omega[0] + omega[1] * omega[1] + omega[2] * omega[2])
    k = _skew(omega)
    k2 = product(k, k)
    small = angle < 1e-6
    first = 0.5 if small else (1.0 - math.cos(angle)) / angle**2
    second = (angle - math.sin(angle)) / angle**3
    for i in range(3):
        for j in range(3):
            quadratic = k2[i, j] / 6.0 if small else second * k2[i, j]
            jacobian[i, j] = (1.0 if i == j else 0.0) + first * k[i, j] + quadratic


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _skew(v):  # type: ignore[no-untyped-def]  # numba kernel
    k = np.zeros((3, 3))
    k[0, 1], k[0, 2] = -v[2], v[1]
    k[1, 0], k[1, 2] = v[2], -v[0]
    k[2, 0], k[2, 1] = -v[1], v[0]
    return k


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _b_of(family, cell):  # type: ignore[no-untyped-def]  # numba kernel
    full, b = np.empty(6), np.empty((3, 3))
    full_cell_into(family, cell, full)
    b_matrix_into(full, b)
    return b


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _lattice_matrices(parameters, model, turned_u0, ub, derivatives):  # type: ignore[no-untyped-def]  # numba kernel
    """R(ω)·U₀ into ``turned_u0`` and UB into ``ub`` at ``parameters``; when
    ``derivatives`` has room, ∂UB/∂(ω, then each free cell parameter) into it."""
    _hkl, _rotations, _lab0, _steps, u0, family, cell0, _beam0, _inv_wavelength = model
    n_cell = cell0.size
    with_cell = parameters.size > 3
    rotation = np.empty((3, 3))
    _small_rotation(parameters[:3], rotation)
    turned_u0[:, :] = product(rotation, u0)
    cell = parameters[3 : 3 + n_cell] if with_cell else cell0
    ub[:, :] = product(turned_u0, _b_of(family, cell))
    if derivatives.shape[0] == 0:
        return
    left = np.empty((3, 3))
    _left_jacobian(parameters[:3], left)
    for k in range(3):
        derivatives[k] = product(_skew(left[:, k]), ub)
    if not with_cell:
        return
    for j in range(n_cell):
        step = 1e-5 * max(1.0, abs(cell[j]))
        up, down = cell.copy(), cell.copy()
        up[j] += step
        down[j] -= step
        difference = (_b_of(family, up) - _b_of(family, down)) / (2.0 * step)
        derivatives[3 + j] = product(turned_u0, difference)


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract", "arcp"})
def _evaluate(parameters, spots, model, scale_direction, scale_excitation, residuals, jacobian):  # type: ignore[no-untyped-def]  # numba kernel
    """The sum of squares of the residuals of ``spots`` at ``parameters``, each group
    divided by its ``scale``; the residuals into ``residuals`` (rows 3i…3i+2: ô − û of the
    i-th spot; row 3m + i: its excitation error (|s1| − 1/λ)·λ) and, when ``jacobian`` has
    rows, their Jacobian into it, transposed (one row per parameter: contiguous for
    :func:`_normal_equations`).

    Spot n observed along ô = L/|L|, L = L₀ − steps·Δb (its lab position), predicted along
    û = s1/|s1|, s1 = Q·UB·h + s0. With t = Q·(∂UB/∂q)·h: ∂û/∂q = (t − û(û·t))/|s1| and
    ∂|s1|/∂q = û·t; with d = −(a pixel step): ∂ô/∂b = (d − ô(ô·d))/|L|.
    """
    hkl, rotations, lab0_mm, steps_mm, _u0, _family, cell0, beam0, inv_wavelength = model
    n_parameters = parameters.size
    with_jacobian = jacobian.shape[0] > 0
    with_beam = n_parameters > 3
    n_lattice = n_parameters - 2 if with_beam else 3
    turned_u0, ub = np.empty((3, 3)), np.empty((3, 3))
    derivatives = np.empty((n_lattice if with_jacobian else 0, 3, 3))
    _lattice_matrices(parameters, model, turned_u0, ub, derivatives)
    shift_x = parameters[3 + cell0.size] - beam0[0] if with_beam else 0.0
    shift_y = parameters[4 + cell0.size] - beam0[1] if with_beam else 0.0
    to_direction = 1.0 / scale_direction
    to_excitation = 1.0 / (inv_wavelength * scale_excitation)
    turned = rotations.shape[0] > 0
    m = spots.size
    cost = 0.0
    for i in range(m):
        spot = spots[i]
        h0, h1, h2 = hkl[spot, 0], hkl[spot, 1], hkl[spot, 2]
        lab_x = lab0_mm[spot, 0] - steps_mm[spot, 0, 0] * shift_x
        lab_y = lab0_mm[spot, 1] - steps_mm[spot, 1, 0] * shift_x
        lab_z = lab0_mm[spot, 2] - steps_mm[spot, 2, 0] * shift_x
        lab_x -= steps_mm[spot, 0, 1] * shift_y
        lab_y -= steps_mm[spot, 1, 1] * shift_y
        lab_z -= steps_mm[spot, 2, 1] * shift_y
        distance = math.sqrt(lab_x * lab_x + lab_y * lab_y + lab_z * lab_z)
        observed_x, observed_y, observed_z = lab_x / distance, lab_y / distance, lab_z / distance
        s1_x = ub[0, 0] * h0 + ub[0, 1] * h1 + ub[0, 2] * h2
        s1_y = ub[1, 0] * h0 + ub[1, 1] * h1 + ub[1, 2] * h2
        s1_z = ub[2, 0] * h0 + ub[2, 1] * h1 + ub[2, 2] * h2
        if turned:
            s1_x, s1_y, s1_z = _turned(rotations[spot], s1_x, s1_y, s1_z)
        s1_z += inv_wavelength
        length = math.sqrt(s1_x * s1_x + s1_y * s1_y + s1_z * s1_z)
        u0, u1, u2 = s1_x / length, s1_y / length, s1_z / length
        dx = (observed_x - u0) * to_direction
        dy = (observed_y - u1) * to_direction
        dz = (observed_z - u2) * to_direction
        de = (length - inv_wavelength) * to_excitation
        residuals[3 * i] = dx
        residuals[3 * i + 1] = dy
        residuals[3 * i + 2] = dz
        residuals[3 * m + i] = de
        cost += dx * dx + dy * dy + dz * dz + de * de
        if not with_jacobian:
            continue
        along_scale = -to_direction / length
        for column in range(n_lattice):
            d = derivatives[column]
            t0 = d[0, 0] * h0 + d[0, 1] * h1 + d[0, 2] * h2
            t1 = d[1, 0] * h0 + d[1, 1] * h1 + d[1, 2] * h2
            t2 = d[2, 0] * h0 + d[2, 1] * h1 + d[2, 2] * h2
            if turned:
                t0, t1, t2 = _turned(rotations[spot], t0, t1, t2)
            along = u0 * t0 + u1 * t1 + u2 * t2
            jacobian[column, 3 * i] = (t0 - u0 * along) * along_scale
            jacobian[column, 3 * i + 1] = (t1 - u1 * along) * along_scale
            jacobian[column, 3 * i + 2] = (t2 - u2 * along) * along_scale
            jacobian[column, 3 * m + i] = along * to_excitation
        if with_beam:
            beam_scale = to_direction / distance
            for b in range(2):
                d0, d1, d2 = -steps_mm[spot, 0, b], -steps_mm[spot, 1, b], -steps_mm[spot, 2, b]
                along = observed_x * d0 + observed_y * d1 + observed_z * d2
                column = n_lattice + b
                jacobian[column, 3 * i] = (d0 - observed_x * along) * beam_scale
                jacobian[column, 3 * i + 1] = (d1 - observed_y * along) * beam_scale
                jacobian[column, 3 * i + 2] = (d2 - observed_z * along) * beam_scale
                jacobian[column, 3 * m + i] = 0.0
    return cost


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _turned(q, x, y, z):  # type: ignore[no-untyped-def]  # numba kernel
    """Q·(x, y, z) in scalars (kept in registers: arrays written in the same loop could
    alias a temporary array and force it back to memory)."""
    return (
        q[0, 0] * x + q[0, 1] * y + q[0, 2] * z,
        q[1, 0] * x + q[1, 1] * y + q[1, 2] * z,
        q[2, 0] * x + q[2, 1] * y + q[2, 2] * z,
    )


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _normal_equations(jacobian, residuals, normal, gradient):  # type: ignore[no-untyped-def]  # numba kernel
    """JᵀJ into ``normal`` and Jᵀr into ``gradient``, ``jacobian`` transposed (one row
    per parameter, :func:`_evaluate`)."""
    n_parameters = jacobian.shape[0]
    for a in range(n_parameters):
        gradient[a] = _dot(jacobian[a], residuals)
        for b in range(a + 1):
            normal[a, b] = normal[b, a] = _dot(jacobian[a], jacobian[b])


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _dot(u, v):  # type: ignore[no-untyped-def]  # numba kernel
    """u·v, summed in whatever order vectorises (the normal equations' sums are the bulk
    of a refinement's arithmetic)."""
    total = 0.0
    for k in range(u.size):
        total += u[k] * v[k]
    return total
