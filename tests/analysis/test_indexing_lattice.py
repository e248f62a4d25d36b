"""Lattices as the indexer finds them: Niggli reduction, Bravais type and cell matching
(through gemmi), the indexing settings and their one-line refusals."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest

from jfsim.analysis.errors import SettingsError
from jfsim.analysis.indexing.lattice import (
    ReferenceCell,
    bravais_lattice,
    cell_of,
    match_reference,
    niggli_reduce,
)
from jfsim.analysis.indexing.settings import IndexingConfig, parse_space_group, parse_unit_cell
from jfsim.analysis.settings import ProcessSettings
from jfsim.geometry import rotation_matrix

#: (cell, centring, Bravais type) of the conventional settings to recover.
LATTICES = [
    ((79.1, 79.1, 37.9, 90, 90, 90), "P", "tP"),  # lysozyme
    ((78.0, 78.0, 78.0, 90, 90, 90), "I", "cI"),  # insulin
    ((40.0, 45.0, 50.0, 90, 90, 90), "P", "oP"),
    ((52.0, 70.0, 41.0, 90, 90, 90), "C", "oC"),
    ((61.0, 61.0, 97.0, 90, 90, 120), "P", "hP"),
    ((81.0, 81.0, 55.0, 90, 90, 120), "R", "hR"),
    ((60.0, 40.0, 55.0, 90, 104.0, 90), "C", "mC"),
    ((35.0, 42.0, 51.0, 90, 98.0, 90), "P", "mP"),
    ((31.0, 38.0, 44.0, 81.0, 77.0, 69.0), "P", "aP"),
]

#: Primitive vectors of each centring in conventional fractions (International Tables).
PRIMITIVE_OF = {
    "P": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    "C": [[0.5, 0.5, 0], [-0.5, 0.5, 0], [0, 0, 1]],
    "I": [[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]],
    "R": [[2 / 3, 1 / 3, 1 / 3], [-1 / 3, 1 / 3, 1 / 3], [-1 / 3, -2 / 3, 1 / 3]],
}


def _primitive_basis(cell: tuple[float, ...], centring: str, seed: int) -> np.ndarray:
    """A primitive basis (rows, Å) of the centred lattice, turned to a random orientation
    and scrambled by a unimodular change of basis: what an indexer's search returns."""
    conventional = np.array(gemmi.UnitCell(*cell).orth.mat, dtype=float).T
    primitive = np.array(PRIMITIVE_OF[centring]) @ conventional
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    turn = np.asarray(rotation_matrix(tuple(axis / np.linalg.norm(axis)), rng.uniform(0, 6)))
    scramble = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1]], dtype=float)
    return scramble @ primitive @ turn.T


@pytest.mark.parametrize(("cell", "centring", "bravais"), LATTICES)
def test_the_conventional_setting_is_recovered_from_any_primitive_basis(
    cell: tuple[float, ...], centring: str, bravais: str
) -> None:
    basis = _primitive_basis(cell, centring, seed=len(bravais) + int(cell[0]))
    found = bravais_lattice(basis)
    assert found.bravais == bravais
    assert np.linalg.det(found.real_space_A) > 0
    if bravais != "aP":  # the triclinic answer is the Niggli cell, in no conventional order
        assert np.allclose(sorted(found.cell[:3]), sorted(cell[:3]), rtol=1e-6)
        assert np.allclose(sorted(found.cell[3:]), sorted(cell[3:]), atol=1e-4)
    reduced = niggli_reduce(basis)
    expected = gemmi.GruberVector(gemmi.UnitCell(*cell), centring, True)
    expected.niggli_reduce()
    assert np.allclose(cell_of(reduced)[:3], expected.get_cell().parameters[:3], rtol=1e-6)


