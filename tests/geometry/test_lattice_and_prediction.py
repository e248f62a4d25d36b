"""Lattice maths and Ewald-sphere prediction (rotation and stills)."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest

from jfsim.geometry import (
    RotationPredictor,
    b_matrix,
    cell_from_ub,
    direct_lattice_rows,
    observable_miller_indices,
    panel_from_position,
    predict_still,
    random_orientation,
    rotation_matrix,
)
from jfsim.geometry.prediction import panel_d_min_A

LYSOZYME = (79.1, 79.1, 37.9, 90.0, 90.0, 90.0)
MONOCLINIC = (52.0, 61.0, 45.0, 90.0, 103.5, 90.0)
WAVELENGTH_A = 1.0


@pytest.fixture(scope="module")
def panel():
    return panel_from_position(
        distance_mm=100.0,
        beam_x_pxl=515.5,
        beam_y_pxl=530.5,
        pixel_size_mm=0.075,
        width_pxl=1030,
        height_pxl=1064,
    )


def test_b_matrix_gives_gemmi_d_spacings() -> None:
    b = b_matrix(MONOCLINIC)
    cell = gemmi.UnitCell(*MONOCLINIC)
    for hkl in ([1, 0, 0], [0, 1, 0], [3, -2, 5], [-4, 7, 1]):
        assert 1.0 / np.linalg.norm(b @ hkl) == pytest.approx(cell.calculate_d(hkl), rel=1e-12)


def test_cell_from_ub_and_direct_lattice() -> None:
    u = random_orientation(np.random.default_rng(3))
    assert np.linalg.det(u) == pytest.approx(1.0)
    np.testing.assert_allclose(u @ u.T, np.eye(3), atol=1e-12)
    ub = u @ b_matrix(MONOCLINIC)
    assert cell_from_ub(ub) == pytest.approx(MONOCLINIC, rel=1e-10)
    a, b, c = direct_lattice_rows(ub)
    np.testing.assert_allclose(np.array([a, b, c]) @ ub, np.eye(3), atol=1e-12)  # a·r_h = h


def test_rotation_matrix_is_right_handed() -> None:
    quarter = rotation_matrix((0, 0, 1), math.pi / 2)
    np.testing.assert_allclose(quarter @ [1, 0, 0], [0, 1, 0], atol=1e-15)


def test_observable_indices_exclude_systematic_absences() -> None:
    hkl = observable_miller_indices(LYSOZYME, 96, 2.0)
    operations = gemmi.find_spacegroup_by_number(96).operations()
    assert not any(operations.is_systematically_absent(list(map(int, h))) for h in hkl[::7])
    # P4₃2₁2: 00l only with l = 4n, h00 only with h even
    axial_l = hkl[(hkl[:, 0] == 0) & (hkl[:, 1] == 0)][:, 2]
    axial_h = hkl[(hkl[:, 1] == 0) & (hkl[:, 2] == 0)][:, 0]
    assert len(axial_l) > 0 and np.all(axial_l % 4 == 0)
    assert len(axial_h) > 0 and np.all(axial_h % 2 == 0)
    d = 1.0 / np.linalg.norm(hkl @ b_matrix(LYSOZYME).T, axis=1)
    assert d.min() >= 2.0 - 1e-9


def test_rotation_prediction_puts_reflections_on_the_ewald_sphere(panel) -> None:
    ub = random_orientation(np.random.default_rng(8)) @ b_matrix(LYSOZYME)
    hkl = observable_miller_indices(LYSOZYME, 96, panel_d_min_A(panel, WAVELENGTH_A))
    axis = (-1.0, 0.0, 0.0)
    predictor = RotationPredictor(
        ub=ub, hkl=hkl, axis=axis, wavelength_A=WAVELENGTH_A, panel=panel, mosaicity_rad=1e-3
    )
    predicted = predictor.predict(0.0, math.radians(1.0))
    assert len(predicted) > 50
    for i in range(0, len(predicted), max(1, len(predicted) // 25)):
        r = rotation_matrix(axis, predicted.phi_rad[i]) @ ub @ predicted.hkl[i]
        assert np.linalg.norm(r + np.array([0, 0, 1 / WAVELENGTH_A])) == pytest.approx(
            1 / WAVELENGTH_A
        )
        x, y, hit = panel.reciprocal_to_pixel(r, WAVELENGTH_A)
        assert bool(hit)
        assert (float(x), float(y)) == pytest.approx((predicted.x_pxl[i], predicted.y_pxl[i]))
        assert 1.0 / np.linalg.norm(r) == pytest.approx(predicted.d_A[i])
    assert np.all(np.isnan(predicted.excitation_error_invA))


def test_rotation_partialities_of_consecutive_images_sum_to_one(panel) -> None:
    ub = random_orientation(np.random.default_rng(9)) @ b_matrix(LYSOZYME)
    hkl = observable_miller_indices(LYSOZYME, 96, 2.5)
    predictor = RotationPredictor(
        ub=ub,
        hkl=hkl,
        axis=(-1.0, 0.0, 0.0),
        wavelength_A=WAVELENGTH_A,
        panel=panel,
        mosaicity_rad=math.radians(0.005),  # σ_φ ≤ 0.25° at |ζ| ≥ 0.02
    )
    step = math.radians(0.1)
    totals: dict[tuple[int, int, int, float], float] = {}
    for k in range(60):
        p = predictor.predict(k * step, (k + 1) * step, min_partiality=1e-9)
        for hkl_row, phi, fraction in zip(p.hkl, p.phi_rad, p.partiality, strict=True):
            key = (*map(int, hkl_row), round(phi, 9))
            totals[key] = totals.get(key, 0.0) + fraction
    # reflections whose whole rocking curve lies inside the 6° sweep are recorded in full
    p_all = predictor.predict(math.radians(1.5), math.radians(4.5), min_partiality=1e-9)
    inner = {
        (*map(int, h), round(phi, 9))
        for h, phi in zip(p_all.hkl, p_all.phi_rad, strict=True)
        if math.radians(1.5) < phi < math.radians(4.5)
    }
    assert len(inner) > 20
    np.testing.assert_allclose([totals[key] for key in inner], 1.0, atol=1e-6)


def test_still_prediction_excitation_errors_and_positions(panel) -> None:
    ub = random_orientation(np.random.default_rng(10)) @ b_matrix(LYSOZYME)
    hkl = observable_miller_indices(LYSOZYME, 96, panel_d_min_A(panel, WAVELENGTH_A))
    mosaicity = math.radians(0.1)
    predicted = predict_still(
        ub=ub,
        hkl=hkl,
        wavelength_A=WAVELENGTH_A,
        panel=panel,
        mosaicity_rad=mosaicity,
        bandwidth_fraction=2e-3,
        domain_size_A=1000.0,
    )
    assert len(predicted) > 100
    r = predicted.hkl @ ub.T
    s1 = r + np.array([0, 0, 1 / WAVELENGTH_A])
    epsilon = np.linalg.norm(s1, axis=1) - 1 / WAVELENGTH_A
    np.testing.assert_allclose(predicted.excitation_error_invA, epsilon, atol=1e-12)
    assert np.all(predicted.partiality >= 1e-3) and np.all(predicted.partiality <= 1.0)
    x, y, _ = panel.ray_to_pixel(s1)
    np.testing.assert_allclose(predicted.x_pxl, x, atol=1e-9)
    np.testing.assert_allclose(predicted.y_pxl, y, atol=1e-9)
    assert np.all(np.isnan(predicted.phi_rad))
    # the largest |ε| kept matches the partiality threshold for the largest σ
    assert np.abs(epsilon).max() < 4 * (np.linalg.norm(r, axis=1).max() * mosaicity + 2e-3)


@pytest.mark.parametrize("pf", [-0.5, 0.0, 0.99])
def test_polarization_vector_form_equals_pyfai_form(pf: float) -> None:
    """f(1 − (ŝ1·x)²) + (1 − f)(1 − (ŝ1·y)²) = ½[1 + cos²2θ − pf·cos 2χ·sin²2θ], χ from x."""
    from jfsim.geometry import polarization_factor_of

    rng = np.random.default_rng(12)
    two_theta = rng.uniform(0.05, 1.2, 50)
    chi = rng.uniform(-math.pi, math.pi, 50)
    s1 = np.stack(
        [np.sin(two_theta) * np.cos(chi), np.sin(two_theta) * np.sin(chi), np.cos(two_theta)],
        axis=1,
    )
    pyfai = 0.5 * (1 + np.cos(two_theta) ** 2 - pf * np.cos(2 * chi) * np.sin(two_theta) ** 2)
    np.testing.assert_allclose(polarization_factor_of(s1, pf), pyfai, rtol=1e-12)


def test_panel_d_min_is_at_the_corner_farthest_from_the_beam(panel) -> None:
    # beam at (515.5, 530.5), 0.075 mm pixels: the farthest corner is (0, 1064)
    far = max(
        math.hypot((cx - 515.5) * 0.075, (cy - 530.5) * 0.075)
        for cx in (0, 1030)
        for cy in (0, 1064)
    )
    assert far == pytest.approx(math.hypot(515.5 * 0.075, 533.5 * 0.075))
    two_theta = math.atan2(far, 100.0)
    expected = WAVELENGTH_A / (2 * math.sin(two_theta / 2))
    assert panel_d_min_A(panel, WAVELENGTH_A) == pytest.approx(expected, rel=1e-12)
