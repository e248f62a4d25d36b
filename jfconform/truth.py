"""Scores against simulator ground truth (``--truth PREFIX_truth.h5``).

Conventions (docs/conform.md): truth positions are continuous pixel coordinates (first
pixel centre at 0.5); CXI peak positions are indices (centre at 0), so observed = X + 0.5.
UB maps h to the reciprocal-space vector in the lab frame (r = UB·h, Å⁻¹, no 2π); the
real-space lattice R = inv(UB) has rows a, b, c, the order of Jungfraujoch's latticeIndexed.
For rotation scans the truth UB is at scan angle 0; per-image lattices are compared with the
truth rotated to the middle of the image's exposure. A file that holds a subset of the run
(a ``_process.h5`` of ``jfsim process -s/-e/-t``) names each row's image in
``detectorSpecific/number``; rows are matched to the truth's images through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from jfconform.chains import rotation_matrix
from jfconform.context import FileContext, leaf
from jfconform.frame_checksum import check_frames
from jfconform.model import Issue
from jfconform.rules.cxi import peak_table
from jfconform.rules.nxr import IMAGE_GROUP


@dataclass(frozen=True, slots=True)
class TruthThresholds:
    """Pass thresholds; each is a command-line option of ``jfconform check``."""

    min_spot_recall: float = 0.5
    min_spot_precision: float = 0.5
    min_indexing_rate: float = 0.5
    max_cell_error: float = 0.02  # relative, Niggli-reduced a, b, c
    max_cell_angle_error_deg: float = 1.0
    max_misorientation_deg: float = 1.0
    min_intensity_cc: float = 0.8
    min_merged_intensity_cc: float = 0.9
    spot_radius_px: float = 2.0
    min_true_photons: float = 10.0
    min_true_snr: float = 0.0

    def __post_init__(self) -> None:
        for name, allowed in THRESHOLD_RANGES.items():
            if not allowed.admits(getattr(self, name)):
                raise ValueError(f"{name} = {getattr(self, name)!r}: use a value in {allowed}")


class ThresholdRange(NamedTuple):
    """The values a threshold may take: ``low`` ≤ x ≤ ``high`` (``low`` excluded if open)."""

    low: float
    high: float
    low_open: bool = False

    def admits(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high  # NaN fails both comparisons

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"


#: Allowed range of each :class:`TruthThresholds` field (fractions, Pearson r, angles, ...).
THRESHOLD_RANGES: dict[str, ThresholdRange] = {
    "min_spot_recall": ThresholdRange(0.0, 1.0),
    "min_spot_precision": ThresholdRange(0.0, 1.0),
    "min_indexing_rate": ThresholdRange(0.0, 1.0),
    "max_cell_error": ThresholdRange(0.0, math.inf),
    "max_cell_angle_error_deg": ThresholdRange(0.0, 180.0),
    "max_misorientation_deg": ThresholdRange(0.0, 180.0),
    "min_intensity_cc": ThresholdRange(-1.0, 1.0),
    "min_merged_intensity_cc": ThresholdRange(-1.0, 1.0),
    "spot_radius_px": ThresholdRange(0.0, math.inf, low_open=True),
    "min_true_photons": ThresholdRange(0.0, math.inf),
    "min_true_snr": ThresholdRange(0.0, math.inf),
}

#: Path, below the NXmx detector, of each row's image number in the original run.
IMAGE_NUMBER_PATH = "detectorSpecific/number"


#: The lattice scores and the threshold each is judged against.
LATTICE_THRESHOLDS = {
    "indexing_rate": "min_indexing_rate",
    "cell_error": "max_cell_error",
    "cell_angle_error_deg": "max_cell_angle_error_deg",
    "misorientation_deg": "max_misorientation_deg",
}
#: Every score ``--truth`` reports, in report order, with its threshold.
SCORE_THRESHOLDS = {
    "spot_recall": "min_spot_recall",
    "spot_precision": "min_spot_precision",
    **LATTICE_THRESHOLDS,
    "intensity_cc": "min_intensity_cc",
    "merged_intensity_cc": "min_merged_intensity_cc",
}
#: Fewest matched reflections for which a correlation coefficient is reported.
MIN_CORRELATED = 3
#: Columns of the truth's ``/unique_reflections`` the merged score reads.
UNIQUE_COLUMNS = ("h", "k", "l", "intensity_full_photons")
#: Columns of a merged reflection table (``/entry/<NXprocess>/results/merged``).
MERGED_COLUMNS = ("h", "k", "l", "intensity")


class TruthFileError(Exception):
    """The truth file is missing, unreadable or not jfsim-truth v1."""


@dataclass(frozen=True)
class Truth:
    n_images: int
    image_size_pxl: tuple[int, int]  # (width, height)
    scan_type: str
    rotation_axis: np.ndarray
    rotation_start_deg: float
    rotation_step_deg: float
    ub: np.ndarray  # [n, max_lattices, 3, 3]
    n_lattices: np.ndarray
    reflections: dict[str, np.ndarray]
    space_group_number: int = 1
    #: /experiment/unit_cell (Å, deg); None when absent.
    unit_cell: tuple[float, ...] | None = None
    #: /unique_reflections (h, k, l, intensity_full_photons); None in files written before it.
    unique: dict[str, np.ndarray] | None = None


def load_truth(path: Path) -> Truth:
    try:
        with h5py.File(path, "r") as h5:
            if h5.attrs.get("format") not in ("jfsim-truth", b"jfsim-truth"):
                raise TruthFileError(f"{path.name}: root attribute format is not 'jfsim-truth'")
            if int(h5.attrs.get("format_version", 0)) != 1:
                raise TruthFileError(f"{path.name}: format_version is not 1")
            experiment = h5["experiment"]
            scan = experiment["scan_type"][()]
            scan = scan.decode() if isinstance(scan, bytes) else str(scan)
            rotation = scan == "rotation"
            reflections = {name: h5["reflections"][name][()] for name in h5["reflections"]}
            width, height = experiment["image_size_pxl"][()]
            lengths = {len(v) for v in reflections.values()}
            if len(lengths) > 1:
                raise TruthFileError(f"{path.name}: /reflections columns differ in length")
            return Truth(
                n_images=int(h5["images/n_lattices"].shape[0]),
                image_size_pxl=(int(width), int(height)),
                scan_type=scan,
                rotation_axis=np.asarray(experiment["rotation_axis"][()], dtype=float)
                if rotation
                else np.array([1.0, 0.0, 0.0]),
                rotation_start_deg=float(experiment["rotation_start_deg"][()]) if rotation else 0.0,
                rotation_step_deg=float(experiment["rotation_step_deg"][()]) if rotation else 0.0,
                ub=np.asarray(h5["images/ub_matrix"][()], dtype=float),
                n_lattices=np.asarray(h5["images/n_lattices"][()]),
                reflections=reflections,
                space_group_number=int(experiment["space_group_number"][()])
                if "space_group_number" in experiment
                else 1,
                unit_cell=tuple(float(v) for v in experiment["unit_cell"][()])
                if "unit_cell" in experiment
                else None,
                unique=_unique_reflections(h5),
            )
    except TruthFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        raise TruthFileError(f"{path}: cannot read as a jfsim truth file: {first}") from error


def _unique_reflections(h5: h5py.File) -> dict[str, np.ndarray] | None:
    group = h5.get("unique_reflections")
    if not isinstance(group, h5py.Group):
        return None
    columns = {name: group[name][()] for name in UNIQUE_COLUMNS if name in group}
    if len(columns) != len(UNIQUE_COLUMNS) or len({len(v) for v in columns.values()}) != 1:
        raise TruthFileError(f"/unique_reflections: needs equal-length {', '.join(UNIQUE_COLUMNS)}")
    return columns


def truth_ub_at_image(truth: Truth, image: int, lattice: int = 0) -> np.ndarray:
    """The true UB of one image in the lab frame at the middle of its exposure."""
    ub = truth.ub[image, lattice]
    if truth.scan_type != "rotation":
        return ub
    angle_deg = truth.rotation_start_deg + (image + 0.5) * truth.rotation_step_deg
    return rotation_matrix(truth.rotation_axis, math.radians(angle_deg)) @ ub


def cell_of(real_space: np.ndarray) -> tuple[float, ...]:
    """(a, b, c, alpha, beta, gamma) in Å and degrees from rows a, b, c."""
    a, b, c = real_space
    lengths = [float(np.linalg.norm(v)) for v in (a, b, c)]

    def angle(u: np.ndarray, v: np.ndarray) -> float:
        return math.degrees(
            math.acos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))
        )

    return (*lengths, angle(b, c), angle(a, c), angle(a, b))


def niggli(cell: tuple[float, ...]) -> np.ndarray:
    """Niggli-reduced (a, b, c, alpha, beta, gamma) of a primitive cell (gemmi)."""
    import gemmi  # deferred: only truth scoring needs it

    vector = gemmi.GruberVector(gemmi.UnitCell(*cell), "P")
    vector.niggli_reduce()
    reduced = vector.get_cell()
    return np.array([reduced.a, reduced.b, reduced.c, reduced.alpha, reduced.beta, reduced.gamma])


def compare_lattices(observed: np.ndarray, true: np.ndarray) -> tuple[float, float, float]:
    """(relative cell error, angle error in deg, misorientation in deg; NaN if unrelated)."""
    obs_cell, true_cell = niggli(cell_of(observed)), niggli(cell_of(true))
    length_error = float(np.max(np.abs(obs_cell[:3] - true_cell[:3]) / true_cell[:3]))
    angle_error = float(np.max(np.abs(obs_cell[3:] - true_cell[3:])))
    change = observed @ np.linalg.inv(true)
    rounded = np.round(change)
    if np.max(np.abs(change - rounded)) > 0.15 or round(abs(np.linalg.det(rounded))) != 1:
        return length_error, angle_error, math.nan
    basis = rounded @ true
    u, _s, vt = np.linalg.svd(basis.T @ observed)
    sign = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rotation = vt.T @ np.diag([1.0, 1.0, sign]) @ u.T
    cosine = np.clip((np.trace(rotation) - 1) / 2, -1, 1)
    return length_error, angle_error, math.degrees(math.acos(cosine))


def _match_count(observed: np.ndarray, true: np.ndarray, radius: float) -> int:
    """Spots matched one to one, nearest pairs first, within ``radius`` pixels. Only pairs
    within ``radius`` in y are measured (true spots sorted by y): a 4M image has
    thousands of reflections and hundreds of spots."""
    if not len(observed) or not len(true):
        return 0
    by_y = np.argsort(true[:, 1], kind="stable")
    true_y = true[by_y, 1]
    first = np.searchsorted(true_y, observed[:, 1] - radius, side="left")
    counts = np.searchsorted(true_y, observed[:, 1] + radius, side="right") - first
    observed_index = np.repeat(np.arange(len(observed)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    true_index = by_y[np.repeat(first, counts) + offsets]
    distance = np.linalg.norm(observed[observed_index] - true[true_index], axis=1)
    close = distance <= radius
    observed_index, true_index, distance = observed_index[close], true_index[close], distance[close]
    listed = np.lexsort((true_index, observed_index))  # as a full distance matrix lists them
    nearest_first = listed[np.argsort(distance[listed], kind="stable")]  # ties: in that order
    used_obs, used_true, matched = set(), set(), 0
    for i, j in zip(
        observed_index[nearest_first].tolist(), true_index[nearest_first].tolist(), strict=True
    ):
        if i not in used_obs and j not in used_true:
            used_obs.add(i)
            used_true.add(j)
            matched += 1
    return matched


def _skipped(threshold: float, reason: str) -> dict:
    """A score that cannot be computed for this file: listed, with the reason, never dropped."""
    return {"value": None, "threshold": threshold, "passed": None, "skipped": reason}


def _score(value: float | None, threshold: float, higher_is_better: bool, **extra: Any) -> dict:
    """A JSON-safe score record; ``inf`` (no comparable lattice) fails with value null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _skipped(threshold, "undefined for this file")
    if math.isinf(value):
        return {"value": None, "threshold": threshold, "passed": False, **extra}
    passed = value >= threshold if higher_is_better else value <= threshold
    return {"value": float(value), "threshold": threshold, "passed": bool(passed), **extra}


