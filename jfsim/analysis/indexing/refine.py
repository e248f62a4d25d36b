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
from typing import Any

import numpy as np
import numpy.typing as npt

from jfsim.analysis.geometry import RunGeometry
from jfsim.analysis.indexing.lattice import Lattice
from jfsim.analysis.indexing.reciprocal import pixel_steps_mm, scattering_vectors
from jfsim.geometry import b_matrix, rotation_matrix

__all__ = ["REFINEMENTS", "Observations", "Refined", "refine_lattice"]

FloatArray = npt.NDArray[np.float64]

#: ``-r`` values: none, orientation only, or orientation + cell + beam centre (default).
REFINEMENTS = ("none", "orientation", "beam_and_lattice")
#: Residuals beyond this many times their group's spread are outliers in the second round.
OUTLIER_SIGMA = 4.0
#: Fewest spots a refinement needs (two per parameter and some).
MIN_SPOTS = 12


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
        self.geometry = geometry
        self.mode = mode
        free = _free_cell(lattice.bravais, lattice.cell)
        b0 = b_matrix(_full_cell(lattice.bravais, np.asarray(free)))
        self.u0 = _nearest_rotation(lattice.reciprocal_invA @ np.linalg.inv(b0))
        self.cell0 = np.asarray(free, dtype=np.float64)
        self.beam0 = np.asarray(beam_shift_pxl, dtype=np.float64)
        self.s0 = np.array([0.0, 0.0, 1.0 / geometry.wavelength_A])
        self.scale = np.ones(2)
        self.fixed_u_obs: FloatArray | None = None
        if mode != "beam_and_lattice":
            self.fixed_u_obs = self._observed_directions(self.beam0)

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

    def _observed_directions(self, beam: FloatArray) -> FloatArray:
        obs = self.observations
        r = scattering_vectors(
            self.geometry, obs.x_index, obs.y_index, beam_shift_pxl=(beam[0], beam[1])
        )
        s1 = r + self.s0
        return np.asarray(s1 / np.linalg.norm(s1, axis=1, keepdims=True))

    def raw_residuals(self, p: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(direction differences ``(n, 3)``, relative excitation errors ``(n,)``)."""
        ub, _cell, beam = self.unpack(p)
        observed = (
            self.fixed_u_obs if self.fixed_u_obs is not None else self._observed_directions(beam)
        )
        r = self.observations.hkl @ ub.T
        if self.observations.rotations is not None:
            r = np.einsum("nij,nj->ni", self.observations.rotations, r)
        s1 = r + self.s0
        length = np.linalg.norm(s1, axis=1)
        predicted = s1 / length[:, None]
        return observed - predicted, (length - self.s0[2]) / self.s0[2]

    def residuals(self, p: FloatArray) -> FloatArray:
        direction, excitation = self.raw_residuals(p)
        return np.concatenate([direction.ravel() / self.scale[0], excitation / self.scale[1]])

    def jacobian(self, p: FloatArray) -> FloatArray:
        """∂ :meth:`residuals` / ∂p (rows as :meth:`residuals`, one column per parameter).

        With s1 = Q·R(ω)·U₀·B·h + s0 and û = s1/|s1|: dû = (I − ûûᵀ)·ds1/|s1| and
        d|s1| = û·ds1; d(R·v) = (J_l·dω) × R·v; the beam shift moves the observed
        direction through its pixel's lab position (:func:`pixel_steps_mm`).
        """
        obs = self.observations
        rotation = _small_rotation(p[:3])
        jl = _left_jacobian(p[:3])
        _ub, cell, beam = self.unpack(p)
        turned = obs.hkl @ (rotation @ self.u0 @ b_matrix(_full_cell(self.bravais, cell))).T
        columns = [np.cross(jl[:, k], turned) for k in range(3)]
        if self.mode == "beam_and_lattice":
            turned_u0 = rotation @ self.u0
            columns += [obs.hkl @ (turned_u0 @ d).T for d in _b_derivatives(self.bravais, cell)]
        ds1 = np.stack(columns, axis=-1)  # (n, 3, lattice parameters)
        r = turned
        if obs.rotations is not None:
            ds1 = np.einsum("nij,njp->nip", obs.rotations, ds1)
            r = np.einsum("nij,nj->ni", obs.rotations, r)
        s1 = r + self.s0
        length = np.linalg.norm(s1, axis=1)
        predicted = s1 / length[:, None]
        along = np.einsum("ni,nip->np", predicted, ds1)
        d_direction = -(ds1 - predicted[:, :, None] * along[:, None, :]) / length[:, None, None]
        d_excitation = along / self.s0[2]
        if self.mode == "beam_and_lattice":
            d_direction = np.concatenate([d_direction, self._beam_columns(beam)], axis=2)
            d_excitation = np.concatenate([d_excitation, np.zeros((length.size, 2))], axis=1)
        n_parameters = d_direction.shape[2]
        return np.concatenate(
            [
                d_direction.reshape(-1, n_parameters) / self.scale[0],
                d_excitation / self.scale[1],
            ]
        )

    def _beam_columns(self, beam: FloatArray) -> FloatArray:
        """∂(observed direction)/∂(beam shift x, y), ``(n, 3, 2)``: shifting the beam by +1
        pixel moves every spot's lab position by −1 pixel step."""
        obs = self.observations
        shifted_x = obs.x_index - beam[0]
        shifted_y = obs.y_index - beam[1]
        lab = self.geometry.lab_mm_at(shifted_x, shifted_y)
        length = np.linalg.norm(lab, axis=1)
        unit = lab / length[:, None]
        columns = []
        for step in pixel_steps_mm(self.geometry, shifted_x, shifted_y):
            d_lab = -step
            along = np.sum(unit * d_lab, axis=1)
            columns.append((d_lab - unit * along[:, None]) / length[:, None])
        return np.stack(columns, axis=-1)


def _spread(direction: FloatArray, excitation: FloatArray) -> FloatArray:
    return np.array(
        [
            max(float(np.sqrt(np.mean(direction**2))), 1e-7),
            max(float(np.sqrt(np.mean(excitation**2))), 1e-7),
        ]
    )


def _solve(model: _Model, start: FloatArray) -> Any:
    from scipy.optimize import least_squares  # deferred: scipy is slow to import

    return least_squares(model.residuals, start, jac=model.jacobian, method="lm", x_scale="jac")


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
    parameters = _solve(model, parameters).x
    direction, excitation = model.raw_residuals(parameters)
    spread = _spread(direction, excitation)
    keep = (np.linalg.norm(direction, axis=1) < OUTLIER_SIGMA * math.sqrt(3) * spread[0]) & (
        np.abs(excitation) < OUTLIER_SIGMA * spread[1]
    )
    if MIN_SPOTS <= keep.sum() < keep.size:
        model = _Model(lattice, observations.subset(keep), geometry, mode, beam_shift_pxl)
        model.scale = spread
        parameters = _solve(model, parameters).x
    ub, _cell, beam = model.unpack(parameters)
    refined = Lattice(np.asarray(np.linalg.inv(ub), dtype=np.float64), lattice.bravais)
    return Refined(refined, (float(beam[0]), float(beam[1])))
