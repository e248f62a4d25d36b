"""Scoring against ground truth: exact derivations pass, perturbed ones fail by TRUTH-ID."""

from __future__ import annotations

import hashlib
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.truth import rotation, write_truth_run
from jfconform.context import FileContext
from jfconform.engine import check_file
from jfconform.frame_checksum import frame_sha256
from jfconform.model import Severity
from jfconform.truth import TruthThresholds, compare_lattices, score


def _score(master: Path, truth: Path, **limits: float) -> tuple[set[str], dict]:
    with h5py.File(master, "r") as h5:
        context = FileContext(master, h5)
        try:
            issues, summary = score(context, truth, TruthThresholds(**limits))
        finally:
            context.close()
    return {rule_id for rule_id, _ in issues}, summary


def test_exact_derivation_scores_perfectly(tmp_path: Path) -> None:
    master, truth = write_truth_run(tmp_path)
    fired, summary = _score(master, truth)
    assert fired == set()
    scores = summary["scores"]
    assert scores["spot_recall"]["value"] == pytest.approx(1.0)
    assert scores["spot_precision"]["value"] == pytest.approx(1.0)
    assert scores["indexing_rate"]["value"] == pytest.approx(1.0)
    assert scores["misorientation_deg"]["value"] < 1e-3
    assert scores["intensity_cc"]["value"] > 0.999
    assert scores["merged_intensity_cc"]["value"] > 0.999, "mapped to the ASU, any scale"
    assert scores["merged_intensity_cc"]["n"] == 57, "every true reflection, once"


def test_perturbed_derivation_fails_each_score(tmp_path: Path) -> None:
    master, truth = write_truth_run(tmp_path, perturbed=True)
    fired, summary = _score(master, truth)
    expected = {f"TRUTH-{n:03d}" for n in (3, 4, 5, 6, 7, 8, 10)}
    assert fired == expected
    assert summary["scores"]["misorientation_deg"]["value"] == pytest.approx(5.0, abs=0.01)
    assert summary["scores"]["cell_error"]["value"] == pytest.approx(0.05, abs=1e-3)


def test_thresholds_decide(tmp_path: Path) -> None:
    master, truth = write_truth_run(tmp_path, perturbed=True)
    fired, _ = _score(
        master,
        truth,
        spot_radius_px=6.0,
        max_misorientation_deg=6.0,
        max_cell_error=0.06,
        min_intensity_cc=-1.0,
        min_merged_intensity_cc=-1.0,
    )
    assert fired == set()


def test_bad_truth_file_is_truth_001(tmp_path: Path) -> None:
    master, _truth = write_truth_run(tmp_path)
    bogus = tmp_path / "other_truth.h5"
    with h5py.File(bogus, "w") as h5:
        h5.attrs["format"] = "something-else"
    fired, _ = _score(master, bogus)
    assert fired == {"TRUTH-001"}


def test_run_mismatch_is_truth_002(tmp_path: Path) -> None:
    master, _ = write_truth_run(tmp_path / "a", n_images=4)
    _, other_truth = write_truth_run(tmp_path / "b", n_images=3)
    fired, _ = _score(master, other_truth)
    assert "TRUTH-002" in fired


def test_cli_truth_scores_and_exit_codes(run_cli, tmp_path: Path) -> None:
    good_master, good_truth = write_truth_run(tmp_path / "good")
    result = run_cli("check", good_master, "--truth", good_truth, "--json")
    assert result.returncode == 0, result.stdout[-2000:]
    document = json.loads(result.stdout)
    assert document["truth"]["passed"] is True
    bad_master, bad_truth = write_truth_run(tmp_path / "bad", perturbed=True)
    result = run_cli("check", bad_master, "--truth", bad_truth, "--min-spot-recall", "0.9")
    assert result.returncode == 1
    assert "TRUTH-003" in result.stdout and "Truth scores" in result.stdout
    relaxed = run_cli("check", bad_master, "--truth", bad_truth, "--ignore", "TRUTH,CXI-006")
    assert relaxed.returncode == 0


