"""Lattice refinement (``-r``) on spots made in memory: the normal equations from the
analytic Jacobian agree with those from finite differences, and refinement recovers a
lattice and beam centre that were disturbed."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest

from jfsim.analysis.geometry import DetectorModule, RunGeometry
from jfsim.analysis.indexing.lattice import Lattice
from jfsim.analysis.indexing.reciprocal import scattering_vectors, spot_positions
from jfsim.analysis.indexing.refine import (
    Observations,
    _evaluate,
    _model,
    _normal_equations,
    _spread,
    refine_lattice,
)
from jfsim.analysis.indexing.unit_cell import FAMILIES
from jfsim.geometry import Panel, panel_from_position, rotation_matrix

WAVELENGTH_A = 1.0
#: (cell, Bravais type): one per lattice family's set of free cell parameters.
LATTICES = [
    ((79.1, 79.1, 37.9, 90.0, 90.0, 90.0), "tP"),
    ((61.0, 61.0, 97.0, 90.0, 90.0, 120.0), "hP"),
    ((35.0, 42.0, 51.0, 90.0, 98.0, 90.0), "mP"),
    ((31.0, 38.0, 44.0, 81.0, 77.0, 69.0), "aP"),
]


def _central_differences(function, parameters: np.ndarray, step: float = 1e-6) -> np.ndarray:  # type: ignore[no-untyped-def]
    columns = []
    for j in range(parameters.size):
        up, down = parameters.copy(), parameters.copy()
        up[j] += step
        down[j] -= step
        columns.append((function(up) - function(down)) / (2.0 * step))
    return np.stack(columns, axis=1)


def _two_module_geometry() -> RunGeometry:
    """Two 200 × 400 modules side by side; the right one slightly turned, so that a
    pixel step differs between them."""
    left = panel_from_position(
        distance_mm=80.0,
        beam_x_pxl=210.0,
        beam_y_pxl=200.0,
        pixel_size_mm=0.3,
        width_pxl=200,
        height_pxl=400,
    )
    turn = rotation_matrix((0.0, 1.0, 0.0), math.radians(2.0))
    right = Panel(
        origin_mm=tuple(np.add(left.origin_mm, np.multiply(left.fast, 0.3 * 210))),
        fast=tuple(turn @ np.asarray(left.fast)),
        slow=left.slow,
        pixel_size_mm=0.3,
        width_pxl=200,
        height_pxl=400,
    )
    return RunGeometry(
        modules=(DetectorModule(left), DetectorModule(right, origin_row=0, origin_col=210)),
        image_shape=(400, 410),
        wavelength_A=WAVELENGTH_A,
    )


def _lattice(cell: tuple[float, ...], bravais: str, seed: int) -> Lattice:
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    turn = rotation_matrix(tuple(axis / np.linalg.norm(axis)), rng.uniform(0, 6))
    real = np.array(gemmi.UnitCell(*cell).orth.mat, dtype=float).T @ turn.T
    return Lattice(real, bravais)


def _recorded_spots(
    lattice: Lattice, geometry: RunGeometry, beam_shift_pxl: tuple[float, float]
) -> Observations:
    """The reflections within 0.0005 Å⁻¹ of the Ewald sphere, at the exact positions their
    predicted rays hit (a beam centre moved by ``beam_shift_pxl``)."""
    limit = 30
    grid = np.arange(-limit, limit + 1)
    hkl = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    s0 = np.array([0.0, 0.0, 1.0 / WAVELENGTH_A])
    s1 = hkl @ lattice.reciprocal_invA.T + s0
    excitation = np.linalg.norm(s1, axis=1) - s0[2]
    near = (np.abs(excitation) < 5e-4) & np.any(hkl != 0, axis=1)
    xs, ys, chosen = [], [], []
    for module in geometry.modules:
        x, y, hits = module.panel.ray_to_pixel(s1[near])
        inside = hits & (x > 1) & (x < 199) & (y > 1) & (y < 399)
        xs.append(x[inside] + module.origin_col - 0.5 + beam_shift_pxl[0])
        ys.append(y[inside] + module.origin_row - 0.5 + beam_shift_pxl[1])
        chosen.append(hkl[near][inside])
    return Observations(np.concatenate(xs), np.concatenate(ys), np.concatenate(chosen) * 1.0)


@pytest.mark.parametrize("rotation_data", [False, True], ids=["stills", "rotation"])
@pytest.mark.parametrize("mode", ["orientation", "beam_and_lattice"])
@pytest.mark.parametrize(("cell", "bravais"), LATTICES, ids=[b for _c, b in LATTICES])
def test_the_analytic_jacobian_equals_finite_differences(
    cell: tuple[float, ...], bravais: str, mode: str, rotation_data: bool
) -> None:
    """Over every spot but a few (the refinement's second round evaluates a subset); and
    the normal equations are those of that Jacobian."""
    geometry = _two_module_geometry()
    lattice = _lattice(cell, bravais, seed=3)
    spots = _recorded_spots(lattice, geometry, (0.0, 0.0))
    n = spots.hkl.shape[0]
    assert n > 30
    assert np.any(spots.x_index < 200) and np.any(spots.x_index > 210)  # both modules
    turns = None
    if rotation_data:
        turns = np.stack([rotation_matrix((1.0, 0.1, 0.0), 0.003 * i) for i in range(n)])
    start_shift = (0.4, -0.3)
    lab_mm, steps_mm = spot_positions(
        geometry, spots.x_index, spots.y_index, beam_shift_pxl=start_shift
    )
    model, proper = _model(
        spots.hkl,
        np.zeros((0, 3, 3)) if turns is None else turns,
        lab_mm,
        steps_mm,
        lattice.real_space_A,
        FAMILIES[bravais[0]],
        np.array(start_shift),
        1.0 / WAVELENGTH_A,
    )
    assert proper
    start = np.zeros(3)
    if mode == "beam_and_lattice":
        start = np.concatenate([start, model[6], start_shift])
    parameters = start + np.random.default_rng(7).normal(0.0, 1e-3, start.size)
    chosen = np.flatnonzero(np.arange(n) % 7 != 3)
    residuals = np.empty(4 * chosen.size)
    scale = _spread(parameters, chosen, model, residuals)

    def evaluate(p: np.ndarray, jacobian: np.ndarray) -> np.ndarray:
        _evaluate(p, chosen, model, scale[0], scale[1], residuals, jacobian)
        return residuals.copy()

    numeric = _central_differences(lambda p: evaluate(p, np.empty((0, 0))), parameters)
    analytic = np.empty((start.size, 4 * chosen.size))
    r = evaluate(parameters, analytic)
    assert numeric.shape == analytic.T.shape == (4 * chosen.size, start.size)
    np.testing.assert_allclose(analytic.T, numeric, atol=1e-6 * np.abs(numeric).max())
    normal, gradient = np.empty((start.size, start.size)), np.empty(start.size)
    _normal_equations(analytic, r, normal, gradient)
    np.testing.assert_allclose(normal, analytic @ analytic.T, rtol=1e-12)
    np.testing.assert_allclose(gradient, analytic @ r, rtol=1e-10, atol=1e-12)


def test_pixel_steps_are_each_modules_axes() -> None:
    geometry = _two_module_geometry()
    x = np.array([10.0, 300.0, 205.0])
    y = np.array([20.0, 20.0, 20.0])
    _lab, steps = spot_positions(geometry, x, y)
    step_x, step_y = steps[:, :, 0], steps[:, :, 1]
    for row in range(2):
        moved = geometry.lab_mm_at(x[row : row + 1] + 1.0, y[row : row + 1] + 1.0)
        here = geometry.lab_mm_at(x[row : row + 1], y[row : row + 1])
        np.testing.assert_allclose(moved[0] - here[0], step_x[row] + step_y[row], atol=1e-12)
    assert not np.allclose(step_x[0], step_x[1])
    assert np.all(np.isnan(step_x[2])) and np.all(np.isnan(step_y[2]))  # in the gap


@pytest.mark.parametrize(("cell", "bravais"), LATTICES[:3], ids=[b for _c, b in LATTICES[:3]])
def test_refinement_recovers_a_disturbed_lattice_and_beam_centre(
    cell: tuple[float, ...], bravais: str
) -> None:
    geometry = _two_module_geometry()
    true = _lattice(cell, bravais, seed=11)
    spots = _recorded_spots(true, geometry, (0.6, -0.4))
    turn = rotation_matrix((0.3, 0.9, 0.1), math.radians(0.15))
    start = Lattice(1.004 * true.real_space_A @ turn.T, bravais)  # 0.4 % larger, 0.15° off
    refined = refine_lattice(start, spots, geometry, "beam_and_lattice")
    found = np.asarray(refined.lattice.real_space_A)
    error_A = np.abs(found - true.real_space_A).max()  # the excitation errors pull a little
    assert error_A < 0.1 * np.abs(start.real_space_A - true.real_space_A).max()
    np.testing.assert_allclose(refined.beam_shift_pxl, (0.6, -0.4), atol=0.02)
    r = scattering_vectors(
        geometry, spots.x_index, spots.y_index, beam_shift_pxl=refined.beam_shift_pxl
    )
    np.testing.assert_allclose(r @ found.T, spots.hkl, atol=0.1)


def test_a_left_handed_basis_is_refused() -> None:
    geometry = _two_module_geometry()
    lattice = _lattice(*LATTICES[0], seed=11)
    spots = _recorded_spots(lattice, geometry, (0.0, 0.0))
    left_handed = Lattice(-lattice.real_space_A, lattice.bravais)
    with pytest.raises(ValueError, match="right-handed"):
        refine_lattice(left_handed, spots, geometry, "orientation")
