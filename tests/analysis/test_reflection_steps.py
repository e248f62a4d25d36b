"""Prediction, summation integration, scaling and merging, with the lattices the truth file
states (what indexing finds), on a short rotation sweep and on stills of the tiny detector.

The figures they must reach are the physics': integrated intensities follow the truth's
expected photons per image, merged intensities the true full intensities, and the merged
file holds what gemmi reads back (cell, space group, column types).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gemmi
import numpy as np
import pytest

from jfsim.analysis.errors import AnalysisInputError
from jfsim.analysis.frames import FrameReader
from jfsim.analysis.integration import IntegrationPlan, integrate_image, integration_plan
from jfsim.analysis.merged_files import merged_file_path, write_merged_file
from jfsim.analysis.merging import (
    MIN_ROTATION_COMPLETENESS,
    MergeResult,
    asu_miller_indices,
    merge,
    merge_cell,
)
from jfsim.analysis.nxmx_run import NxmxRun, open_run
from jfsim.analysis.reflection_settings import IntegrationSettings, ScalingSettings
from jfsim.analysis.reflections import IntegratedReflections
from jfsim.analysis.scaling import sum_rotation_partials
from jfsim.truth import read_truth
from tests.analysis.conftest import truth_of
from tests.analysis.runs import tiny_experiment, write_run
from tests.analysis.truth_lattices import integrate_with_truth, truth_lattices

#: The tiny crystal: P 21 21 21, 40 × 45 × 50 Å.
SPACE_GROUP = gemmi.find_spacegroup_by_number(19)
CELL = (40.0, 45.0, 50.0, 90.0, 90.0, 90.0)
#: Rotation images of the sweep (0.5° each): enough for most reflections to cross fully.
SWEEP_IMAGES = 48
#: Small radii for the tiny detector's crowded spots (0.3 mm pixels at 60 mm).
RADII = IntegrationSettings(
    signal_radius_pxl=2.0, background_inner_radius_pxl=3.0, background_outer_radius_pxl=5.0
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24° rotation sweep on the tiny detector; the truth beside it (``truth_of``)."""
    folder = tmp_path_factory.mktemp("tiny_sweep")
    return write_run(tiny_experiment(n_images=SWEEP_IMAGES, rotation=True), folder)


@pytest.fixture(scope="module")
def sweep_reflections(sweep: Path) -> tuple[NxmxRun, IntegrationPlan, IntegratedReflections]:
    run = open_run(sweep)
    plan = integration_plan(run, RADII, space_group=SPACE_GROUP)
    return run, plan, integrate_with_truth(run, plan, truth_of(sweep), range(SWEEP_IMAGES))


def true_full_intensities(truth_path: Path) -> dict[tuple[int, int, int], float]:
    unique = read_truth(truth_path).unique_reflections
    assert unique is not None, "the simulator writes /unique_reflections"
    return {
        (int(h), int(k), int(ell)): float(value)
        for h, k, ell, value in zip(
            unique.h, unique.k, unique.l, unique.intensity_full_photons, strict=True
        )
    }


def merged_vs_truth(result: MergeResult, truth_path: Path) -> tuple[float, int]:
    """CC of the merged intensities with the true full ones, and how many were paired."""
    full = true_full_intensities(truth_path)
    asu, _ = asu_miller_indices(result.merged.hkl, SPACE_GROUP)
    pairs = [
        (measured, full[key])
        for key, measured in zip(map(tuple, asu.tolist()), result.merged.intensity, strict=True)
        if key in full
    ]
    values = np.array(pairs)
    return float(np.corrcoef(values[:, 0], values[:, 1])[0, 1]), len(pairs)


def test_the_truth_holds_full_intensities_in_the_asymmetric_unit(sweep: Path) -> None:
    unique = read_truth(truth_of(sweep)).unique_reflections
    assert unique is not None and len(unique.h) > 100
    hkl = np.stack([unique.h, unique.k, unique.l], axis=1)
    asu, _ = asu_miller_indices(hkl, SPACE_GROUP)
    assert np.array_equal(asu, hkl), "rows are gemmi's ASU representatives"
    assert (unique.intensity_full_photons > 0).all()
    assert unique.d_A.min() >= 3.0 - 1e-6, "to the crystal's resolution limit"