def test_symmetry_equivalent_setting_is_not_a_misorientation() -> None:
    true = np.diag([40.0, 50.0, 60.0])
    swapped = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]) @ true  # other basis, same lattice
    length_error, angle_error, misorientation = compare_lattices(swapped, true)
    assert misorientation == pytest.approx(0.0, abs=1e-6)
    assert length_error == pytest.approx(0.0, abs=1e-9) and angle_error < 1e-6


def test_rotated_lattice_reports_the_angle() -> None:
    true = np.diag([40.0, 50.0, 60.0])
    turned = true @ rotation(np.array([0.0, 1.0, 0.0]), math.radians(3.0)).T
    assert compare_lattices(turned, true)[2] == pytest.approx(3.0, abs=1e-6)


def test_unrelated_lattice_has_no_misorientation() -> None:
    true = np.diag([40.0, 50.0, 60.0])
    other = np.diag([23.0, 71.0, 97.0]) @ rotation(np.array([1.0, 1.0, 0.0]), 0.7).T
    assert math.isnan(compare_lattices(other, true)[2])


def test_stills_with_two_lattices_match_the_closest(tmp_path: Path) -> None:
    master, truth = write_truth_run(tmp_path)
    with h5py.File(master, "r") as h5:
        observed = h5["/entry/MX/latticeIndexed"][()].reshape(-1, 3, 3).astype(float)
    with h5py.File(truth, "r+") as h5:
        experiment = h5["experiment"]
        del experiment["scan_type"]
        experiment.create_dataset("scan_type", data="stills", dtype=h5py.string_dtype())
        n = observed.shape[0]
        decoy = rotation(np.array([0.0, 1.0, 0.0]), 0.9) @ np.linalg.inv(observed[0])
        ub = np.stack([np.stack([decoy, np.linalg.inv(observed[i])]) for i in range(n)])
        del h5["images/ub_matrix"], h5["images/n_lattices"]
        h5["images"].create_dataset("ub_matrix", data=ub)
        h5["images"].create_dataset("n_lattices", data=np.full(n, 2, np.int32))
    fired, summary = _score(master, truth)
    assert "TRUTH-005" not in fired and "TRUTH-007" not in fired
    assert summary["scores"]["misorientation_deg"]["value"] < 1e-3


@settings(max_examples=40, deadline=None)
@given(
    angle_deg=st.floats(0.0, 3.0),
    axis=st.tuples(*[st.floats(-1, 1)] * 3).filter(lambda v: np.linalg.norm(v) > 0.1),
    permutation=st.permutations([0, 1, 2]),
    signs=st.tuples(*[st.sampled_from([-1, 1])] * 3),
)
def test_misorientation_ignores_the_basis_and_measures_the_turn(
    angle_deg: float, axis: tuple, permutation: list, signs: tuple
) -> None:
    true = np.array([[40.0, 0, 0], [3.0, 50.0, 0], [1.0, 2.0, 60.0]])
    change = np.diag(signs)[permutation]  # a unimodular change of basis
    turn = rotation(np.asarray(axis), math.radians(angle_deg))
    observed = change @ true @ turn.T
    assert compare_lattices(observed, true)[2] == pytest.approx(angle_deg, abs=1e-5)


#: Every score --truth reports; each is listed in every report, computed or skipped.
ALL_SCORES = {
    "spot_recall",
    "spot_precision",
    "indexing_rate",
    "cell_error",
    "cell_angle_error_deg",
    "misorientation_deg",
    "intensity_cc",
    "merged_intensity_cc",
}


