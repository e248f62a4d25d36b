"""The prediction of stills: the pre-selection near the Ewald sphere (visiting only the runs
of l that can pass) must keep exactly what a test of the whole Miller-index box keeps, the
compiled prediction must equal :func:`jfsim.geometry.predict_still` to rounding, and the
table of systematic absences must say what gemmi says."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest

from jfsim.analysis.bragg_prediction import (
    MIN_PREDICTED_PARTIALITY,
    BraggPrediction,
    ImageLattice,
)
from jfsim.analysis.geometry import DetectorModule, RunGeometry
from jfsim.geometry import (
    direct_lattice_rows,
    panel_from_position,
    predict_still,
    rotation_matrix,
)

#: (cell, wavelength Å, mosaicity °, profile radius Å⁻¹): lysozyme as the benchmark's
#: stills, a small triclinic cell, and a profile wider than 1/λ (no hole in the runs).
CASES = [
    ((79.1, 79.1, 37.9, 90.0, 90.0, 90.0), 1.0, 0.1, 1e-3),
    ((31.0, 38.0, 44.0, 81.0, 77.0, 69.0), 0.7, 0.5, 5e-3),
    ((52.0, 70.0, 41.0, 90.0, 90.0, 90.0), 1.5, 0.0, 2e-3),
    ((40.0, 45.0, 50.0, 90.0, 90.0, 90.0), 1.0, 2.0, 1.2),
]


def _box_oracle(prediction: BraggPrediction, ub: np.ndarray, mosaicity_rad: float, radius: float):  # type: ignore[no-untyped-def]
    """Every index of the box that passes the still test, in h, k, l order (plain numpy)."""
    lengths = np.linalg.norm(direct_lattice_rows(ub), axis=1)
    limits = np.minimum(np.floor(lengths / prediction.d_min_A), prediction.max_hkl).astype(int)
    axes = [np.arange(-m, m + 1) for m in limits]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    r = hkl @ ub.T
    r_sq = np.sum(r * r, axis=1)
    inv_wavelength = 1.0 / prediction.geometry.wavelength_A
    epsilon = np.linalg.norm(r + np.array([0.0, 0.0, inv_wavelength]), axis=1) - inv_wavelength
    sigmas = math.sqrt(-2.0 * math.log(MIN_PREDICTED_PARTIALITY)) + 0.5
    keep = (r_sq <= 1.0 / prediction.d_min_A**2) & (
        epsilon**2 <= sigmas**2 * (radius**2 + r_sq * mosaicity_rad**2)
    )
    return hkl[keep]


def _geometry(wavelength_A: float, poni_rot1_rad: float = 0.0) -> RunGeometry:
    panel = panel_from_position(
        distance_mm=100.0,
        beam_x_pxl=500.0,
        beam_y_pxl=520.0,
        pixel_size_mm=0.075,
        width_pxl=1030,
        height_pxl=1028,
        poni_rot1_rad=poni_rot1_rad,
    )
    return RunGeometry((DetectorModule(panel),), (1028, 1030), wavelength_A, 0.99)


def _orientations(cell: tuple[float, ...], n: int) -> list[np.ndarray]:
    turns = []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        axis = rng.normal(size=3)
        turn = rotation_matrix(tuple(axis / np.linalg.norm(axis)), rng.uniform(0, 6))
        turns.append(turn @ np.array(gemmi.UnitCell(*cell).frac.mat, dtype=float).T)
    return turns


@pytest.mark.parametrize(("cell", "wavelength_A", "mosaicity_deg", "radius_invA"), CASES)
def test_still_candidates_equal_a_test_of_the_whole_box(
    cell: tuple[float, ...], wavelength_A: float, mosaicity_deg: float, radius_invA: float
) -> None:
    prediction = BraggPrediction(_geometry(wavelength_A), d_min_A=2.5)
    for ub in _orientations(cell, 3):
        found, _box = prediction._candidates(ub, None, math.radians(mosaicity_deg), radius_invA)
        expected = _box_oracle(prediction, ub, math.radians(mosaicity_deg), radius_invA)
        assert len(expected) > 0
        np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize(("cell", "wavelength_A", "mosaicity_deg", "radius_invA"), CASES)
@pytest.mark.parametrize("tilt_rad", [0.0, 0.3])
def test_compiled_still_prediction_equals_predict_still(
    cell: tuple[float, ...],
    wavelength_A: float,
    mosaicity_deg: float,
    radius_invA: float,
    tilt_rad: float,
) -> None:
    geometry = _geometry(wavelength_A, poni_rot1_rad=tilt_rad)
    prediction = BraggPrediction(
        geometry, d_min_A=2.0, mosaicity_deg=mosaicity_deg, profile_radius_invA=radius_invA
    )
    mosaicity_rad = math.radians(mosaicity_deg)
    for ub in _orientations(cell, 2):
        found = prediction.predict(0, ImageLattice(ub))
        candidates, _box = prediction._candidates(ub, None, mosaicity_rad, radius_invA)
        expected = predict_still(
            ub=ub,
            hkl=candidates,
            wavelength_A=wavelength_A,
            panel=geometry.modules[0].panel,
            mosaicity_rad=mosaicity_rad,
            domain_size_A=1.0 / radius_invA,
            polarization_factor=0.99,
            min_partiality=MIN_PREDICTED_PARTIALITY,
        )
        assert len(expected) > 10
        np.testing.assert_array_equal(found.hkl, expected.hkl)
        np.testing.assert_allclose(found.x_pxl, expected.x_pxl - 0.5, rtol=0, atol=1e-9)
        np.testing.assert_allclose(found.y_pxl, expected.y_pxl - 0.5, rtol=0, atol=1e-9)
        for ours, theirs in (
            (found.d_A, expected.d_A),
            (found.partiality, expected.partiality),
            (found.lp, expected.polarization),
        ):
            np.testing.assert_allclose(ours, theirs, rtol=1e-12)
        assert np.isnan(found.phi_deg).all() and np.isnan(found.zeta).all()


@pytest.mark.parametrize("space_group", ["P 43 21 2", "I 21 3", "F d -3 m", "P 1 21 1"])
def test_the_absence_table_says_what_gemmi_says(space_group: str) -> None:
    group = gemmi.SpaceGroup(space_group)
    prediction = BraggPrediction(_geometry(1.0), space_group=group)
    rng = np.random.default_rng(3)
    for limit in (6, 4, 11, 30):  # the table grows, then serves smaller boxes
        box = np.array([limit, limit, limit // 2])
        hkl = rng.integers(-box, box + 1, size=(4000, 3)).astype(np.int32)
        hkl[:50, rng.integers(0, 3)] = 0  # zones and axes, where the absences are
        hkl[50:100, :2] = 0
        expected = np.asarray(group.operations().systematic_absences(hkl), dtype=bool)
        assert expected.any()
        np.testing.assert_array_equal(prediction._systematically_absent(hkl, box), expected)