def test_integrated_intensities_follow_the_expected_photons_per_image(
    sweep: Path, sweep_reflections: tuple[NxmxRun, IntegrationPlan, IntegratedReflections]
) -> None:
    _run, _plan, reflections = sweep_reflections
    truth = read_truth(truth_of(sweep)).reflections
    expected = {
        (int(image), int(h), int(k), int(ell)): float(value)
        for image, h, k, ell, value in zip(
            *(truth[name] for name in ("image_id", "h", "k", "l", "intensity_photons")),
            strict=True,
        )
    }
    pairs = np.array(
        [
            (measured, expected[key])
            for key, measured in zip(
                zip(
                    reflections.image.tolist(),
                    reflections.h.tolist(),
                    reflections.k.tolist(),
                    reflections.l.tolist(),
                    strict=True,
                ),
                reflections.intensity_photons,
                strict=True,
            )
            if key in expected and expected[key] > 50
        ]
    )
    assert len(pairs) > 200
    assert np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1] >= 0.95
    assert 0.8 < np.median(pairs[:, 0] / pairs[:, 1]) < 1.2, "photons, not another unit"
    assert (reflections.partiality > 0).all() and (reflections.partiality <= 1).all()
    assert np.isfinite(reflections.delta_phi_deg).all(), "rotation data have Δφ"
    near = np.abs(reflections.delta_phi_deg) <= 0.5 * 0.5 + 0.3  # half a step + 3 σ mosaic
    assert near.mean() > 0.8, "most cross within their exposure (low |ζ|: wider)"


@pytest.mark.parametrize(("model", "min_cc_half"), [("rot", 0.9), ("fixed", 0.3)])
def test_merged_intensities_follow_the_true_full_intensities(
    sweep: Path,
    sweep_reflections: tuple[NxmxRun, IntegrationPlan, IntegratedReflections],
    model: str,
    min_cc_half: float,
) -> None:
    """Both models estimate the full intensities; ``fixed`` divides partials by their
    predicted partiality, which the half-dataset correlation feels more than the mean."""
    _run, _plan, reflections = sweep_reflections
    result = merge(
        reflections, CELL, SPACE_GROUP, ScalingSettings(merge=True, partiality_model=model)
    )
    cc, paired = merged_vs_truth(result, truth_of(sweep))
    assert paired == len(result.merged) > 200, "every merged index is a true one"
    assert cc >= 0.95
    overall = result.statistics.overall
    assert 0.1 < overall.completeness <= 1.0
    assert overall.multiplicity > 1.0
    assert overall.cc_half > min_cc_half
    assert len(result.statistics.shells) >= 2
    assert sum(shell.unique for shell in result.statistics.shells) == overall.unique


def test_unity_partiality_merges_partials_as_fulls_and_says_so_in_the_figures(
    sweep_reflections: tuple[NxmxRun, IntegrationPlan, IntegratedReflections],
) -> None:
    """-P unity on fine-sliced rotation data takes partials for fulls: CC1/2 falls."""
    _run, _plan, reflections = sweep_reflections
    rot = merge(reflections, CELL, SPACE_GROUP, ScalingSettings(merge=True, partiality_model="rot"))
    unity = merge(
        reflections, CELL, SPACE_GROUP, ScalingSettings(merge=True, partiality_model="unity")
    )
    assert unity.statistics.overall.cc_half < rot.statistics.overall.cc_half
    assert unity.observations_merged > rot.observations_merged, "no partials summed"
    assert rot.rejected["incomplete crossing (-P rot)"] > 0, "the sweep's ends are cut"


def test_anomalous_merging_keeps_friedel_mates_apart(
    sweep_reflections: tuple[NxmxRun, IntegrationPlan, IntegratedReflections],
) -> None:
    _run, _plan, reflections = sweep_reflections
    settings = ScalingSettings(merge=True, partiality_model="rot", anomalous=True)
    result = merge(reflections, CELL, SPACE_GROUP, settings)
    merged = result.merged
    both = np.isfinite(merged.intensity_plus) & np.isfinite(merged.intensity_minus)
    assert both.any() and (~both).any()
    measured = np.isfinite(merged.intensity_plus) | np.isfinite(merged.intensity_minus)
    assert measured.all()


def test_the_merging_cell_obeys_the_space_group() -> None:
    tetragonal = gemmi.find_spacegroup_by_number(96)
    a = np.diag([1 / 79.0, 1 / 79.2, 1 / 38.0])
    b = np.diag([1 / 79.4, 1 / 79.0, 1 / 38.2])
    cell = merge_cell([a, b], tetragonal)
    assert cell[0] == cell[1] == pytest.approx(79.15, abs=1e-6)
    assert cell[2] == pytest.approx(38.1)
    assert cell[3:] == (90.0, 90.0, 90.0)