def test_scores_that_cannot_be_computed_are_listed_as_skipped(tmp_path: Path) -> None:
    master, truth = write_truth_run(tmp_path)
    with h5py.File(master, "r+") as h5:
        del h5["/entry/reflections"], h5["/entry/MX/latticeIndexed"]
        if "/entry/sample/ub_matrix" in h5:
            del h5["/entry/sample/ub_matrix"]
    fired, summary = _score(master, truth)
    scores = summary["scores"]
    assert set(scores) == ALL_SCORES
    assert "no per-image reflection table" in scores["intensity_cc"]["skipped"]
    assert "no indexed lattice" in scores["misorientation_deg"]["skipped"]
    assert scores["intensity_cc"]["passed"] is None and scores["intensity_cc"]["value"] is None
    assert "skipped" not in scores["spot_recall"]
    assert "TRUTH-008" not in fired  # a skipped score is not a failed one


def test_the_merged_score_says_why_it_is_skipped(tmp_path: Path) -> None:
    master, truth = write_truth_run(tmp_path)
    with h5py.File(truth, "r+") as h5:
        del h5["/unique_reflections"]
    _fired, summary = _score(master, truth)
    assert "no /unique_reflections" in summary["scores"]["merged_intensity_cc"]["skipped"]
    master, truth = write_truth_run(tmp_path / "again")
    with h5py.File(master, "r+") as h5:
        del h5["/entry/scale_merge"]
    fired, summary = _score(master, truth)
    assert "no merged reflections" in summary["scores"]["merged_intensity_cc"]["skipped"]
    assert "TRUTH-010" not in fired


def test_skipped_scores_show_in_text_json_and_junit(run_cli, tmp_path: Path) -> None:
    master, truth = write_truth_run(tmp_path)
    with h5py.File(master, "r+") as h5:
        del h5["/entry/reflections"]
    text = run_cli("check", master, "--truth", truth)
    assert "intensity_cc" in text.stdout and "skipped" in text.stdout
    assert "skipped intensity_cc: the file has no per-image reflection table" in text.stdout
    document = json.loads(run_cli("check", master, "--truth", truth, "--json").stdout)
    assert set(document["truth"]["scores"]) == ALL_SCORES
    assert document["truth"]["scores"]["intensity_cc"]["skipped"].startswith("the file has no")
    out = tmp_path / "report.xml"
    run_cli("check", master, "--truth", truth, "--format", "junit", "-o", out)
    (suite,) = [s for s in ET.parse(out).getroot() if s.get("name", "").startswith("truth")]
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert set(cases) == ALL_SCORES and suite.get("skipped") == "1"
    skipped = cases["intensity_cc"].find("skipped")
    assert skipped is not None and "reflection table" in skipped.get("message")
    assert cases["spot_recall"].find("skipped") is None


def test_substituted_frames_are_truth_009_and_nothing_is_scored(tmp_path: Path) -> None:
    master, truth = write_truth_run(tmp_path, substituted=True)
    fired, summary = _score(master, truth)
    assert fired == {"TRUTH-009"}
    assert summary["passed"] is False and set(summary["scores"]) == ALL_SCORES
    assert all("frames differ" in score["skipped"] for score in summary["scores"].values())
    frames = summary["frames"]
    assert (frames["frames_compared"], frames["frames_matching"]) == (4, 2)
    assert (frames["frames_differing"], frames["frames_differing_list"]) == (2, "2–3")


