"""The compiled B(cell) is gemmi's to rounding, for cells of every lattice system."""

from __future__ import annotations

import numpy as np
import pytest

from jfsim.analysis.indexing.lattice import cell_of
from jfsim.analysis.indexing.unit_cell import (
    FAMILIES,
    b_matrix_into,
    cell_of_basis,
    free_cell,
    full_cell_into,
)
from jfsim.geometry import b_matrix


def _cells(family: str, rng: np.random.Generator, count: int) -> list[tuple[float, ...]]:
    """Cells of ``family``'s lattice system: lengths 3–300 Å, free angles 60–130°."""
    cells = []
    for _ in range(count):
        a, b, c = rng.uniform(3.0, 300.0, 3)
        alpha, beta, gamma = rng.uniform(60.0, 130.0, 3)
        cells.append(
            {
                "c": (a, a, a, 90.0, 90.0, 90.0),
                "t": (a, a, c, 90.0, 90.0, 90.0),
                "h": (a, a, c, 90.0, 90.0, 120.0),
                "o": (a, b, c, 90.0, 90.0, 90.0),
                "m": (a, b, c, 90.0, beta, 90.0),
                "a": (a, b, c, alpha, beta, gamma),
            }[family]
        )
    return cells


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_b_matrix_equals_gemmis(family: str) -> None:
    compared = 0
    for cell in _cells(family, np.random.default_rng(13), 200):
        expected = b_matrix(cell)
        if not np.all(np.isfinite(expected)):  # triclinic angles that make no cell
            continue
        compiled = np.empty((3, 3))
        b_matrix_into(np.asarray(cell), compiled)
        np.testing.assert_allclose(compiled, expected, rtol=0, atol=4e-16 * np.abs(expected).max())
        assert np.all(compiled[np.triu_indices(3, 1)] == 0.0)  # exact zeros, as gemmi's
        compared += 1
    assert compared >= 150


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_cell_of_its_system_comes_back_from_its_free_parameters(family: str) -> None:
    for cell in _cells(family, np.random.default_rng(5), 20):
        full = np.empty(6)
        full_cell_into(FAMILIES[family], free_cell(FAMILIES[family], np.asarray(cell)), full)
        np.testing.assert_allclose(full, cell, rtol=1e-15)  # (a + a + a) / 3 rounds


def test_the_cell_of_a_basis_is_the_lattice_modules() -> None:
    rng = np.random.default_rng(2)
    for _ in range(100):
        basis = rng.normal(0.0, 40.0, (3, 3))
        np.testing.assert_allclose(cell_of_basis(basis), cell_of(basis), rtol=1e-13)