@pytest.mark.parametrize("anomalous", [False, True])
def test_the_mtz_opens_with_gemmi_with_cell_space_group_and_column_types(
    sweep_reflections: tuple[NxmxRun, IntegrationPlan, IntegratedReflections],
    tmp_path: Path,
    anomalous: bool,
) -> None:
    run, _plan, reflections = sweep_reflections
    settings = ScalingSettings(merge=True, partiality_model="rot", anomalous=anomalous)
    result = merge(reflections, CELL, SPACE_GROUP, settings)
    path = write_merged_file(
        merged_file_path(tmp_path / "run", "mtz"),
        result,
        "mtz",
        wavelength_A=run.geometry.wavelength_A,
    )
    mtz = gemmi.read_mtz_file(str(path))
    assert mtz.spacegroup.number == 19
    assert mtz.cell.parameters == pytest.approx(CELL)
    types = {column.label: column.type for column in mtz.columns}
    expected = {"H": "H", "K": "H", "L": "H", "IMEAN": "J", "SIGIMEAN": "Q", "N": "I"}
    if anomalous:
        expected |= {"I(+)": "K", "SIGI(+)": "M", "I(-)": "K", "SIGI(-)": "M"}
    assert types == expected
    assert mtz.nreflections == len(result.merged)
    assert mtz.datasets[-1].wavelength == pytest.approx(run.geometry.wavelength_A, rel=1e-5)
    intensities = np.array(mtz.column_with_label("IMEAN"), dtype=np.float64)
    assert np.allclose(intensities, result.merged.intensity, rtol=1e-6)
    assert not list(tmp_path.glob("*.tmp")), "nothing half-written left behind"


def test_cif_and_text_outputs_hold_the_same_reflections(
    sweep_reflections: tuple[NxmxRun, IntegrationPlan, IntegratedReflections], tmp_path: Path
) -> None:
    run, _plan, reflections = sweep_reflections
    result = merge(reflections, CELL, SPACE_GROUP, ScalingSettings(merge=True))
    cif = write_merged_file(
        merged_file_path(tmp_path / "run", "cif"),
        result,
        "cif",
        wavelength_A=run.geometry.wavelength_A,
    )
    assert cif.name == "run.cif"
    block = gemmi.cif.read(str(cif)).sole_block()
    assert len(block.find_loop("_refln.index_h")) == len(result.merged)
    assert block.find_value("_symmetry.space_group_name_H-M").strip("'\"") == "P 21 21 21"
    text = write_merged_file(
        merged_file_path(tmp_path / "run", "txt"),
        result,
        "txt",
        wavelength_A=run.geometry.wavelength_A,
    )
    assert text.name == "run.hkl"
    rows = [line.split() for line in text.read_text().splitlines() if not line.startswith("#")]
    assert len(rows) == len(result.merged)
    first = rows[0]
    assert [int(v) for v in first[:3]] == result.merged.hkl[0].tolist()


def test_nothing_to_merge_is_one_clear_error() -> None:
    with pytest.raises(AnalysisInputError, match="no indexed lattice"):
        merge_cell([], SPACE_GROUP)


def test_stills_integrate_with_excitation_error_partialities(
    tiny_stills: Path,
) -> None:
    run = open_run(tiny_stills)
    plan = integration_plan(run, RADII, space_group=SPACE_GROUP)
    truth = read_truth(truth_of(tiny_stills)).reflections
    with FrameReader(run) as reader:
        pixels = reader.read(0).pixels
    lattices = truth_lattices(run, truth_of(tiny_stills), 0)
    table = integrate_image(pixels, plan, 0, lattices)
    assert len(table) > 10
    assert np.isnan(table.delta_phi_deg).all(), "stills have no Δφ"
    assert ((table.partiality > 0) & (table.partiality <= 1)).all()
    expected = {
        (int(h), int(k), int(ell)): float(value)
        for image, h, k, ell, value in zip(
            *(truth[name] for name in ("image_id", "h", "k", "l", "intensity_photons")),
            strict=True,
        )
        if image == 0
    }
    pairs = np.array(
        [
            (measured, expected[(h, k, ell)])
            for h, k, ell, measured in zip(
                table.h.tolist(),
                table.k.tolist(),
                table.l.tolist(),
                table.intensity_photons,
                strict=True,
            )
            if (h, k, ell) in expected and expected[(h, k, ell)] > 50
        ]
    )
    assert len(pairs) >= 5
    assert np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1] >= 0.9


