"""Geometric round trip: pixels → reciprocal space → least-squares UB → the true cell."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jfsim.experiment import Background, StillsScan
from jfsim.geometry import cell_from_ub, refine_ub, rotation_matrix
from jfsim.sim import Renderer


def _cell_error(found: tuple, true: tuple) -> float:
    return max(abs(f - t) / t for f, t in zip(found, true, strict=True))


def test_ub_from_truth_positions_of_a_rotation_sweep(rotation_experiment) -> None:
    renderer = Renderer(rotation_experiment, device="cpu")
    scene = renderer.scene
    hkl, r0 = [], []
    for image_id in range(4):
        table = renderer.truth(image_id).reflections
        r_lab = scene.panel.pixel_to_reciprocal(table.x_pxl, table.y_pxl, scene.wavelength_A)
        for row, phi_deg in enumerate(table.phi_deg):
            back = rotation_matrix(rotation_experiment.scan.axis_vector, -math.radians(phi_deg))
            r0.append(back @ r_lab[row])
        hkl.append(table.hkl)
    ub = refine_ub(np.concatenate(hkl), np.array(r0))
    true_cell = rotation_experiment.crystal.unit_cell.as_tuple()
    assert _cell_error(cell_from_ub(ub), true_cell) < 1e-3
    np.testing.assert_allclose(ub, renderer.truth(0).ub_matrices[0], atol=1e-9)


def test_ub_from_measured_centroids_of_a_still(make_experiment) -> None:
    """Centroids of rendered spots (not the truth positions) still give the cell to 0.1 %."""
    experiment = make_experiment(
        scan=StillsScan(hit_rate=1.0),
        background=Background(
            constant_photons=0.0, water_ring_photons=0.0, air_scatter_photons=0.0
        ),
        mosaicity_deg=0.01,
        bandwidth_fraction=2e-4,
        domain_size_A=20000.0,
    )
    renderer = Renderer(experiment, device="cpu")
    scene = renderer.scene
    expected = renderer.expectation(0)
    table = renderer.truth(0).reflections
    sensitive = renderer.plan.pixel_class == 0
    hkl, centroids = [], []
    for i in np.nonzero(table.intensity_photons > 50)[0]:
        col, row = int(table.x_pxl[i]), int(table.y_pxl[i])
        if (
            not (4 <= col < 156 and 4 <= row < 168)
            or not sensitive[row - 4 : row + 5, col - 4 : col + 5].all()
        ):
            continue
        if np.sum(np.hypot(table.x_pxl - table.x_pxl[i], table.y_pxl - table.y_pxl[i]) < 8) > 1:
            continue
        window = expected[row - 4 : row + 5, col - 4 : col + 5].astype(np.float64)
        ys, xs = np.mgrid[row - 4 : row + 5, col - 4 : col + 5] + 0.5
        centroids.append(((window * xs).sum() / window.sum(), (window * ys).sum() / window.sum()))
        hkl.append(table.hkl[i])
    assert len(hkl) >= 10
    points = np.array(centroids)
    r = scene.panel.pixel_to_reciprocal(points[:, 0], points[:, 1], scene.wavelength_A)
    # a still only samples the Ewald sphere: r is off the lattice point by ε along s1;
    # the least-squares cell is still within 0.1 %
    ub = refine_ub(np.array(hkl), r)
    true_cell = experiment.crystal.unit_cell.as_tuple()
    assert _cell_error(cell_from_ub(ub), true_cell) < 1e-3
    assert cell_from_ub(ub)[3:] == pytest.approx((90, 90, 90), abs=0.1)
