"""Scale and merge a run's integrated reflections (``jfsim process -M``; analysis.md §4).

:func:`merge` takes every image's :class:`IntegratedReflections` and returns a
:class:`MergeResult`: one merged intensity per unique reflection of the space group's
reciprocal asymmetric unit, the per-image scales and the per-shell statistics. Steps:

1. observations: rows with a finite intensity and a positive σ, within
   ``--scaling-high-resolution``; with ``-P rot`` the partials of one crossing summed
   (:func:`jfsim.analysis.scaling.sum_rotation_partials`) and crossings recorded less than
   :data:`MIN_ROTATION_COMPLETENESS` dropped (at the ends of the sweep: their correction
   would rest on the modelled rocking curve alone); with ``-P unity`` partiality taken as
   1; then observations recording less than ``--min-partiality`` dropped;
2. symmetry: Miller indices mapped to the ASU with gemmi (``SpaceGroup.switch_to_asu``,
   the Laue group's ASU, so Friedel mates meet); with ``-A`` a reflection related to its
   ASU representative only through the inversion is an I(−) and kept apart;
3. scaling (:func:`jfsim.analysis.scaling.refine_scales`): per-image scale factors and
   outlier rejection;
4. merging: inverse-variance weighted means of I_o/(g·partiality·lp), σ = (Σ w)^−½;
5. statistics (:func:`jfsim.analysis.merge_statistics.merge_statistics`).

The Miller indices must be in the space group's conventional setting (what indexing with
``-C``/``-S`` gives); a cell that does not fit the space group is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import gemmi
import numpy as np
import numpy.typing as npt

from jfsim.analysis.errors import AnalysisInputError
from jfsim.analysis.merge_statistics import MergeStatistics, merge_statistics
from jfsim.analysis.reflection_settings import ScalingSettings
from jfsim.analysis.reflections import IntegratedReflections
from jfsim.analysis.scaling import refine_scales, sum_rotation_partials, weighted_means
from jfsim.geometry import cell_from_ub

__all__ = [
    "MIN_ROTATION_COMPLETENESS",
    "MergeResult",
    "MergedReflections",
    "asu_miller_indices",
    "merge",
    "merge_cell",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]

#: ``-P rot``: a crossing is merged when its partials sum to at least this predicted
#: fraction of the reflection (aimless's partials test, 0.95). With a rocking width that is
#: not the crystal's (the integration's default mosaicity), the crossings cut by the sweep's
#: ends get wrong corrections: on 360 lysozyme images, keeping them costs CC1/2 0.974
#: instead of 0.9999 for 1 % of completeness.
MIN_ROTATION_COMPLETENESS = 0.95


@dataclass(frozen=True, slots=True)
class MergedReflections:
    """One row per reflection of the ASU that was measured (Friedel mates together).

    ``intensity``/``sigma``/``multiplicity`` merge every observation of the reflection
    (IMEAN); ``intensity_plus``/``_minus`` (with their σ and counts) merge I(+) and I(−)
    apart (NaN and 0 where a mate was not measured; for centric reflections everything is
    I(+)).
    """

    h: IntArray
    k: IntArray
    l: IntArray  # noqa: E741 - Miller index name
    d_A: FloatArray
    intensity: FloatArray
    sigma: FloatArray
    multiplicity: npt.NDArray[np.int64]
    intensity_plus: FloatArray
    sigma_plus: FloatArray
    multiplicity_plus: npt.NDArray[np.int64]
    intensity_minus: FloatArray
    sigma_minus: FloatArray
    multiplicity_minus: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.h.shape[0])

    @property
    def hkl(self) -> IntArray:
        return np.stack([self.h, self.k, self.l], axis=1).astype(np.int32, copy=False)


@dataclass(frozen=True)
class MergeResult:
    """What scaling and merging produced.

    Attributes:
        cell: (a, b, c, α, β, γ) in Å and degrees (the MTZ's cell).
        space_group: Hermann–Mauguin symbol (gemmi's ``xhm``) and number.
        anomalous, partiality_model: how it was merged (``-A``, ``-P``).
        merged: the merged reflections.
        statistics: per-shell and overall statistics.
        image_numbers, image_scales: the scale factor g of each run image that has
            observations (I_true = I/(g·partiality·lp)).
        image_cc: per image, the correlation of its corrected observations with the merged
            means (NaN with fewer than three).
        observations_integrated, observations_merged: rows in, observations used.
        rejected: observations dropped, by reason.
    """

    cell: tuple[float, float, float, float, float, float]
    space_group: str
    space_group_number: int
    anomalous: bool
    partiality_model: str
    merged: MergedReflections
    statistics: MergeStatistics
    image_numbers: npt.NDArray[np.int64]
    image_scales: FloatArray
    image_cc: FloatArray
    observations_integrated: int
    observations_merged: int
    rejected: dict[str, int] = field(default_factory=dict)


def asu_miller_indices(
    hkl: npt.ArrayLike, space_group: gemmi.SpaceGroup
) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """(ASU indices, is I(+)) of each row of ``hkl``: the representative of the Laue
    group's ASU (gemmi), and whether a proper rotation of the point group (not the
    inversion) relates the two."""
    original = np.ascontiguousarray(hkl, dtype=np.int32).reshape(-1, 3)
    asu = original.copy()
    space_group.switch_to_asu(asu)
    plus = np.zeros(original.shape[0], dtype=bool)
    for operation in space_group.operations().sym_ops:
        rotation = np.asarray(operation.rot, dtype=np.int64)
        if round(np.linalg.det(rotation / gemmi.Op.DEN)) != 1:
            continue
        image = (asu.astype(np.int64) @ rotation) // gemmi.Op.DEN
        plus |= np.all(image == original, axis=1)
    return asu, plus


def merge_cell(
    ub_matrices: list[npt.NDArray[np.float64]], space_group: gemmi.SpaceGroup
) -> tuple[float, float, float, float, float, float]:
    """The cell of a run's lattices: the median of each parameter over the lattices, made
    to obey the space group's lattice system (tetragonal a = b, cubic a = b = c, right
    angles, hexagonal γ = 120°, rhombohedral axes a = b = c and α = β = γ)."""
    if not ub_matrices:
        raise AnalysisInputError("no indexed lattice: the cell to merge in is unknown")
    a, b, c, alpha, beta, gamma = (
        float(v) for v in np.median([cell_from_ub(ub) for ub in ub_matrices], axis=0)
    )
    system = space_group.crystal_system_str()
    if system in ("tetragonal", "hexagonal") or (system == "trigonal" and space_group.ext != "R"):
        a = b = 0.5 * (a + b)
    if system == "cubic" or (system == "trigonal" and space_group.ext == "R"):
        a = b = c = (a + b + c) / 3.0
    if system in ("orthorhombic", "tetragonal", "cubic"):
        alpha = beta = gamma = 90.0
    elif system == "monoclinic":
        alpha = gamma = 90.0
    elif system == "hexagonal" or (system == "trigonal" and space_group.ext != "R"):
        alpha, beta, gamma = 90.0, 90.0, 120.0
    elif system == "trigonal":
        alpha = beta = gamma = (alpha + beta + gamma) / 3.0
    return (a, b, c, alpha, beta, gamma)


def merge(
    reflections: IntegratedReflections,
    cell: tuple[float, float, float, float, float, float],
    space_group: gemmi.SpaceGroup,
    settings: ScalingSettings,
) -> MergeResult:
    """Scale and merge ``reflections`` (all images of a run) in ``space_group``.

    Raises:
        AnalysisInputError: the cell does not fit the space group, ``-P rot`` on stills,
            or nothing is left to merge (the message says what was dropped and why).
    """
    unit_cell = gemmi.UnitCell(*cell)
    if not unit_cell.is_compatible_with_spacegroup(space_group):
        raise AnalysisInputError(
            f"cell {_cell_text(cell)} does not fit space group {space_group.xhm()} "
            f"({space_group.number}): give -S for this lattice, or -C in its setting"
        )
    integrated = len(reflections)
    rejected: dict[str, int] = {}
    table = _usable(reflections, settings, rejected)
    if settings.partiality_model == "rot":
        if len(table) and not np.isfinite(table.phi_deg).all():
            raise AnalysisInputError(
                "-P rot: the rotation partiality model needs rotation data; these are stills "
                "(use -P fixed or -P unity)"
            )
        table = sum_rotation_partials(table)
        incomplete = table.partiality < MIN_ROTATION_COMPLETENESS
        rejected["incomplete crossing (-P rot)"] = int(np.count_nonzero(incomplete))
        table = table.select(~incomplete)
    partiality = np.ones(len(table)) if settings.partiality_model == "unity" else table.partiality
    low = partiality < settings.min_partiality
    rejected["partiality below --min-partiality"] = int(np.count_nonzero(low))
    table = table.select(~low)
    partiality = partiality[~low]
    if len(table) == 0:
        raise AnalysisInputError(
            f"nothing to merge: {integrated} integrated reflections, none left after "
            + ", ".join(f"{count} {reason}" for reason, count in rejected.items() if count)
        )
    asu, plus = asu_miller_indices(table.hkl, space_group)
    sign = plus if settings.anomalous else np.ones(len(table), dtype=bool)
    keys = np.concatenate([asu, sign[:, None].astype(np.int32)], axis=1)
    unique_keys, unique_index = np.unique(keys, axis=0, return_inverse=True)
    unique_index = unique_index.reshape(-1).astype(np.int64)
    images, image_index = np.unique(table.image, return_inverse=True)
    image_index = image_index.reshape(-1).astype(np.int64)
    correction = partiality * table.lp
    corrected = table.intensity_photons / correction
    corrected_sigma = table.sigma_photons / correction
    scaled = refine_scales(
        image_index,
        unique_index,
        corrected,
        corrected_sigma,
        n_images=images.shape[0],
        n_unique=unique_keys.shape[0],
        iterations=settings.iterations,
        reject_outliers_sigma=settings.reject_outliers_sigma,
    )
    rejected["outliers (--reject-outliers)"] = scaled.rejected_outliers
    kept = scaled.kept
    g = scaled.scales[image_index]
    y = corrected / g
    sigma_y = corrected_sigma / g
    n_unique = unique_keys.shape[0]
    mean, sigma, _counts = weighted_means(unique_index[kept], y[kept], sigma_y[kept], n_unique)
    unique_d = np.asarray(unit_cell.calculate_d_array(unique_keys[:, :3].astype(np.int32)))
    statistics = merge_statistics(
        unique_d_A=unique_d,
        merged_intensity=mean,
        merged_sigma=sigma,
        observation_unique=unique_index[kept],
        observation_intensity=y[kept],
        observation_sigma=sigma_y[kept],
        cell=unit_cell,
        space_group=space_group,
        anomalous=settings.anomalous,
    )
    merged = _merged_table(asu[kept], plus[kept], y[kept], sigma_y[kept], unit_cell)
    return MergeResult(
        cell=cell,
        space_group=space_group.xhm(),
        space_group_number=space_group.number,
        anomalous=settings.anomalous,
        partiality_model=settings.partiality_model,
        merged=merged,
        statistics=statistics,
        image_numbers=images.astype(np.int64),
        image_scales=scaled.scales,
        image_cc=_image_cc(image_index[kept], y[kept], mean[unique_index[kept]], len(images)),
        observations_integrated=integrated,
        observations_merged=int(np.count_nonzero(kept)),
        rejected={reason: count for reason, count in rejected.items() if count},
    )


def _usable(
    reflections: IntegratedReflections, settings: ScalingSettings, rejected: dict[str, int]
) -> IntegratedReflections:
    measured = (
        np.isfinite(reflections.intensity_photons)
        & np.isfinite(reflections.sigma_photons)
        & (reflections.sigma_photons > 0)
        & (reflections.lp > 0)
    )
    rejected["without a usable intensity or σ"] = int(np.count_nonzero(~measured))
    limit = settings.high_resolution_limit_A
    if limit is not None:
        beyond = measured & (reflections.d_A < limit)
        rejected["beyond --scaling-high-resolution"] = int(np.count_nonzero(beyond))
        measured &= ~beyond
    return reflections.select(measured)


def _merged_table(
    asu: IntArray,
    plus: npt.NDArray[np.bool_],
    y: FloatArray,
    sigma_y: FloatArray,
    unit_cell: gemmi.UnitCell,
) -> MergedReflections:
    """IMEAN and I(+)/I(−) per ASU reflection, sorted by h, k, l."""
    unique, index = np.unique(asu, axis=0, return_inverse=True)
    index = index.reshape(-1).astype(np.int64)
    n = unique.shape[0]
    mean, sigma, count = weighted_means(index, y, sigma_y, n)
    mate_means = [weighted_means(index[side], y[side], sigma_y[side], n) for side in (plus, ~plus)]
    return MergedReflections(
        h=unique[:, 0].astype(np.int32),
        k=unique[:, 1].astype(np.int32),
        l=unique[:, 2].astype(np.int32),
        d_A=np.asarray(unit_cell.calculate_d_array(unique.astype(np.int32)), dtype=np.float64),
        intensity=mean,
        sigma=sigma,
        multiplicity=count,
        intensity_plus=mate_means[0][0],
        sigma_plus=mate_means[0][1],
        multiplicity_plus=mate_means[0][2],
        intensity_minus=mate_means[1][0],
        sigma_minus=mate_means[1][1],
        multiplicity_minus=mate_means[1][2],
    )


def _image_cc(
    image_index: npt.NDArray[np.int64], y: FloatArray, model: FloatArray, n_images: int
) -> FloatArray:
    """Pearson r of each image's observations with the merged means."""
    cc = np.full(n_images, math.nan)
    order = np.argsort(image_index, kind="stable")
    bounds = np.searchsorted(image_index[order], np.arange(n_images + 1))
    for image in range(n_images):
        rows = order[bounds[image] : bounds[image + 1]]
        if rows.size >= 3 and np.std(y[rows]) > 0 and np.std(model[rows]) > 0:
            cc[image] = float(np.corrcoef(y[rows], model[rows])[0, 1])
    return cc


def _cell_text(cell: tuple[float, ...]) -> str:
    return ",".join(f"{value:g}" for value in cell)