def score(
    ctx: FileContext,
    truth_path: Path,
    thresholds: TruthThresholds,
    stage: Callable[[str], None] | None = None,
) -> tuple[list[tuple[str, Issue]], dict[str, Any]]:
    """Score one master against its truth; returns (rule-ID, issue) pairs and the summary.
    ``stage`` is told as each step begins."""
    began = stage or (lambda _description: None)
    try:
        truth = load_truth(truth_path)
    except TruthFileError as error:
        return [("TRUTH-001", Issue("/", str(error)))], {
            "truth_file": str(truth_path),
            "error": str(error),
        }
    issues: list[tuple[str, Issue]] = []
    frame = ctx.frame_shape
    numbers = image_numbers(ctx)
    if numbers is not None:
        outside = numbers[(numbers < 0) | (numbers >= truth.n_images)]
        if outside.size:
            issues.append(
                (
                    "TRUTH-002",
                    Issue(
                        "/entry/instrument/detector/" + IMAGE_NUMBER_PATH,
                        f"image number {int(outside[0])} is beyond the truth's "
                        f"{truth.n_images} images",
                    ),
                )
            )
    elif ctx.n_frames is not None and ctx.n_frames != truth.n_images:
        issues.append(
            (
                "TRUTH-002",
                Issue(
                    "/entry/data", f"{ctx.n_frames} frames, the truth has {truth.n_images} images"
                ),
            )
        )
    if frame is not None and (frame[-1], frame[-2]) != truth.image_size_pxl:
        issues.append(
            (
                "TRUTH-002",
                Issue(
                    "/entry/data",
                    f"image {frame[-1]}x{frame[-2]}, the truth has {truth.image_size_pxl}",
                ),
            )
        )
    began(f"comparing the frames with the truth's {truth.n_images} pixel checksums")
    frame_issues, frames = check_frames(ctx, truth_path, numbers)
    if frame_issues:  # other pixels than the truth describes: any score would mislead
        reason = "the file's frames differ from the truth's images (TRUTH-009)"
        return issues + frame_issues, {
            "truth_file": str(truth_path),
            "frames": frames,
            "scores": {
                name: _skipped(getattr(thresholds, field), reason)
                for name, field in SCORE_THRESHOLDS.items()
            },
            "thresholds": asdict(thresholds),
            "passed": False,
        }
    scores: dict[str, dict] = {}
    began("spot recall and precision")
    scores.update(_spot_scores(ctx, truth, thresholds, numbers))
    began("indexing rate, cell and orientation")
    scores.update(_indexing_scores(ctx, truth, thresholds, numbers))
    began("integrated intensities")
    scores.update(_intensity_scores(ctx, truth, thresholds, numbers))
    began("merged intensities")
    scores.update(_merged_intensity_scores(ctx, truth, thresholds))
    rule_of = {
        "spot_recall": "TRUTH-003",
        "spot_precision": "TRUTH-004",
        "indexing_rate": "TRUTH-005",
        "cell_error": "TRUTH-006",
        "cell_angle_error_deg": "TRUTH-006",
        "misorientation_deg": "TRUTH-007",
        "intensity_cc": "TRUTH-008",
        "merged_intensity_cc": "TRUTH-010",
    }
    for name, result in scores.items():
        if result["passed"] is False:
            better = (
                "at least"
                if name
                in (
                    "spot_recall",
                    "spot_precision",
                    "indexing_rate",
                    "intensity_cc",
                    "merged_intensity_cc",
                )
                else "at most"
            )
            shown = "undefined" if result["value"] is None else f"{result['value']:.4g}"
            issues.append(
                (
                    rule_of[name],
                    Issue("/entry", f"{name} = {shown}, required {better} {result['threshold']}"),
                )
            )
    summary = {
        "truth_file": str(truth_path),
        "frames": frames,
        "scores": scores,
        "thresholds": asdict(thresholds),
        "passed": not issues,
    }
    return issues, summary