def test_substituted_fixture_fails_only_truth_009_through_the_cli(run_cli, tmp_path: Path) -> None:
    master, truth = write_truth_run(tmp_path, substituted=True)
    assert not {f.rule for f in check_file(master).findings if f.severity == Severity.ERROR}
    result = run_cli("check", master, "--truth", truth, "--json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    errors = {f["rule"] for f in document["findings"] if f["severity"] == "error"}
    assert errors == {"TRUTH-009"}
    (finding,) = [f for f in document["findings"] if f["rule"] == "TRUTH-009"]
    assert "frames 2–3" in finding["message"] and "frame 2 = image 0" in finding["message"]


@pytest.mark.parametrize("layout", ["legacy", "vds", "integrated"])
def test_frames_of_every_layout_are_checked_against_the_checksums(
    tmp_path: Path, layout: str
) -> None:
    master, truth = write_truth_run(tmp_path, layout=layout)
    fired, summary = _score(master, truth)
    assert "TRUTH-009" not in fired
    assert summary["frames"]["frames_matching"] == summary["frames"]["frames_compared"] == 4


def test_the_checksum_is_the_documented_sha256(tmp_path: Path) -> None:
    """docs/conform.md: SHA-256 of the [height, width] values as little-endian <dtype>, C order."""
    frame = np.arange(-6, 6, dtype=">i2").reshape(3, 4)  # big-endian in memory
    documented = hashlib.sha256(bytes(v for x in frame.ravel() for v in int(x).to_bytes(
        2, "little", signed=True))).digest()  # fmt: skip
    assert frame_sha256(frame, np.dtype("<i2")) == documented
    assert frame_sha256(frame.astype(np.int32), np.dtype("<i2")) == documented
    assert frame_sha256(frame.astype(np.int32) * 10000, np.dtype("<i2")) is None


def test_missing_frames_are_not_substitutions(tmp_path: Path) -> None:
    master, truth = write_truth_run(tmp_path)
    with h5py.File(master, "r+") as h5:
        data = h5["/entry/data/data"]
        data[3] = np.full(data.shape[1:], data.fillvalue, data.dtype)
    fired, summary = _score(master, truth)
    assert "TRUTH-009" not in fired
    assert summary["frames"]["frames_missing"] == 1


def test_a_truth_without_checksums_is_scored_and_says_frames_were_not_checked(
    tmp_path: Path,
) -> None:
    master, truth = write_truth_run(tmp_path, substituted=True)
    with h5py.File(truth, "r+") as h5:
        del h5["images/pixel_sha256"]
    fired, summary = _score(master, truth)
    assert "TRUTH-009" not in fired
    assert summary["frames"]["checked"] is False and summary["scores"]


def test_intensities_indexed_in_another_setting_are_matched_through_the_twin_law() -> None:
    """I 21 3 has a lattice of higher symmetry: an indexer may pick the setting -h,-l,-k;
    the merged score finds it (and says so) instead of correlating unrelated reflections."""
    from jfconform.truth import Truth, _best_setting

    rng = np.random.default_rng(3)
    hkl = rng.integers(0, 12, size=(400, 3))
    hkl = hkl[(hkl.sum(axis=1) % 2 == 0) & (hkl.sum(axis=1) > 0)]  # body-centred
    truth = Truth(
        n_images=1,
        image_size_pxl=(10, 10),
        scan_type="rotation",
        rotation_axis=np.array([1.0, 0.0, 0.0]),
        rotation_start_deg=0.0,
        rotation_step_deg=0.1,
        ub=np.zeros((1, 1, 3, 3)),
        n_lattices=np.ones(1, np.int32),
        reflections={},
        space_group_number=199,
        unit_cell=(78.0, 78.0, 78.0, 90.0, 90.0, 90.0),
    )
    values = rng.uniform(10, 1000, len(hkl))
    zeros = np.zeros(len(hkl), np.int64)
    twin = hkl @ np.array([[-1, 0, 0], [0, 0, -1], [0, -1, 0]])  # -h,-l,-k
    same = _best_setting(truth, (zeros, hkl, values), (zeros, hkl, 3 * values))
    assert same is not None and same[0] == pytest.approx(1.0) and same[2] == {}
    other = _best_setting(truth, (zeros, hkl, values), (zeros, twin, 3 * values))
    assert other is not None and other[0] == pytest.approx(1.0)
    assert other[2] == {"reindexed": "-h,-l,-k"}


def test_the_text_report_names_the_setting_a_score_was_matched_in(tmp_path: Path) -> None:
    import jfconform
    from jfconform.report import render_text

    master, truth = write_truth_run(tmp_path)
    report = jfconform.check(master, truth=truth)
    assert report.truth is not None
    assert "matched in the setting" not in render_text(report)
    report.truth["scores"]["merged_intensity_cc"]["reindexed"] = "-h,-l,-k"
    assert "merged_intensity_cc: matched in the setting -h,-l,-k" in render_text(report)


def _greedy_matches_of_every_pair(observed: np.ndarray, true: np.ndarray, radius: float) -> int:
    """The definition of the spot match, over the full distance matrix."""
    distance = np.linalg.norm(observed[:, None, :] - true[None, :, :], axis=2)
    pairs = np.argwhere(distance <= radius)
    used_obs: set[int] = set()
    used_true: set[int] = set()
    for i, j in pairs[np.argsort(distance[pairs[:, 0], pairs[:, 1]], kind="stable")]:
        if i not in used_obs and j not in used_true:
            used_obs.add(int(i))
            used_true.add(int(j))
    return len(used_obs)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_observed=st.integers(0, 80), n_true=st.integers(0, 300))
