"""Scaling: per-image scale factors by least squares against the current merged means.

Each observation o of unique reflection h on image i is modelled as

    E[I_o] = g_i · c_o · I_h,      c_o = partiality_o · lp_o

(seed 001's ``image_scale_corr`` is 1/(g_i · c_o)). Starting from g = 1, each cycle merges
(inverse-variance weighted mean of y_o = I_o/(g_i c_o)), optionally rejects observations
far from their reflection's median, and refines every g_i by linear least squares against
the merged means; the scales are then normalised to a mean of 1 (an overall scale cannot be
determined from relative data). Sums go through ``numpy.bincount``, so a cycle over a
million observations takes a fraction of a second.

Partial reflections of rotation data (``-P rot``): :func:`sum_rotation_partials` adds the
partials of one crossing, recorded on consecutive images, into one observation whose
partiality is the sum of theirs; it is attributed to the image holding its largest part.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from jfsim.analysis.reflections import IntegratedReflections

__all__ = [
    "CROSSING_TOLERANCE_DEG",
    "MIN_OBSERVATIONS_PER_IMAGE",
    "ScaleResult",
    "group_median",
    "refine_scales",
    "sum_rotation_partials",
    "weighted_means",
]

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]

#: Partials of one reflection whose crossing angles differ by less than this are one
#: crossing (the crossing angle of a reflection is the same on every image it touches,
#: up to refinement noise; two crossings of one reflection are far apart).
CROSSING_TOLERANCE_DEG = 1.0
#: An image with fewer observations of multiply measured reflections keeps g = 1.
MIN_OBSERVATIONS_PER_IMAGE = 3


def sum_rotation_partials(table: IntegratedReflections) -> IntegratedReflections:
    """One row per crossing: Σ intensity, √Σσ², Σ partiality, the mean Lorentz-polarisation
    factor and the other columns of the largest partial (its image, position, …)."""
    n = len(table)
    if n == 0:
        return table
    order = np.lexsort((table.phi_deg, table.l, table.k, table.h, table.lattice))
    sorted_table = table.select(order)
    hkl = np.stack(
        [sorted_table.lattice, sorted_table.h, sorted_table.k, sorted_table.l], axis=1
    ).astype(np.int64)
    new_reflection = np.any(hkl[1:] != hkl[:-1], axis=1)
    jump = np.abs(np.diff(sorted_table.phi_deg)) >= CROSSING_TOLERANCE_DEG
    starts = np.concatenate([[True], new_reflection | jump])
    group = np.cumsum(starts) - 1
    n_groups = int(group[-1]) + 1
    partiality = _sums(group, sorted_table.partiality, n_groups)
    intensity = _sums(group, sorted_table.intensity_photons, n_groups)
    variance = _sums(group, sorted_table.sigma_photons**2, n_groups)
    lp = _sums(group, sorted_table.lp * sorted_table.partiality, n_groups) / np.where(
        partiality > 0, partiality, 1.0
    )
    # the largest partial of each group: the last row after sorting by (group, partiality)
    by_size = np.lexsort((sorted_table.partiality, group))
    last_of_group = np.flatnonzero(np.diff(group[by_size], append=n_groups))
    largest = by_size[last_of_group]
    representative = sorted_table.select(largest)
    return replace(
        representative,
        intensity_photons=intensity,
        sigma_photons=np.sqrt(variance),
        partiality=partiality,
        lp=lp,
    )


def _sums(groups: IndexArray, values: FloatArray, n_groups: int) -> FloatArray:
    """Σ ``values`` per group."""
    return np.asarray(np.bincount(groups, values, n_groups), dtype=np.float64)


def weighted_means(
    groups: IndexArray, values: FloatArray, sigmas: FloatArray, n_groups: int
) -> tuple[FloatArray, FloatArray, IndexArray]:
    """Inverse-variance weighted mean, its σ and the count of ``values`` per group (NaN
    for empty groups)."""
    weights = 1.0 / sigmas**2
    total_weight = np.bincount(groups, weights, n_groups)
    weighted = np.bincount(groups, weights * values, n_groups)
    counts = np.bincount(groups, minlength=n_groups).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(total_weight > 0, weighted / total_weight, np.nan)
        sigma = np.where(total_weight > 0, 1.0 / np.sqrt(total_weight), np.nan)
    return mean, sigma, counts


def group_median(groups: IndexArray, values: FloatArray, n_groups: int) -> FloatArray:
    """The median of ``values`` in each group (NaN for empty groups)."""
    median = np.full(n_groups, np.nan)
    if values.size == 0:
        return median
    order = np.lexsort((values, groups))
    sorted_groups = groups[order]
    sorted_values = values[order]
    starts = np.searchsorted(sorted_groups, np.arange(n_groups), side="left")
    ends = np.searchsorted(sorted_groups, np.arange(n_groups), side="right")
    present = ends > starts
    low = (starts + (ends - starts - 1) // 2)[present]
    high = (starts + (ends - starts) // 2)[present]
    median[present] = 0.5 * (sorted_values[low] + sorted_values[high])
    return median


@dataclass(frozen=True, slots=True)
class ScaleResult:
    """Scale factors of the images (``scales[i]`` of image index i, mean 1 over the images
    that were scaled) and which observations survived outlier rejection."""

    scales: FloatArray
    kept: npt.NDArray[np.bool_]
    rejected_outliers: int


def refine_scales(
    image_index: IndexArray,
    unique_index: IndexArray,
    corrected: FloatArray,
    corrected_sigma: FloatArray,
    *,
    n_images: int,
    n_unique: int,
    iterations: int,
    reject_outliers_sigma: float | None = None,
) -> ScaleResult:
    """Per-image scales g (see the module docstring).

    Args:
        image_index: each observation's image, 0 … n_images − 1.
        unique_index: each observation's unique reflection, 0 … n_unique − 1.
        corrected, corrected_sigma: I_o / c_o and σ_o / c_o.
        iterations: scaling cycles (0: every g = 1).
        reject_outliers_sigma: drop observations further than this many of their own σ
            from their reflection's median (reflections measured at least three times).
    """
    scales = np.ones(n_images)
    kept = np.ones(corrected.shape[0], dtype=bool)
    rejected = 0
    for _cycle in range(iterations):
        g = scales[image_index]
        y = corrected / g
        sigma_y = corrected_sigma / g
        if reject_outliers_sigma is not None:
            outliers = _outliers(unique_index, y, sigma_y, kept, n_unique, reject_outliers_sigma)
            rejected += int(np.count_nonzero(outliers))
            kept &= ~outliers
        mean, _sigma, counts = weighted_means(unique_index[kept], y[kept], sigma_y[kept], n_unique)
        usable = kept & (counts[unique_index] >= 2) & np.isfinite(mean[unique_index])
        model = mean[unique_index[usable]]
        weights = 1.0 / corrected_sigma[usable] ** 2
        numerator = np.bincount(image_index[usable], weights * corrected[usable] * model, n_images)
        denominator = np.bincount(image_index[usable], weights * model * model, n_images)
        observed = np.bincount(image_index[usable], minlength=n_images)
        fitted = (observed >= MIN_OBSERVATIONS_PER_IMAGE) & (denominator > 0)
        new_scales = np.where(fitted, numerator / np.where(denominator > 0, denominator, 1.0), 1.0)
        positive = fitted & (new_scales > 0)
        if not positive.any():
            break
        scales = np.where(positive, new_scales, 1.0)
        scales[positive] /= scales[positive].mean()
    if reject_outliers_sigma is not None and iterations == 0:
        outliers = _outliers(
            unique_index, corrected, corrected_sigma, kept, n_unique, reject_outliers_sigma
        )
        rejected += int(np.count_nonzero(outliers))
        kept &= ~outliers
    return ScaleResult(scales=scales, kept=kept, rejected_outliers=rejected)


def _outliers(
    unique_index: IndexArray,
    y: FloatArray,
    sigma_y: FloatArray,
    kept: npt.NDArray[np.bool_],
    n_unique: int,
    n_sigma: float,
) -> npt.NDArray[np.bool_]:
    """Kept observations of reflections measured ≥ 3 times that lie more than ``n_sigma``
    of their own σ from their reflection's median."""
    counts = np.bincount(unique_index[kept], minlength=n_unique)
    median = group_median(unique_index[kept], y[kept], n_unique)
    far = np.abs(y - median[unique_index]) > n_sigma * sigma_y
    outliers: npt.NDArray[np.bool_] = kept & (counts[unique_index] >= 3) & far
    return outliers