def test_a_noisy_basis_still_finds_its_lattice_and_a_wrong_reference_is_refused() -> None:
    basis = _primitive_basis(LATTICES[0][0], "P", seed=3)
    noisy = basis * (1 + np.array([[0.002], [-0.001], [0.0015]]))
    assert bravais_lattice(noisy).bravais == "tP"
    lysozyme = ReferenceCell((79.1, 79.1, 37.9, 90, 90, 90), "P", 96)
    matched = match_reference(noisy, lysozyme, tolerance=0.05)
    assert matched is not None and matched.bravais == "tP"
    assert np.allclose(matched.cell[:3], (79.1, 79.1, 37.9), rtol=0.005)
    # the matched basis spans the same lattice (an integer, unimodular change of basis)
    change = matched.real_space_A @ np.linalg.inv(noisy)
    assert np.allclose(change, np.rint(change), atol=1e-6)
    assert round(abs(np.linalg.det(np.rint(change)))) == 1
    thermolysin = ReferenceCell((92.8, 92.8, 130.2, 90, 90, 120), "P", 178)
    assert match_reference(noisy, thermolysin, tolerance=0.05) is None


def test_unit_cells_and_space_groups_parse_or_are_refused_in_one_line() -> None:
    assert parse_unit_cell("79.1,79.1,37.9,90,90,90") == (79.1, 79.1, 37.9, 90.0, 90.0, 90.0)
    assert parse_unit_cell("79.1 79.1 37.9 90 90 90")[2] == 37.9
    assert parse_space_group("96") == 96
    assert parse_space_group("P 43 21 2") == 96
    assert parse_space_group("I213") == 199
    for text in ("79.1,79.1,37.9", "a,b,c,d,e,f", "1,2,3,4,5,nan"):
        with pytest.raises(SettingsError, match="six numbers"):
            parse_unit_cell(text)
    for text in ("0", "231", "P99x"):
        with pytest.raises(SettingsError, match="not a space group"):
            parse_space_group(text)


def test_indexing_options_are_checked_before_any_work() -> None:
    config = IndexingConfig()
    with pytest.raises(SettingsError, match="needs the unit cell"):
        config.with_overrides(algorithm="ffbidx")
    with pytest.raises(SettingsError, match="-X 'pinkindex'"):
        config.with_overrides(algorithm="pinkindex")
    with pytest.raises(SettingsError, match="-r 'pixelrefine'"):
        config.with_overrides(refinement="pixelrefine")
    with pytest.raises(SettingsError, match="not a unit cell"):
        config.with_overrides(unit_cell="10,10,10,90,90,200")
    with pytest.raises(SettingsError, match="nine numbers"):
        config.with_overrides(rotation_lattice="1,2,3,4,5,6,7,8")
    with pytest.raises(SettingsError, match="span no cell"):
        config.with_overrides(rotation_lattice="1,0,0,2,0,0,0,0,1")
    lysozyme = config.with_overrides(algorithm="ffbidx", unit_cell="79.1,79.1,37.9,90,90,90")
    with pytest.raises(SettingsError, match="not a cell of space group I 21 3"):
        lysozyme.check_cell(199)
    lysozyme.check_cell(96)
    assert lysozyme.algorithm == "ffbidx" and lysozyme.refinement == "beam_and_lattice"


def test_the_indexing_keys_round_trip_through_the_settings_document() -> None:
    settings = ProcessSettings.from_mapping(
        {
            "indexing": {"algorithm": "FFBIDX", "geom_refinement_algorithm": "OrientationOnly"},
            "unit_cell": {"a": 79.1, "b": 79.1, "c": 37.9, "alpha": 90, "beta": 90, "gamma": 90},
            "space_group_number": 96,
            "rotation_indexing": {"images": 12, "lattice_A": None},
        }
    )
    assert settings.indexing.algorithm == "ffbidx"
    assert settings.indexing.refinement == "orientation"
    assert settings.indexing.rotation_images == 12
    again = ProcessSettings.from_json(settings.to_json())
    assert again == settings
    assert again.indexing.cell == (79.1, 79.1, 37.9, 90.0, 90.0, 90.0)
    with pytest.raises(SettingsError, match="rotation_indexing: unknown key 'frames'"):
        ProcessSettings.from_mapping({"rotation_indexing": {"frames": 3}})
    with pytest.raises(SettingsError, match="needs the unit cell"):
        ProcessSettings.from_mapping({"indexing": {"algorithm": "FFBIDX"}})
    with pytest.raises(SettingsError, match="not a cell of space group"):
        ProcessSettings.from_mapping(
            {
                "unit_cell": {"a": 79, "b": 79, "c": 38, "alpha": 90, "beta": 90, "gamma": 90},
                "space_group_number": 199,
            }
        )
    assert math.isclose(ProcessSettings().indexing.indexing.tolerance, 0.2)
