"""Merging statistics per resolution shell: completeness, multiplicity, ⟨I/σ⟩, CC1/2, Rmeas.

Definitions (as aimless and XDS report them):

* shells have equal volume in reciprocal space (equal steps of 1/d³) between the lowest and
  the highest resolution merged, so each holds about as many possible reflections;
* completeness = unique reflections measured / reflections possible in the shell (gemmi's
  ``make_miller_array`` of the cell and space group; with ``-A`` the Friedel mates of
  acentric reflections count apart);
* multiplicity = observations / unique reflections measured;
* ⟨I/σ⟩ = mean over unique reflections of the merged I/σ(I);
* CC1/2 = Pearson correlation, over reflections measured at least twice, of the means of
  two random halves of each reflection's observations (a fixed seed: the same data give
  the same value);
* Rmeas = Σ_h √(n_h/(n_h − 1)) Σ_i |I_hi − ⟨I_h⟩| / Σ_h Σ_i I_hi over reflections measured
  at least twice (Diederichs & Karplus 1997).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import gemmi
import numpy as np
import numpy.typing as npt

__all__ = ["CC_HALF_SEED", "MergeStatistics", "ShellStatistics", "merge_statistics"]

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]

#: Seed of the random half-datasets of CC1/2.
CC_HALF_SEED = 20240101
#: Fewest reflection pairs for which CC1/2 is reported.
MIN_CC_PAIRS = 3
#: Shells of the statistics table (fewer when few reflections were merged).
DEFAULT_SHELLS = 10
_MIN_UNIQUE_PER_SHELL = 20


@dataclass(frozen=True, slots=True)
class ShellStatistics:
    """One row of the statistics table (``d_max_A`` ≥ d > ``d_min_A``; NaN where a value
    is undefined, e.g. CC1/2 without repeated measurements)."""

    d_max_A: float
    d_min_A: float
    observations: int
    unique: int
    possible: int
    completeness: float
    multiplicity: float
    mean_i_over_sigma: float
    cc_half: float
    r_meas: float


@dataclass(frozen=True, slots=True)
class MergeStatistics:
    """Per-shell rows, low resolution first, and the overall row."""

    shells: tuple[ShellStatistics, ...]
    overall: ShellStatistics

    def as_dict(self) -> dict[str, object]:
        return {
            "shells": [_json_row(shell) for shell in self.shells],
            "overall": _json_row(self.overall),
        }


def _json_row(row: ShellStatistics) -> dict[str, float | int | None]:
    return {
        key: (None if isinstance(value, float) and not math.isfinite(value) else value)
        for key, value in asdict(row).items()
    }


def merge_statistics(
    *,
    unique_d_A: FloatArray,
    merged_intensity: FloatArray,
    merged_sigma: FloatArray,
    observation_unique: IndexArray,
    observation_intensity: FloatArray,
    observation_sigma: FloatArray,
    cell: gemmi.UnitCell,
    space_group: gemmi.SpaceGroup,
    anomalous: bool,
    n_shells: int = DEFAULT_SHELLS,
) -> MergeStatistics:
    """The statistics of one merge.

    Args:
        unique_d_A, merged_intensity, merged_sigma: per unique reflection (index u).
        observation_unique: each observation's unique index u.
        observation_intensity, observation_sigma: the scaled, corrected observations.
    """
    n_unique = unique_d_A.shape[0]
    if n_unique == 0:
        empty = ShellStatistics(math.inf, 0.0, 0, 0, 0, *([math.nan] * 5))
        return MergeStatistics((), empty)
    d_min, d_max = float(unique_d_A.min()), float(unique_d_A.max())
    shells = max(1, min(n_shells, n_unique // _MIN_UNIQUE_PER_SHELL))
    edges = _shell_edges_invA(d_min, d_max, shells)
    possible_d = _possible_d_A(cell, space_group, d_min, d_max, anomalous)
    unique_shell = _shell_of(unique_d_A, edges)
    possible_shell = _shell_of(possible_d, edges)
    halves = _half_means(observation_unique, observation_intensity, observation_sigma, n_unique)
    rows = []
    for shell in range(shells):
        rows.append(
            _row(
                unique_shell == shell,
                int(np.count_nonzero(possible_shell == shell)),
                _d_of(edges[shell]),
                _d_of(edges[shell + 1]),
                merged_intensity,
                merged_sigma,
                observation_unique,
                observation_intensity,
                halves,
            )
        )
    overall = _row(
        np.ones(n_unique, dtype=bool),
        int(possible_d.shape[0]),
        d_max,
        d_min,
        merged_intensity,
        merged_sigma,
        observation_unique,
        observation_intensity,
        halves,
    )
    return MergeStatistics(tuple(rows), overall)


def _d_of(s_invA: float) -> float:
    return math.inf if s_invA <= 0 else 1.0 / s_invA


def _shell_edges_invA(d_min: float, d_max: float, shells: int) -> FloatArray:
    """1/d at the shell boundaries, equal steps of 1/d³, low resolution first; the outer
    edges sit just beyond the data so that every reflection falls inside."""
    low = (1.0 / d_max) ** 3 * (1.0 - 1e-9)
    high = (1.0 / d_min) ** 3 * (1.0 + 1e-9)
    edges: FloatArray = np.cbrt(np.linspace(low, high, shells + 1))
    return edges


def _shell_of(d_A: FloatArray, edges: FloatArray) -> IndexArray:
    """Shell index of each d (−1 outside the edges)."""
    s = 1.0 / d_A
    shell = np.searchsorted(edges, s, side="right") - 1
    shell[(s < edges[0]) | (s > edges[-1])] = -1
    shell[shell == edges.shape[0] - 1] = edges.shape[0] - 2
    result: IndexArray = shell.astype(np.int64)
    return result


def _possible_d_A(
    cell: gemmi.UnitCell, space_group: gemmi.SpaceGroup, d_min: float, d_max: float, anomalous: bool
) -> FloatArray:
    """d of every reflection the space group allows in [d_min, d_max] (ASU; acentric ones
    twice with ``anomalous``)."""
    hkl = gemmi.make_miller_array(cell, space_group, d_min * (1 - 1e-9), d_max * (1 + 1e-9), True)
    d = np.asarray(cell.calculate_d_array(hkl), dtype=np.float64)
    if anomalous and len(hkl):
        centric = np.asarray(space_group.operations().centric_flag_array(hkl), dtype=bool)
        d = np.concatenate([d, d[~centric]])
    return d


def _half_means(
    unique: IndexArray, intensity: FloatArray, sigma: FloatArray, n_unique: int
) -> tuple[FloatArray, FloatArray]:
    """Mean intensity of two random halves of each reflection's observations (NaN where a
    half is empty)."""
    rng = np.random.default_rng(CC_HALF_SEED)
    order = np.lexsort((np.asarray(rng.random(unique.shape[0])), unique))
    sorted_unique = unique[order]
    first = np.searchsorted(sorted_unique, sorted_unique, side="left")
    counts = np.bincount(unique, minlength=n_unique)
    rank = np.arange(sorted_unique.shape[0]) - first
    in_first_half = np.empty(unique.shape[0], dtype=bool)
    in_first_half[order] = rank < counts[sorted_unique] // 2
    means = []
    for half in (in_first_half, ~in_first_half):
        weights = 1.0 / sigma[half] ** 2
        total = np.bincount(unique[half], weights, n_unique)
        weighted = np.bincount(unique[half], weights * intensity[half], n_unique)
        with np.errstate(divide="ignore", invalid="ignore"):
            means.append(np.where(total > 0, weighted / total, np.nan))
    return means[0], means[1]


def _row(
    selected: npt.NDArray[np.bool_],
    possible: int,
    d_max: float,
    d_min: float,
    merged_intensity: FloatArray,
    merged_sigma: FloatArray,
    observation_unique: IndexArray,
    observation_intensity: FloatArray,
    halves: tuple[FloatArray, FloatArray],
) -> ShellStatistics:
    unique = int(np.count_nonzero(selected))
    in_shell = selected[observation_unique]
    observations = int(np.count_nonzero(in_shell))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = merged_intensity[selected] / merged_sigma[selected]
    ratio = ratio[np.isfinite(ratio)]
    mean_i_over_sigma = float(ratio.mean()) if ratio.size else math.nan
    first, second = halves[0][selected], halves[1][selected]
    pairs = np.isfinite(first) & np.isfinite(second)
    cc_half = (
        float(np.corrcoef(first[pairs], second[pairs])[0, 1])
        if np.count_nonzero(pairs) >= MIN_CC_PAIRS
        else math.nan
    )
    return ShellStatistics(
        d_max_A=d_max,
        d_min_A=d_min,
        observations=observations,
        unique=unique,
        possible=possible,
        completeness=unique / possible if possible else math.nan,
        multiplicity=observations / unique if unique else math.nan,
        mean_i_over_sigma=mean_i_over_sigma,
        cc_half=cc_half,
        r_meas=_r_meas(observation_unique[in_shell], observation_intensity[in_shell]),
    )


def _r_meas(unique: IndexArray, intensity: FloatArray) -> float:
    if unique.size == 0:
        return math.nan
    groups, inverse, counts = np.unique(unique, return_inverse=True, return_counts=True)
    n = counts[inverse]
    repeated = n >= 2
    if not repeated.any():
        return math.nan
    sums = np.bincount(inverse, intensity, groups.shape[0])
    mean = sums[inverse] / n
    factor = np.sqrt(n[repeated] / (n[repeated] - 1.0))
    numerator = float(np.sum(factor * np.abs(intensity[repeated] - mean[repeated])))
    denominator = float(np.sum(intensity[repeated]))
    return numerator / denominator if denominator > 0 else math.nan