def test_spot_matching_equals_the_full_distance_matrix(
    seed: int, n_observed: int, n_true: int
) -> None:
    from jfconform.truth import _match_count

    rng = np.random.default_rng(seed)
    observed = rng.uniform(0, 60, (n_observed, 2))
    true = rng.uniform(0, 60, (n_true, 2))
    shared = min(n_observed, n_true) // 2
    true[:shared] = observed[:shared] + rng.normal(0, 1.2, (shared, 2))  # near and far pairs
    expected = _greedy_matches_of_every_pair(observed, true, 2.0)
    assert _match_count(observed, true, 2.0) == expected


def test_intensity_pairs_sum_repeated_keys_and_skip_non_finite_values() -> None:
    """Rows are paired by (image, h, k, l); repeated rows of one key are summed, NaN and
    infinite values left out, keys only one side holds ignored."""
    from jfconform.truth import _paired_sums

    observed_keys = np.array([[0, 1, 2, 3], [0, 1, 2, 3], [1, 1, 2, 3], [2, 0, 0, 1], [5, 9, 9, 9]])
    observed_values = np.array([1.0, 2.0, 10.0, np.nan, 7.0])
    true_keys = np.array([[1, 1, 2, 3], [0, 1, 2, 3], [2, 0, 0, 1], [0, -1, -2, -3]])
    true_values = np.array([100.0, 30.0, 5.0, 1.0])
    finite = np.isfinite(observed_values)
    observed_sums, true_sums = _paired_sums(
        (observed_keys[finite], observed_values[finite]), (true_keys, true_values)
    )
    assert observed_sums.tolist() == [3.0, 10.0]
    assert true_sums.tolist() == [30.0, 100.0]


def test_truth_scoring_reports_each_step_as_it_begins(tmp_path: Path) -> None:
    import jfconform

    master, truth = write_truth_run(tmp_path)
    stages: list[str] = []
    jfconform.check(master, truth=truth, truth_stage=stages.append)
    assert stages[0].startswith("comparing the frames with the truth's")
    assert stages[1:] == [
        "spot recall and precision",
        "indexing rate, cell and orientation",
        "integrated intensities",
        "merged intensities",
    ]


@pytest.mark.parametrize("image_far", [7, 2**40], ids=["packed", "ranked"])
def test_equal_keys_get_equal_codes_however_wide_the_ranges(image_far: int) -> None:
    from jfconform.truth import _key_codes

    first = np.array([[0, 1, 2, 3], [image_far, -5, 0, 9], [3, 2**20, -(2**20), 1]])
    second = np.array([[image_far, -5, 0, 9], [0, 1, 2, 3], [0, 1, 2, 4]])
    first_codes, second_codes = _key_codes(first, second)
    assert len(set(first_codes.tolist())) == 3
    assert second_codes[0] == first_codes[1] and second_codes[1] == first_codes[0]
    assert second_codes[2] not in set(first_codes.tolist())