@pytest.mark.slow
def test_gpu_integration_under_the_simulator_matches_the_cpu_engine() -> None:
    """The per-reflection sums on the CUDA target (numba's simulator, in a subprocess so the
    switch does not leak) equal the CPU engine's, lost pixels included."""
    here = Path(__file__).resolve().parent
    result = subprocess.run(
        [sys.executable, str(here / "integration_twin.py"), "2"],
        env={**os.environ, "PYTHONPATH": str(here.parents[1]), "NUMBA_ENABLE_CUDASIM": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report["images"]) == 2
    for image in report["images"]:
        assert image["reflections"] > 10
        assert image["identical"]


def test_stills_merge_with_the_fixed_model_and_refuse_the_rotation_model(
    tiny_stills: Path,
) -> None:
    run = open_run(tiny_stills)
    plan = integration_plan(run, RADII, space_group=SPACE_GROUP)
    with FrameReader(run) as reader:
        tables = [
            integrate_image(
                reader.read(image).pixels,
                plan,
                image,
                truth_lattices(run, truth_of(tiny_stills), image),
            )
            for image in range(3)
        ]
    reflections = IntegratedReflections.concatenate(tables)
    result = merge(reflections, CELL, SPACE_GROUP, ScalingSettings(merge=True))
    assert len(result.merged) > 10 and result.partiality_model == "fixed"
    assert result.image_numbers.tolist() == [0, 1, 2]
    assert np.isfinite(result.image_scales).all()
    with pytest.raises(AnalysisInputError, match="-P rot"):
        merge(reflections, CELL, SPACE_GROUP, ScalingSettings(merge=True, partiality_model="rot"))


def test_merged_means_equal_gemmis_merge_of_the_same_observations(
    sweep_reflections: tuple[NxmxRun, IntegrationPlan, IntegratedReflections],
) -> None:
    """Without scaling cycles, merging is gemmi's inverse-variance weighted mean of the
    corrected observations, in its asymmetric unit (an independent implementation)."""
    _run, _plan, reflections = sweep_reflections
    settings = ScalingSettings(merge=True, partiality_model="rot", iterations=0, min_partiality=0)
    result = merge(reflections, CELL, SPACE_GROUP, settings)
    usable = (
        np.isfinite(reflections.intensity_photons)
        & (reflections.sigma_photons > 0)
        & (reflections.lp > 0)
    )
    summed = sum_rotation_partials(reflections.select(usable))
    summed = summed.select(summed.partiality >= MIN_ROTATION_COMPLETENESS)
    correction = summed.partiality * summed.lp
    oracle = gemmi.Intensities()
    oracle.set_data(
        gemmi.UnitCell(*CELL),
        SPACE_GROUP,
        summed.hkl.astype(np.int32),
        summed.intensity_photons / correction,
        summed.sigma_photons / correction,
    )
    oracle.type = gemmi.DataType.Unmerged
    oracle.prepare_for_merging(gemmi.DataType.Mean)
    oracle.sort()
    (stats,) = oracle.calculate_merging_stats(None, use_weights="Y")
    assert stats.all_refl == result.statistics.overall.observations
    assert stats.unique_refl == result.statistics.overall.unique == len(result.merged)
    oracle.merge_in_place(gemmi.DataType.Mean)
    expected = dict(zip(map(tuple, oracle.miller_array.tolist()), oracle.value_array, strict=True))
    ours = dict(zip(map(tuple, result.merged.hkl.tolist()), result.merged.intensity, strict=True))
    assert ours.keys() == expected.keys()
    assert all(ours[key] == pytest.approx(expected[key], rel=1e-9) for key in ours)


def test_resolution_limit_and_outlier_rejection_drop_what_they_say(
    sweep_reflections: tuple[NxmxRun, IntegrationPlan, IntegratedReflections],
) -> None:
    _run, _plan, reflections = sweep_reflections
    limited = merge(
        reflections,
        CELL,
        SPACE_GROUP,
        ScalingSettings(merge=True, partiality_model="rot", high_resolution_limit_A=4.0),
    )
    assert limited.merged.d_A.min() >= 4.0
    assert limited.rejected["beyond --scaling-high-resolution"] == int(
        np.count_nonzero(reflections.d_A < 4.0)
    )
    spoiled = reflections.select(np.arange(len(reflections)))
    strong = int(np.argmax(reflections.intensity_photons))
    spoiled.intensity_photons[strong] *= 50  # one wild observation
    kept = merge(
        spoiled,
        CELL,
        SPACE_GROUP,
        ScalingSettings(merge=True, partiality_model="fixed", reject_outliers_sigma=6.0),
    )
    assert kept.rejected.get("outliers (--reject-outliers)", 0) >= 1
    plain = merge(spoiled, CELL, SPACE_GROUP, ScalingSettings(merge=True))
    assert "outliers (--reject-outliers)" not in plain.rejected
