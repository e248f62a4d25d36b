"""Refinement results pinned to those of the refinement before it was compiled.

The refined UB matrices and beam shifts of :data:`CASES` (every lattice family's set of
free cell parameters, both modes, stills and rotation data, noisy positions and a few
wrongly indexed spots, so that the second round drops outliers) are stored in
``refinement_reference.json``, computed with the Python/numpy Levenberg–Marquardt loop and
gemmi's B matrix that the compiled refinement replaced. The compiled one must give the
same results to rounding (1e-8 relative on UB, 1e-6 pixel on the beam shift).

The inputs are built without random generators (whose streams numpy does not promise to
keep): positions are the exact predictions plus a fixed, sine-made jitter.

Regenerate the file only when a change to the refinement is meant to change its results:
``.venv/bin/python -m tests.analysis.test_refinement_reference``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gemmi
import numpy as np
import pytest

from jfsim.analysis.indexing.lattice import Lattice
from jfsim.analysis.indexing.refine import Observations, refine_lattice
from jfsim.geometry import rotation_matrix
from tests.analysis.test_refinement import _recorded_spots, _two_module_geometry

REFERENCE = Path(__file__).with_name("refinement_reference.json")
#: (cell, Bravais type) of every family of free cell parameters (c, t, h, o, m, a).
LATTICES = [
    ((52.0, 52.0, 52.0, 90.0, 90.0, 90.0), "cP"),
    ((79.1, 79.1, 37.9, 90.0, 90.0, 90.0), "tP"),
    ((61.0, 61.0, 97.0, 90.0, 90.0, 120.0), "hP"),
    ((40.0, 50.0, 60.0, 90.0, 90.0, 90.0), "oP"),
    ((35.0, 42.0, 51.0, 90.0, 98.0, 90.0), "mP"),
    ((31.0, 38.0, 44.0, 81.0, 77.0, 69.0), "aP"),
]
CASES = [
    (cell, bravais, mode, rotation_data)
    for cell, bravais in LATTICES
    for mode in ("orientation", "beam_and_lattice")
    for rotation_data in (False, True)
]
#: Beam-centre correction of the recorded spots and the one the refinement starts from.
TRUE_SHIFT_PXL = (0.6, -0.4)
START_SHIFT_PXL = (0.2, -0.1)


def _case_id(case: tuple[tuple[float, ...], str, str, bool]) -> str:
    _cell, bravais, mode, rotation_data = case
    return f"{bravais}-{mode}-{'rotation' if rotation_data else 'stills'}"


def _inputs(
    cell: tuple[float, ...], bravais: str, rotation_data: bool
) -> tuple[Lattice, Observations]:
    """A disturbed start lattice and noisy observations of the true one (deterministic)."""
    geometry = _two_module_geometry()
    axis = np.array([0.3, -0.5, 0.8])
    turn = rotation_matrix(tuple(axis / np.linalg.norm(axis)), 2.1)
    true_real = np.array(gemmi.UnitCell(*cell).orth.mat, dtype=float).T @ turn.T
    spots = _recorded_spots(Lattice(true_real, bravais), geometry, TRUE_SHIFT_PXL)
    n = spots.hkl.shape[0]
    index = np.arange(n, dtype=np.float64)
    x = spots.x_index + 0.25 * np.sin(12.9898 * index + 1.0)
    y = spots.y_index + 0.25 * np.sin(78.233 * index + 2.0)
    hkl = spots.hkl.copy()
    hkl[::13, 0] += 1.0  # a few wrongly indexed spots: outliers for the second round
    rotations = None
    if rotation_data:
        rotations = np.stack([rotation_matrix((1.0, 0.1, 0.0), 2e-5 * i) for i in range(n)])
    disturb = rotation_matrix((0.3, 0.9, 0.1), math.radians(0.1))
    start = Lattice(1.003 * true_real @ disturb.T, bravais)
    return start, Observations(x, y, hkl, rotations)


def _refined(case: tuple[tuple[float, ...], str, str, bool]) -> tuple[np.ndarray, np.ndarray]:
    cell, bravais, mode, rotation_data = case
    start, observations = _inputs(cell, bravais, rotation_data)
    refined = refine_lattice(
        start, observations, _two_module_geometry(), mode, beam_shift_pxl=START_SHIFT_PXL
    )
    return refined.lattice.reciprocal_invA, np.asarray(refined.beam_shift_pxl)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_refinement_equals_the_stored_reference(
    case: tuple[tuple[float, ...], str, str, bool],
) -> None:
    stored = json.loads(REFERENCE.read_text())[_case_id(case)]
    ub, beam = _refined(case)
    expected_ub = np.asarray(stored["ub_invA"])
    assert stored["n_spots"] > 40
    np.testing.assert_allclose(ub, expected_ub, rtol=0, atol=1e-8 * np.abs(expected_ub).max())
    np.testing.assert_allclose(beam, stored["beam_shift_pxl"], rtol=0, atol=1e-6)
    if case[2] == "orientation":
        np.testing.assert_array_equal(beam, START_SHIFT_PXL)
    else:
        assert np.abs(beam - START_SHIFT_PXL).min() > 0.05  # the beam centre was refined


def _write_reference() -> None:
    stored = {}
    for case in CASES:
        cell, bravais, _mode, rotation_data = case
        ub, beam = _refined(case)
        n_spots = int(_inputs(cell, bravais, rotation_data)[1].hkl.shape[0])
        stored[_case_id(case)] = {
            "ub_invA": ub.tolist(),
            "beam_shift_pxl": beam.tolist(),
            "n_spots": n_spots,
        }
    REFERENCE.write_text(json.dumps(stored, indent=1) + "\n")


if __name__ == "__main__":
    _write_reference()
