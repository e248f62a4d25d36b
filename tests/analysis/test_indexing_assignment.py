"""The compiled per-spot steps of the indexer against plain numpy: spot positions and
scattering vectors (with a beam shift, over two modules and the gap between them), the
assignment of Miller indices and the per-image numbers."""

from __future__ import annotations

import numpy as np
import pytest

from jfsim.analysis.indexing.lattice import Lattice
from jfsim.analysis.indexing.reciprocal import scattering_vectors, spot_positions
from jfsim.analysis.indexing.solution import assign, image_numbers
from tests.analysis.test_refinement import WAVELENGTH_A, _lattice, _two_module_geometry

SHIFT_PXL = (0.3, -0.2)


def _positions() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    return rng.uniform(-5.0, 415.0, 3000), rng.uniform(-5.0, 405.0, 3000)


def test_spot_positions_are_the_geometrys_with_the_beam_shift() -> None:
    geometry = _two_module_geometry()
    x, y = _positions()
    lab_mm, steps_mm = spot_positions(geometry, x, y, beam_shift_pxl=SHIFT_PXL)
    expected = geometry.lab_mm_at(x - SHIFT_PXL[0], y - SHIFT_PXL[1])
    outside = np.isnan(expected[:, 0])
    assert 0 < outside.sum() < x.size // 4  # the gap and the margins
    np.testing.assert_array_equal(np.isnan(lab_mm), np.isnan(expected))
    np.testing.assert_allclose(lab_mm[~outside], expected[~outside], rtol=1e-15, atol=1e-12)
    moved = geometry.lab_mm_at(x - SHIFT_PXL[0] + 1.0, y - SHIFT_PXL[1])
    same_module = ~np.isnan(moved[:, 0]) & ~outside & (np.abs(x - 205.0) > 10.0)
    np.testing.assert_allclose(
        steps_mm[same_module, :, 0], (moved - expected)[same_module], atol=1e-12
    )
    assert np.all(np.isnan(steps_mm[outside]))


def _numpy_assign(
    lattice: Lattice, r: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fractional = r @ lattice.real_space_A.T
    finite = np.all(np.isfinite(fractional), axis=1)
    nearest = np.where(finite[:, None], np.rint(np.nan_to_num(fractional)), 0.0)
    indexed = (
        finite
        & np.all(np.abs(np.nan_to_num(fractional) - nearest) < tolerance, axis=1)
        & np.any(nearest != 0, axis=1)
    )
    s1 = nearest @ lattice.reciprocal_invA.T + np.array([0.0, 0.0, 1.0 / WAVELENGTH_A])
    excitation = np.where(indexed, np.linalg.norm(s1, axis=1) - 1.0 / WAVELENGTH_A, np.nan)
    return nearest.astype(np.int32), indexed, excitation


def test_assignment_and_image_numbers_are_numpys() -> None:
    geometry = _two_module_geometry()
    lattice = _lattice((61.0, 61.0, 97.0, 90.0, 90.0, 120.0), "hP", seed=5)
    x, y = _positions()
    r = scattering_vectors(geometry, x, y, beam_shift_pxl=SHIFT_PXL)
    found = assign(lattice, r, 0.2, WAVELENGTH_A)
    hkl, indexed, excitation = _numpy_assign(lattice, r, 0.2)
    assert 0 < indexed.sum() < indexed.size and np.isnan(r[:, 0]).any()
    np.testing.assert_array_equal(found.hkl, hkl)
    np.testing.assert_array_equal(found.indexed, indexed)
    np.testing.assert_allclose(found.excitation_error_invA, excitation, rtol=0, atol=1e-15)
    radius, resolution = image_numbers(found, r)
    assert radius == pytest.approx(np.sqrt(np.mean(excitation[indexed] ** 2)), rel=1e-14)
    assert resolution == pytest.approx(np.min(1.0 / np.linalg.norm(r[indexed], axis=1)), rel=1e-15)
    nothing = assign(lattice, r[:0], 0.2, WAVELENGTH_A)
    assert nothing.n_indexed == 0 and np.isnan(image_numbers(nothing, r[:0])).all()
