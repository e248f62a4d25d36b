"""Refinement of an indexed lattice against the observed spots (``-r``, analysis.md §3).

Least squares (``scipy.optimize.least_squares``) of observed against predicted spots:

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

The Jacobian is analytic (:meth:`_Model.jacobian`): finite differences cost one residual
evaluation per parameter and step, and made refinement the dearest step of a still's
analysis. Rotations use the left Jacobian of SO(3); only B(cell), a 3×3 matrix from gemmi,
is differentiated numerically (central differences, exact to ~1e-10).

UB = R(ω)·U₀·B(cell), with B gemmi's (:func:`jfsim.geometry.b_matrix`) and U₀ the nearest
rotation to UB₀·B₀⁻¹: the lattice keeps its setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from jfsim.analysis.geometry import RunGeometry
from jfsim.analysis.indexing.lattice import Lattice
from jfsim.analysis.indexing.reciprocal import pixel_steps_mm
from jfsim.geometry import b_matrix, rotation_matrix

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
    angle = float(np.linalg.norm(omega))
    if angle < 1e-15:
        return np.eye(3)
    axis = omega / angle
    return np.asarray(rotation_matrix((float(axis[0]), float(axis[1]), float(axis[2])), angle))


def _skew(v: FloatArray) -> FloatArray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def _left_jacobian(omega: FloatArray) -> FloatArray:
    """J with exp([ω + δ]×) = exp([J·δ]×)·exp([ω]×) to first order (SO(3)'s left Jacobian)."""
    angle = float(np.linalg.norm(omega))
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
        # The spots' lab positions at the starting beam centre and their pixel steps: a
        # module is flat, so a beam shift moves a position along them (no module lookup
        # per evaluation).
        shifted_x = observations.x_index - self.beam0[0]
        shifted_y = observations.y_index - self.beam0[1]
        self.lab0_mm = geometry.lab_mm_at(shifted_x, shifted_y)
        self.steps_mm = np.stack(pixel_steps_mm(geometry, shifted_x, shifted_y), axis=-1)

    @property
    def n_parameters(self) -> int:
        return 3 + (self.cell0.size + 2 if self.mode == "beam_and_lattice" else 0)

    def start(self) -> FloatArray:
        if self.mode == "beam_and_lattice":
            return np.concatenate([np.zeros(3), self.cell0, self.beam0])
        return np.zeros(3)

    def unpack(self, p: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(UB, free cell, beam shift) of parameters ``p``."""
        if self.mode == "beam_and_lattice":
            cell = p[3 : 3 + self.cell0.size]
            beam = p[3 + self.cell0.size :]
        else:
            cell, beam = self.cell0, self.beam0
        ub = _small_rotation(p[:3]) @ self.u0 @ b_matrix(_full_cell(self.bravais, cell))
        return ub, cell, beam

    def _observed(self, beam: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(unit directions ``(n, 3)``, distances mm) of the spots with beam shift ``beam``:
        moving the beam by +1 pixel moves every spot by −1 pixel step."""
        lab = self.lab0_mm - self.steps_mm @ (beam - self.beam0)
        length = np.sqrt(np.einsum("ni,ni->n", lab, lab))
        return lab / length[:, None], length

    def _predicted(self, ub: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(unit directions of s1 = Q·UB·h + s0 ``(n, 3)``, |s1|)."""
        r = self.observations.hkl @ ub.T
        if self.observations.rotations is not None:
            r = np.einsum("nij,nj->ni", self.observations.rotations, r)
        s1 = r + self.s0
        length = np.sqrt(np.einsum("ni,ni->n", s1, s1))
        return s1 / length[:, None], length

    def raw_residuals(self, p: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(direction differences ``(n, 3)``, relative excitation errors ``(n,)``)."""
        ub, _cell, beam = self.unpack(p)
        observed, _distance = self._observed(beam)
        predicted, length = self._predicted(ub)
        return observed - predicted, (length - self.s0[2]) / self.s0[2]

    def residuals(self, p: FloatArray) -> FloatArray:
        direction, excitation = self.raw_residuals(p)
        return np.concatenate([direction.ravel() / self.scale[0], excitation / self.scale[1]])

    def jacobian(self, p: FloatArray) -> FloatArray:
        """∂ :meth:`residuals` / ∂p (rows as :meth:`residuals`, one column per parameter).

        With s1 = Q·R(ω)·U₀·B·h + s0 and û = s1/|s1|: dû = (I − ûûᵀ)·ds1/|s1| and
        d|s1| = û·ds1; d(R·v) = (J_l·dω) × R·v = [J_l·e_k]×·R·U₀·B·h for dω = e_k; the
        beam shift moves the observed direction along its pixel steps.
        """
        obs = self.observations
        rotation = _small_rotation(p[:3])
        jl = _left_jacobian(p[:3])
        ub, cell, beam = self.unpack(p)
        matrices = [_skew(jl[:, k]) @ ub for k in range(3)]
        if self.mode == "beam_and_lattice":
            turned_u0 = rotation @ self.u0
            matrices += [turned_u0 @ d for d in _b_derivatives(self.bravais, cell)]
        n_lattice = len(matrices)
        # ds1[n, i, q] = Σ_j M_q[i, j]·h[n, j], as one product
        stacked = np.concatenate([m.T for m in matrices], axis=1)  # (3, 3·q)
        ds1 = (obs.hkl @ stacked).reshape(-1, n_lattice, 3).transpose(0, 2, 1)
        if obs.rotations is not None:
            ds1 = np.einsum("nij,njq->niq", obs.rotations, ds1)
        predicted, length = self._predicted(ub)
        along = np.einsum("ni,niq->nq", predicted, ds1)
        d_direction = -(ds1 - predicted[:, :, None] * along[:, None, :]) / length[:, None, None]
        d_excitation = along / self.s0[2]
        if self.mode == "beam_and_lattice":
            observed, distance = self._observed(beam)
            d_lab = -self.steps_mm  # (n, 3, 2)
            along_lab = np.einsum("ni,nib->nb", observed, d_lab)
            d_observed = (d_lab - observed[:, :, None] * along_lab[:, None, :]) / distance[
                :, None, None
            ]
            d_direction = np.concatenate([d_direction, d_observed], axis=2)
            d_excitation = np.concatenate([d_excitation, np.zeros((length.size, 2))], axis=1)
        n_parameters = d_direction.shape[2]
        return np.concatenate(
            [
                d_direction.reshape(-1, n_parameters) / self.scale[0],
                d_excitation / self.scale[1],
            ]
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
        model = _Model(lattice, observations.subset(keep), geometry, mode, beam_shift_pxl)
        model.scale = spread
        parameters = _solve(model, parameters)
    ub, _cell, beam = model.unpack(parameters)
    refined = Lattice(np.asarray(np.linalg.inv(ub), dtype=np.float64), lattice.bravais)
    return Refined(refined, (float(beam[0]), float(beam[1])))
