"""Refinement of an indexed lattice against the observed spots (``-r``, analysis.md §3).

Least squares (Levenberg–Marquardt, :func:`_solve`) of observed against predicted spots:

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

Why it is written out: scipy's least squares with a finite-difference Jacobian made
refinement the dearest step of a still's analysis (one residual evaluation per parameter
and step, and set-up costs larger than the solve of 7 parameters over a few hundred
spots). The Jacobian is analytic: rotations through the left Jacobian of SO(3), the beam
centre through each spot's pixel steps; only B(cell), a 3×3 matrix from gemmi, is
differentiated numerically (central differences, exact to ~1e-10). Residuals and
Jacobian rows come from one compiled loop over the spots (:func:`_residual_rows`), which
also leaves the interpreter lock to other threads (``-N``).

UB = R(ω)·U₀·B(cell), with B gemmi's (:func:`jfsim.geometry.b_matrix`) and U₀ the nearest
rotation to UB₀·B₀⁻¹: the lattice keeps its setting.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from jfsim.analysis.geometry import RunGeometry
from jfsim.analysis.indexing.lattice import Lattice
from jfsim.analysis.indexing.reciprocal import pixel_steps_mm
from jfsim.geometry import b_matrix

__all__ = ["REFINEMENTS", "Observations", "Refined", "refine_lattice"]

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

    def subset(self, keep: npt.NDArray[np.bool_]) -> Observations:
        return Observations(
            self.x_index[keep],
            self.y_index[keep],
            self.hkl[keep],
            None if self.rotations is None else self.rotations[keep],
        )


@dataclass(frozen=True)
class Refined:
    """A refined lattice (same setting and Bravais type) and the beam-centre correction
    (pixels, added to the file's beam centre)."""

    lattice: Lattice
    beam_shift_pxl: tuple[float, float] = (0.0, 0.0)


def _free_cell(bravais: str, cell: tuple[float, ...]) -> list[float]:
    """The free cell parameters of a lattice system (lengths Å, angles degrees)."""
    a, b, c, alpha, beta, gamma = cell
    family = bravais[0]
    if family == "c":
        return [(a + b + c) / 3.0]
    if family in ("t", "h"):
        return [(a + b) / 2.0, c]
    if family == "o":
        return [a, b, c]
    if family == "m":
        return [a, b, c, beta]
    return [a, b, c, alpha, beta, gamma]


def _full_cell(bravais: str, free: FloatArray) -> tuple[float, float, float, float, float, float]:
    family = bravais[0]
    if family == "c":
        return (free[0], free[0], free[0], 90.0, 90.0, 90.0)
    if family == "t":
        return (free[0], free[0], free[1], 90.0, 90.0, 90.0)
    if family == "h":
        return (free[0], free[0], free[1], 90.0, 90.0, 120.0)
    if family == "o":
        return (free[0], free[1], free[2], 90.0, 90.0, 90.0)
    if family == "m":
        return (free[0], free[1], free[2], 90.0, free[3], 90.0)
    return (free[0], free[1], free[2], free[3], free[4], free[5])


def _nearest_rotation(matrix: FloatArray) -> FloatArray:
    u, _s, vt = np.linalg.svd(matrix)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        rotation = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return np.asarray(rotation)


def _small_rotation(omega: FloatArray) -> FloatArray:
    """exp([ω]×): Rodrigues' formula written out in scalars (called at every evaluation,
    where numpy's per-call costs on 3-vectors outweighed the arithmetic)."""
    w0, w1, w2 = float(omega[0]), float(omega[1]), float(omega[2])
    angle = math.sqrt(w0 * w0 + w1 * w1 + w2 * w2)
    if angle < 1e-15:
        return np.eye(3)
    x, y, z = w0 / angle, w1 / angle, w2 / angle
    s, v = math.sin(angle), 1.0 - math.cos(angle)  # sine and versine
    return np.array(
        [
            [1.0 - v * (y * y + z * z), v * x * y - s * z, v * x * z + s * y],
            [v * x * y + s * z, 1.0 - v * (x * x + z * z), v * y * z - s * x],
            [v * x * z - s * y, v * y * z + s * x, 1.0 - v * (x * x + y * y)],
        ]
    )


def _skew(v: FloatArray) -> FloatArray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def _left_jacobian(omega: FloatArray) -> FloatArray:
    """J with exp([ω + δ]×) = exp([J·δ]×)·exp([ω]×) to first order (SO(3)'s left Jacobian)."""
    angle = math.sqrt(float(omega @ omega))
    k = _skew(omega)
    if angle < 1e-6:
        return np.asarray(np.eye(3) + 0.5 * k + (k @ k) / 6.0)
    return np.asarray(
        np.eye(3)
        + (1.0 - math.cos(angle)) / angle**2 * k
        + (angle - math.sin(angle)) / angle**3 * (k @ k)
    )


def _b_derivatives(bravais: str, free: FloatArray) -> list[FloatArray]:
    """∂B/∂(each free cell parameter), by central differences of gemmi's B."""
    derivatives = []
    for j in range(free.size):
        step = 1e-5 * max(1.0, abs(float(free[j])))
        up, down = free.copy(), free.copy()
        up[j] += step
        down[j] -= step
        difference = b_matrix(_full_cell(bravais, up)) - b_matrix(_full_cell(bravais, down))
        derivatives.append(np.asarray(difference / (2.0 * step)))
    return derivatives


#: (R(ω)·U₀, UB, free cell, beam shift) of one set of parameters.
_Unpacked = tuple[FloatArray, FloatArray, FloatArray, FloatArray]


class _Model:
    """Parameters → residuals for one refinement."""

    def __init__(
        self,
        lattice: Lattice,
        observations: Observations,
        geometry: RunGeometry,
        mode: str,
        beam_shift_pxl: tuple[float, float],
    ) -> None:
        self.bravais = lattice.bravais
        self.observations = observations
        self.mode = mode
        free = _free_cell(lattice.bravais, lattice.cell)
        b0 = b_matrix(_full_cell(lattice.bravais, np.asarray(free)))
        self.u0 = _nearest_rotation(lattice.reciprocal_invA @ np.linalg.inv(b0))
        self.cell0 = np.asarray(free, dtype=np.float64)
        self.beam0 = np.asarray(beam_shift_pxl, dtype=np.float64)
        self.s0 = np.array([0.0, 0.0, 1.0 / geometry.wavelength_A])
        self.scale = np.ones(2)
        self._last: tuple[FloatArray, _Unpacked] | None = None
        # The spots' lab positions at the starting beam centre and their pixel steps: a
        # module is flat, so a beam shift moves a position along them (no module lookup
        # per evaluation).
        shifted_x = observations.x_index - self.beam0[0]
        shifted_y = observations.y_index - self.beam0[1]
        self.lab0_mm = geometry.lab_mm_at(shifted_x, shifted_y)
        self.steps_mm = np.stack(pixel_steps_mm(geometry, shifted_x, shifted_y), axis=-1)

    def subset(self, keep: npt.NDArray[np.bool_]) -> _Model:
        """The same model over the spots ``keep`` (the second round): their positions and
        pixel steps taken from this one rather than looked up again."""
        model = copy.copy(self)
        model.observations = self.observations.subset(keep)
        model.lab0_mm = self.lab0_mm[keep]
        model.steps_mm = self.steps_mm[keep]
        return model

    @property
    def n_parameters(self) -> int:
        return 3 + (self.cell0.size + 2 if self.mode == "beam_and_lattice" else 0)

    def start(self) -> FloatArray:
        if self.mode == "beam_and_lattice":
            return np.concatenate([np.zeros(3), self.cell0, self.beam0])
        return np.zeros(3)

    def unpack(self, p: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(UB, free cell, beam shift) of parameters ``p``."""
        _turned_u0, ub, cell, beam = self._unpacked(p)
        return ub, cell, beam

    def _unpacked(self, p: FloatArray) -> _Unpacked:
        """(R(ω)·U₀, UB, free cell, beam shift) of ``p``, kept for the last ``p``: the
        Jacobian is always wanted where the residuals were just computed."""
        if self._last is not None and np.array_equal(self._last[0], p):
            return self._last[1]
        if self.mode == "beam_and_lattice":
            cell = p[3 : 3 + self.cell0.size]
            beam = p[3 + self.cell0.size :]
        else:
            cell, beam = self.cell0, self.beam0
        turned_u0 = _small_rotation(p[:3]) @ self.u0
        unpacked = (turned_u0, turned_u0 @ b_matrix(_full_cell(self.bravais, cell)), cell, beam)
        self._last = (p.copy(), unpacked)
        return unpacked

    def _evaluate(
        self, p: FloatArray, scale: FloatArray, *, jacobian: bool
    ) -> tuple[FloatArray, FloatArray]:
        """(residuals ``(4n,)`` divided by ``scale``, their Jacobian ``(4n, parameters)``
        or an empty array) at ``p``, computed by :func:`_residual_rows`."""
        obs = self.observations
        turned_u0, ub, cell, beam = self._unpacked(p)
        if jacobian:
            jl = _left_jacobian(p[:3])
            matrices = [_skew(jl[:, k]) @ ub for k in range(3)]
            if self.mode == "beam_and_lattice":
                matrices += [turned_u0 @ d for d in _b_derivatives(self.bravais, cell)]
            derivatives = np.ascontiguousarray(np.stack(matrices))
        else:
            derivatives = np.zeros((0, 3, 3))
        n = obs.hkl.shape[0]
        residuals = np.empty(4 * n)
        jacobian_rows = np.zeros((4 * n, self.n_parameters) if jacobian else (0, 0))
        _residual_rows(
            obs.hkl,
            _NO_ROTATIONS if obs.rotations is None else obs.rotations,
            ub,
            derivatives,
            self.lab0_mm,
            self.steps_mm,
            beam - self.beam0,
            self.mode == "beam_and_lattice" and jacobian,
            self.s0[2],
            float(scale[0]),
            float(scale[1]),
            residuals,
            jacobian_rows,
        )
        return residuals, jacobian_rows

    def raw_residuals(self, p: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(direction differences ``(n, 3)``, relative excitation errors ``(n,)``)."""
        residuals, _none = self._evaluate(p, np.ones(2), jacobian=False)
        n = self.observations.hkl.shape[0]
        return residuals[: 3 * n].reshape(n, 3), residuals[3 * n :]

    def residuals(self, p: FloatArray) -> FloatArray:
        """Direction differences (x, y, z of each spot in turn), then excitation errors,
        each group divided by its spread ``scale``."""
        return self._evaluate(p, self.scale, jacobian=False)[0]

    def jacobian(self, p: FloatArray) -> FloatArray:
        """∂ :meth:`residuals` / ∂p (rows as :meth:`residuals`, one column per parameter)."""
        return self._evaluate(p, self.scale, jacobian=True)[1]


#: ``rotations`` of stills for :func:`_residual_rows` (none: every Q is the identity).
_NO_ROTATIONS = np.zeros((0, 3, 3))


@numba.njit(nogil=True, cache=True)
def _residual_rows(  # type: ignore[no-untyped-def]  # numba kernel
    hkl,
    rotations,
    ub,
    derivatives,
    lab0_mm,
    steps_mm,
    beam_shift_pxl,
    with_beam,
    inv_wavelength,
    scale_direction,
    scale_excitation,
    residuals,
    jacobian,
):
    """Residuals of every spot and, when ``derivatives`` (∂UB/∂(each lattice parameter))
    are given, their Jacobian (the beam columns last when ``with_beam``).

    Spot n observed along ô = L/|L|, L = L₀ − steps·Δb (its lab position), predicted along
    û = s1/|s1|, s1 = Q·UB·h + s0: rows 3n…3n+2 are ô − û, row 3N + n is (|s1| − 1/λ)·λ.
    With t = Q·(∂UB/∂q)·h: ∂û/∂q = (t − û(û·t))/|s1| and ∂|s1|/∂q = û·t; with
    d = −(a pixel step): ∂ô/∂b = (d − ô(ô·d))/|L|.
    """
    n = hkl.shape[0]
    n_lattice = derivatives.shape[0]
    turned = rotations.shape[0] > 0
    s1 = np.empty(3)
    t = np.empty(3)
    for spot in range(n):
        h0, h1, h2 = hkl[spot, 0], hkl[spot, 1], hkl[spot, 2]
        lab_x = lab0_mm[spot, 0] - steps_mm[spot, 0, 0] * beam_shift_pxl[0]
        lab_y = lab0_mm[spot, 1] - steps_mm[spot, 1, 0] * beam_shift_pxl[0]
        lab_z = lab0_mm[spot, 2] - steps_mm[spot, 2, 0] * beam_shift_pxl[0]
        lab_x -= steps_mm[spot, 0, 1] * beam_shift_pxl[1]
        lab_y -= steps_mm[spot, 1, 1] * beam_shift_pxl[1]
        lab_z -= steps_mm[spot, 2, 1] * beam_shift_pxl[1]
        distance = math.sqrt(lab_x * lab_x + lab_y * lab_y + lab_z * lab_z)
        observed_x, observed_y, observed_z = lab_x / distance, lab_y / distance, lab_z / distance
        for i in range(3):
            s1[i] = ub[i, 0] * h0 + ub[i, 1] * h1 + ub[i, 2] * h2
        if turned:
            r0, r1, r2 = s1[0], s1[1], s1[2]
            for i in range(3):
                q = rotations[spot]
                s1[i] = q[i, 0] * r0 + q[i, 1] * r1 + q[i, 2] * r2
        s1[2] += inv_wavelength
        length = math.sqrt(s1[0] * s1[0] + s1[1] * s1[1] + s1[2] * s1[2])
        u0, u1, u2 = s1[0] / length, s1[1] / length, s1[2] / length
        residuals[3 * spot] = (observed_x - u0) / scale_direction
        residuals[3 * spot + 1] = (observed_y - u1) / scale_direction
        residuals[3 * spot + 2] = (observed_z - u2) / scale_direction
        residuals[3 * n + spot] = (length - inv_wavelength) / inv_wavelength / scale_excitation
        for column in range(n_lattice):
            m = derivatives[column]
            for i in range(3):
                t[i] = m[i, 0] * h0 + m[i, 1] * h1 + m[i, 2] * h2
            if turned:
                q = rotations[spot]
                t0, t1, t2 = t[0], t[1], t[2]
                for i in range(3):
                    t[i] = q[i, 0] * t0 + q[i, 1] * t1 + q[i, 2] * t2
            along = u0 * t[0] + u1 * t[1] + u2 * t[2]
            jacobian[3 * spot, column] = -(t[0] - u0 * along) / length / scale_direction
            jacobian[3 * spot + 1, column] = -(t[1] - u1 * along) / length / scale_direction
            jacobian[3 * spot + 2, column] = -(t[2] - u2 * along) / length / scale_direction
            jacobian[3 * n + spot, column] = along / inv_wavelength / scale_excitation
        if with_beam:
            for b in range(2):
                d0, d1, d2 = -steps_mm[spot, 0, b], -steps_mm[spot, 1, b], -steps_mm[spot, 2, b]
                along = observed_x * d0 + observed_y * d1 + observed_z * d2
                column = n_lattice + b
                jacobian[3 * spot, column] = (d0 - observed_x * along) / distance / scale_direction
                jacobian[3 * spot + 1, column] = (
                    (d1 - observed_y * along) / distance / scale_direction
                )
                jacobian[3 * spot + 2, column] = (
                    (d2 - observed_z * along) / distance / scale_direction
                )


def _spread(direction: FloatArray, excitation: FloatArray) -> FloatArray:
    return np.array(
        [
            max(float(np.sqrt(np.mean(direction**2))), 1e-7),
            max(float(np.sqrt(np.mean(excitation**2))), 1e-7),
        ]
    )


def _solve(model: _Model, start: FloatArray) -> FloatArray:
    """Levenberg–Marquardt from ``start``, with Marquardt's scaling (the damping is
    relative to each parameter's curvature, so ω in radians, cells in Å and beam shifts in
    pixels need no scales of their own). Written out rather than scipy's: a refinement of
    a still is 7 parameters and a few hundred spots, for which scipy's set-up cost more
    than the solve. Converged when a step would change no parameter by more than
    :data:`_RELATIVE_TOLERANCE` of its scale, or changes the sum of squares by less than
    that fraction of it (at the minimum, rounding decides the sign of the change)."""
    parameters = np.array(start, dtype=np.float64)
    residuals = model.residuals(parameters)
    cost = float(residuals @ residuals)
    jacobian = model.jacobian(parameters)
    damping = _INITIAL_DAMPING
    for _iteration in range(_MAX_ITERATIONS):
        normal = jacobian.T @ jacobian
        gradient = jacobian.T @ residuals
        scale = np.sqrt(np.maximum(np.diag(normal), 1e-300))
        try:
            step = np.linalg.solve(normal + np.diag(damping * scale**2), -gradient)
        except np.linalg.LinAlgError:
            break
        if np.all(np.abs(step) <= _RELATIVE_TOLERANCE * (np.abs(parameters) + 1.0 / scale)):
            break
        trial = parameters + step
        trial_residuals = model.residuals(trial)
        trial_cost = float(trial_residuals @ trial_residuals)
        change = trial_cost - cost
        if not math.isfinite(trial_cost) or change > _RELATIVE_TOLERANCE * cost:
            damping *= 10.0  # worse: a shorter step, nearer the gradient
            if damping > _MAX_DAMPING:
                break
            continue
        parameters, residuals, cost = trial, trial_residuals, trial_cost
        if -change <= _RELATIVE_TOLERANCE * cost:
            break
        jacobian = model.jacobian(parameters)
        damping = max(damping / 10.0, _MIN_DAMPING)
    return parameters


def refine_lattice(
    lattice: Lattice,
    observations: Observations,
    geometry: RunGeometry,
    mode: str,
    beam_shift_pxl: tuple[float, float] = (0.0, 0.0),
) -> Refined:
    """Refine ``lattice`` (and the beam centre) as ``mode`` says; unchanged when ``mode``
    is ``none`` or too few spots are given."""
    if mode not in REFINEMENTS:
        raise ValueError(f"refinement: must be one of {', '.join(REFINEMENTS)}, got {mode!r}")
    if mode == "none" or observations.hkl.shape[0] < MIN_SPOTS:
        return Refined(lattice, beam_shift_pxl)
    model = _Model(lattice, observations, geometry, mode, beam_shift_pxl)
    parameters = model.start()
    model.scale = _spread(*model.raw_residuals(parameters))
    parameters = _solve(model, parameters)
    direction, excitation = model.raw_residuals(parameters)
    spread = _spread(direction, excitation)
    keep = (np.linalg.norm(direction, axis=1) < OUTLIER_SIGMA * math.sqrt(3) * spread[0]) & (
        np.abs(excitation) < OUTLIER_SIGMA * spread[1]
    )
    if MIN_SPOTS <= keep.sum() < keep.size:
        model = model.subset(keep)
        model.scale = spread
        parameters = _solve(model, parameters)
    ub, _cell, beam = model.unpack(parameters)
    refined = Lattice(np.asarray(np.linalg.inv(ub), dtype=np.float64), lattice.bravais)
    return Refined(refined, (float(beam[0]), float(beam[1])))