def image_numbers(ctx: FileContext) -> np.ndarray | None:
    """Each row's image number in the original run, when the file says (else None: row i
    is image i)."""
    for detector in ctx.detectors:
        numbers = ctx.array(ctx.dataset(IMAGE_NUMBER_PATH, detector))
        if numbers is not None and numbers.ndim == 1 and numbers.shape[0] == ctx.n_frames:
            return numbers.astype(np.int64)
    return None


def expected_snr(reflections: dict[str, np.ndarray]) -> np.ndarray:
    """Expected I/σ(I) of each true spot: σ² = I + 4π·σ_spot²·b, the variance of an ideal
    profile-fitted intensity of a Gaussian spot of width σ_spot on b background photons per
    pixel (4πσ² is the spot's effective area). +inf where the truth lacks σ_spot or b."""
    intensity = reflections["intensity_photons"]
    sigma = reflections.get("sigma_pxl")
    background = reflections.get("background_photons")
    if sigma is None or background is None:
        return np.full(intensity.shape, np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = intensity / np.sqrt(intensity + 4.0 * math.pi * sigma**2 * background)
    return np.where(np.isfinite(sigma) & np.isfinite(background), snr, np.inf)


def _spot_scores(
    ctx: FileContext, truth: Truth, limits: TruthThresholds, numbers: np.ndarray | None
) -> dict[str, dict]:
    table = peak_table(ctx)
    if table is None:
        reason = "no readable CXI peak list (/entry/MX nPeaks, peakXPosRaw, peakYPosRaw, ...)"
        return {
            "spot_recall": _skipped(limits.min_spot_recall, reason),
            "spot_precision": _skipped(limits.min_spot_precision, reason),
        }
    counts, arrays = table
    refl = truth.reflections
    real = ~refl["masked"].astype(bool)
    visible = real & (refl["intensity_photons"] >= limits.min_true_photons)
    if limits.min_true_snr > 0:
        visible &= expected_snr(refl) >= limits.min_true_snr
    matched = matched_real = n_true = n_observed = 0
    capacity = arrays["peakXPosRaw"].shape[1]
    by_image = np.argsort(refl["image_id"], kind="stable")  # each image's rows, in order
    sorted_images = refl["image_id"][by_image]
    for row in range(len(counts)):
        image = int(numbers[row]) if numbers is not None else row
        if not 0 <= image < truth.n_images:
            continue
        k = int(np.clip(counts[row], 0, capacity))
        observed = (
            np.stack([arrays["peakXPosRaw"][row, :k], arrays["peakYPosRaw"][row, :k]], axis=1) + 0.5
        )
        on_image = by_image[
            np.searchsorted(sorted_images, image) : np.searchsorted(sorted_images, image + 1)
        ]
        rows = on_image[visible[on_image]]
        # A finder can list at most `capacity` spots: expect the brightest ones.
        rows = rows[np.argsort(-refl["intensity_photons"][rows], kind="stable")][:capacity]
        true = np.stack([refl["x_pxl"][rows], refl["y_pxl"][rows]], axis=1)
        matched += _match_count(observed, true, limits.spot_radius_px)
        # a listed spot on any real reflection is right, even one too weak to be expected
        every = on_image[real[on_image]]
        pool = np.stack([refl["x_pxl"][every], refl["y_pxl"][every]], axis=1)
        matched_real += _match_count(observed, pool, limits.spot_radius_px)
        n_true += len(true)
        n_observed += len(observed)
    return {
        "spot_recall": _score(matched / n_true, limits.min_spot_recall, True, n=n_true)
        if n_true
        else _skipped(
            limits.min_spot_recall,
            "no true reflection on an unmasked pixel reaches --min-true-photons",
        ),
        "spot_precision": _score(
            matched_real / n_observed, limits.min_spot_precision, True, n=n_observed
        )
        if n_observed
        else _skipped(limits.min_spot_precision, "the peak list holds no spot"),
    }


def _observed_lattices(
    ctx: FileContext, n: int, numbers: np.ndarray | None = None
) -> tuple[dict[int, np.ndarray], bool]:
    """Per-image real-space lattices (rows a, b, c), keyed by image number (row i is image
    ``numbers[i]`` when given), and whether they are per image."""
    mx = None if ctx.entry is None else ctx.group("MX", ctx.entry)
    lattice = None if mx is None else ctx.dataset("latticeIndexed", mx)
    if lattice is not None and lattice.ndim == 2 and lattice.shape[1] == 9:
        stored = ctx.array(lattice)
        if stored is None:
            return {}, True
        values = stored.astype(float)
        indexed = ctx.array(ctx.dataset("imageIndexed", mx))
        found = {}
        for row in range(len(values)):
            image = int(numbers[row]) if numbers is not None and row < len(numbers) else row
            if not 0 <= image < n:
                continue
            if np.isfinite(values[row]).all() and (indexed is None or indexed[row] > 0):
                found[image] = values[row].reshape(3, 3)
        return found, True
    for sample in ctx.in_entry("NXsample"):
        ub = ctx.dataset("ub_matrix", sample)
        if ub is not None and ub.shape[-2:] == (3, 3):
            stored = ctx.array(ub)
            if stored is None:
                continue
            matrix = stored.astype(float).reshape(-1, 3, 3)[0]
            return dict.fromkeys(range(n), np.linalg.inv(matrix)), False
    return {}, True


def _holds_lattices(ctx: FileContext) -> bool:
    """Whether the file reports indexing at all (per-image lattices or a sample UB)."""
    mx = None if ctx.entry is None else ctx.group("MX", ctx.entry)
    if mx is not None and ctx.dataset("latticeIndexed", mx) is not None:
        return True
    return any(ctx.dataset("ub_matrix", sample) is not None for sample in ctx.in_entry("NXsample"))


def _indexing_scores(
    ctx: FileContext, truth: Truth, limits: TruthThresholds, numbers: np.ndarray | None = None
) -> dict[str, dict]:
    if not _holds_lattices(ctx):  # e.g. a spot-finding-only _process.h5
        return {
            name: _skipped(
                getattr(limits, threshold),
                "no indexed lattice: the file holds no indexing result "
                "(no /entry/MX/latticeIndexed, no ub_matrix)",
            )
            for name, threshold in LATTICE_THRESHOLDS.items()
        }
    lattices, per_image = _observed_lattices(ctx, truth.n_images, numbers)
    covered = range(truth.n_images) if numbers is None else sorted(set(numbers.tolist()))
    hits = [i for i in covered if 0 <= i < truth.n_images and truth.n_lattices[i] > 0]
    if not hits:
        return {
            name: _skipped(getattr(limits, threshold), "the truth has no image with a crystal")
            for name, threshold in LATTICE_THRESHOLDS.items()
        }
    good, cell_errors, angle_errors, misorientations = 0, [], [], []
    for image in hits:
        if image not in lattices:
            continue
        # Several crystals in one shot: judge against the closest true lattice.
        candidates = []
        for lattice in range(int(min(truth.n_lattices[image], truth.ub.shape[1]))):
            true_ub = (
                truth_ub_at_image(truth, image, lattice) if per_image else truth.ub[image, lattice]
            )
            if np.isfinite(true_ub).all():
                candidates.append(compare_lattices(lattices[image], np.linalg.inv(true_ub)))
        if not candidates:
            continue
        length_error, angle_error, misorientation = min(
            candidates, key=lambda c: (math.isnan(c[2]), c[2], c[0])
        )
        cell_errors.append(length_error)
        angle_errors.append(angle_error)
        misorientations.append(misorientation)
        if (
            length_error <= limits.max_cell_error
            and angle_error <= limits.max_cell_angle_error_deg
            and misorientation <= limits.max_misorientation_deg
        ):
            good += 1

    def median(values: list[float]) -> float | None:
        finite = [v for v in values if not math.isnan(v)]
        if values and not finite:
            return math.inf
        return float(np.median(finite)) if finite else None

    scores = {
        "indexing_rate": _score(good / len(hits), limits.min_indexing_rate, True, n=len(hits)),
        "cell_error": _score(median(cell_errors), limits.max_cell_error, False),
        "cell_angle_error_deg": _score(
            median(angle_errors), limits.max_cell_angle_error_deg, False
        ),
        "misorientation_deg": _score(median(misorientations), limits.max_misorientation_deg, False),
    }
    if not cell_errors:  # nothing to compare: the file holds no lattice for a hit image
        reason = "no indexed lattice in the file for an image with a crystal"
        for name in ("cell_error", "cell_angle_error_deg", "misorientation_deg"):
            scores[name] = _skipped(getattr(limits, LATTICE_THRESHOLDS[name]), reason)
    return scores


def _to_truth_setting(
    ctx: FileContext, truth: Truth, numbers: np.ndarray | None
) -> dict[int, np.ndarray]:
    """Per image, the integer matrix that turns the file's Miller indices into the truth's:
    an indexer may pick any of the equivalent settings of a lattice (a and b swapped in a
    tetragonal cell, say), and the file's ``latticeIndexed`` says which one. Images without
    a lattice related to the truth's by a unimodular change of basis are left out."""
    if not _holds_lattices(ctx):
        return {}
    lattices, per_image = _observed_lattices(ctx, truth.n_images, numbers)
    changes = {}
    for image, observed in lattices.items():
        if truth.n_lattices[image] < 1:
            continue
        true_ub = truth_ub_at_image(truth, image) if per_image else truth.ub[image, 0]
        if not np.isfinite(true_ub).all():
            continue
        change = observed @ true_ub  # rows of observed = change · rows of the truth
        rounded = np.round(change)
        if np.max(np.abs(change - rounded)) < 0.15 and round(abs(np.linalg.det(rounded))) == 1:
            changes[image] = np.rint(np.linalg.inv(rounded)).astype(np.int64)
    return changes


def _intensity_scores(
    ctx: FileContext, truth: Truth, limits: TruthThresholds, numbers: np.ndarray | None = None
) -> dict[str, dict]:
    """Pearson r of each image's integrated intensities and the truth's expected photons,
    matched by (image, h, k, l): the file's indices are turned into the truth's setting
    where ``latticeIndexed`` says how (:func:`_to_truth_setting`), then both sides go to the
    reciprocal ASU, in the best setting (see :func:`_best_setting`)."""
    refl = truth.reflections
    keep = refl["lattice"] == 0 if "lattice" in refl else np.ones(len(refl["h"]), bool)
    true_images = refl["image_id"][keep].astype(np.int64)
    true_hkl = np.stack([refl[c][keep] for c in ("h", "k", "l")], axis=1)
    true_values = refl["intensity_photons"][keep].astype(float)
    settings = _to_truth_setting(ctx, truth, numbers)
    images, hkls, values, groups = [], [], [], 0
    for group in ctx.reflection_tables:
        match = IMAGE_GROUP.match(leaf(group.name))
        columns = [ctx.dataset(c, group) for c in ("h", "k", "l", "int_sum")]
        if match is None or any(c is None for c in columns):
            continue
        arrays = [array for c in columns if (array := ctx.array(c)) is not None]
        if len(arrays) != len(columns) or len({a.shape for a in arrays}) != 1:
            continue
        groups += 1
        h, k, ell, intensity = arrays
        image = int(match.group(1)) - 1
        hkl = np.stack([h, k, ell], axis=1).astype(np.int64)
        if image in settings:  # h_truth = change⁻¹ · h_file
            hkl = hkl @ settings[image].T
        images.append(np.full(hkl.shape[0], image, dtype=np.int64))
        hkls.append(hkl)
        values.append(intensity.astype(float))
    threshold = limits.min_intensity_cc
    if not groups:
        reason = "the file has no per-image reflection table with h, k, l, int_sum"
        return {"intensity_cc": _skipped(threshold, reason)}
    found = _best_setting(
        truth,
        (true_images, true_hkl, true_values),
        (np.concatenate(images), np.concatenate(hkls), np.concatenate(values)),
    )
    if found is None:
        return {"intensity_cc": _skipped(threshold, _too_few("integrated"))}
    cc, n, setting = found
    return {"intensity_cc": _score(cc, threshold, True, n=n, **setting)}


def merged_tables(ctx: FileContext) -> list[tuple[h5py.Group, h5py.Group]]:
    """(results, merged) of every NXprocess in the entry whose ``results/merged`` holds h,
    k, l and intensity (a scaling and merging step, e.g. ``jfsim process -M``)."""
    found = []
    for process in ctx.in_entry("NXprocess"):
        results = ctx.group("results", process)
        merged = None if results is None else ctx.group("merged", results)
        if merged is not None and all(ctx.dataset(c, merged) is not None for c in MERGED_COLUMNS):
            found.append((results, merged))
    return found


def _merged_intensity_scores(
    ctx: FileContext, truth: Truth, limits: TruthThresholds
) -> dict[str, dict]:
    """Pearson r of the merged intensities and the truth's full intensities, both mapped to
    the reciprocal asymmetric unit (gemmi) of the truth's space group, in the best
    indexing setting (see :func:`_best_setting`)."""
    threshold = limits.min_merged_intensity_cc
    if truth.unique is None:
        return {
            "merged_intensity_cc": _skipped(
                threshold, "the truth file has no /unique_reflections (full intensities)"
            )
        }
    tables = merged_tables(ctx)
    if not tables:
        return {
            "merged_intensity_cc": _skipped(
                threshold,
                "the file holds no merged reflections (no /entry/<NXprocess>/results/merged "
                "with h, k, l, intensity)",
            )
        }
    _results, merged = tables[0]
    columns = [ctx.array(ctx.dataset(name, merged)) for name in MERGED_COLUMNS]
    arrays = [column for column in columns if column is not None]
    if len(arrays) != len(MERGED_COLUMNS) or len({a.shape for a in arrays}) != 1:
        return {
            "merged_intensity_cc": _skipped(
                threshold, f"{merged.name}: h, k, l, intensity unreadable or of unequal length"
            )
        }
    h, k, ell, intensity = arrays
    unique = truth.unique
    true_hkl = np.stack([unique[c] for c in ("h", "k", "l")], axis=1)
    found = _best_setting(
        truth,
        (np.zeros(len(true_hkl), np.int64), true_hkl, unique["intensity_full_photons"]),
        (np.zeros(len(h), np.int64), np.stack([h, k, ell], axis=1), intensity.astype(float)),
    )
    if found is None:
        return {"merged_intensity_cc": _skipped(threshold, _too_few("merged"))}
    cc, n, setting = found
    return {"merged_intensity_cc": _score(cc, threshold, True, n=n, **setting)}


def _too_few(what: str) -> str:
    return f"fewer than {MIN_CORRELATED} {what} reflections match true ones"


Rows = tuple[np.ndarray, np.ndarray, np.ndarray]  # image [n], hkl [n, 3], value [n]


def _best_setting(truth: Truth, true: Rows, observed: Rows) -> tuple[float, int, dict] | None:
    """(Pearson r, pairs, {"reindexed": op} when not the truth's setting) of the observed
    and true values, matched by (image, h, k, l) as they stand and after mapping both to the
    reciprocal ASU of the truth's space group (Friedel mates together; several rows of one
    key summed), whichever correlates better.

    Indexing may choose any setting of the lattice: symmetry equivalents are the same
    reflection after the ASU mapping, and where the lattice has more symmetry than the
    space group (e.g. I 21 3: -h,-l,-k) each twin law of the truth's cell (gemmi) is tried
    on the observed indices; the best correlation is reported, with its operator. Exact
    keys keep apart the equivalents one image records twice (a pair on one image of which
    only one was integrated would otherwise meet the sum of both)."""
    best: tuple[float, int, dict] | None = None
    for in_asu in (False, True):
        true_rows = _keyed_rows(truth, *true, in_asu=in_asu)
        for triplet, rotation in _settings_of(truth):
            images, hkl, values = observed
            turned = np.rint(hkl).astype(np.int64) @ rotation
            observed_rows = _keyed_rows(truth, images, turned, values, in_asu=in_asu)
            observed_sums, true_sums = _paired_sums(observed_rows, true_rows)
            if observed_sums.size < MIN_CORRELATED:
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                cc = float(np.corrcoef(observed_sums, true_sums)[0, 1])
            extra = {} if triplet == "h,k,l" else {"reindexed": triplet}
            if best is None or (math.isfinite(cc) and not cc <= best[0]):
                best = (cc, int(observed_sums.size), extra)
    return best


#: (keys ``(n, 4)``: image, h, k, l; values ``(n,)``), finite values only.
KeyedRows = tuple[np.ndarray, np.ndarray]


def _keyed_rows(
    truth: Truth, images: np.ndarray, hkl: np.ndarray, values: np.ndarray, *, in_asu: bool
) -> KeyedRows:
    keys = _to_asu(hkl, truth.space_group_number) if in_asu else np.asarray(hkl, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    rows = np.column_stack([np.asarray(images, dtype=np.int64), keys.astype(np.int64)])
    return rows[finite], values[finite]


def _paired_sums(first: KeyedRows, second: KeyedRows) -> tuple[np.ndarray, np.ndarray]:
    """The sums of each side's values per (image, h, k, l) key, for the keys both sides
    hold (in key order). Arrays rather than a dictionary per row: a 3600-image run has
    millions of integrated reflections."""
    if not first[0].size or not second[0].size:
        return np.zeros(0), np.zeros(0)
    first_codes, second_codes = _key_codes(first[0], second[0])
    first_keys, first_sums = _sums_per_code(first_codes, first[1])
    second_keys, second_sums = _sums_per_code(second_codes, second[1])
    _common, in_first, in_second = np.intersect1d(
        first_keys, second_keys, assume_unique=True, return_indices=True
    )
    return first_sums[in_first], second_sums[in_second]


def _key_codes(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One int64 per (image, h, k, l) row, equal for equal rows of either side: the row
    as a number in mixed radix over the columns' common ranges, or its rank among the
    distinct rows where that number would not fit."""
    both = np.concatenate([first, second])
    low = both.min(axis=0)
    spans = [int(span) for span in both.max(axis=0) - low + 1]
    if math.prod(spans) < 2**62:
        radix = np.array([spans[1] * spans[2] * spans[3], spans[2] * spans[3], spans[3], 1])
        codes = (both - low) @ radix
    else:
        codes = np.unique(both, axis=0, return_inverse=True)[1].ravel()
    return codes[: len(first)], codes[len(first) :]


def _sums_per_code(codes: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct codes, sorted; the sum of the values of each), summed in row order."""
    distinct, inverse = np.unique(codes, return_inverse=True)
    return distinct, np.bincount(inverse.ravel(), weights=values, minlength=distinct.size)


def _settings_of(truth: Truth) -> list[tuple[str, np.ndarray]]:
    """The identity and the twin laws of the truth's cell and space group, as (triplet in
    h, k, l, integer rotation acting on row vectors of Miller indices)."""
    import gemmi  # deferred: only truth scoring needs it

    settings = [("h,k,l", np.eye(3, dtype=np.int64))]
    if truth.unit_cell is None:
        return settings
    group = gemmi.find_spacegroup_by_number(truth.space_group_number)
    for op in gemmi.find_twin_laws(gemmi.UnitCell(*truth.unit_cell), group, 3.0, False):
        rotation = np.asarray(op.rot, dtype=np.int64) // gemmi.Op.DEN
        settings.append((op.as_hkl().triplet(), rotation))
    return settings


def _to_asu(hkl: np.ndarray, space_group_number: int) -> np.ndarray:
    """Miller indices mapped to the reciprocal ASU of the space group (Friedel mates too)."""
    import gemmi  # deferred: only truth scoring needs it

    mapped = np.array(hkl, dtype=np.int32).reshape(-1, 3)
    gemmi.find_spacegroup_by_number(space_group_number).switch_to_asu(mapped)
    return mapped
