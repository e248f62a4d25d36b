"""The merging statistics as a table for people (``jfsim process -M``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the analysis pulls in numba: imported only when processing
    from jfsim.analysis.merge_statistics import MergeStatistics, ShellStatistics

_HEADER = (
    f"{'d_max':>7} {'d_min':>6} {'obs':>8} {'unique':>7} {'possible':>8} {'compl':>6} "
    f"{'mult':>5} {'I/sig':>7} {'CC1/2':>6} {'Rmeas':>6}"
)


def statistics_table(statistics: MergeStatistics) -> str:
    """Resolution shells (low resolution first) and the overall row, one line each."""
    lines = ["merging statistics per resolution shell (Å):", _HEADER]
    lines += [_line(shell) for shell in statistics.shells]
    lines.append("-" * len(_HEADER))
    lines.append(_line(statistics.overall))
    return "\n".join(lines)


def _line(row: ShellStatistics) -> str:
    d_max = "inf" if math.isinf(row.d_max_A) else f"{row.d_max_A:.2f}"
    return (
        f"{d_max:>7} {row.d_min_A:6.2f} {row.observations:8d} {row.unique:7d} "
        f"{row.possible:8d} {_percent(row.completeness):>6} {_number(row.multiplicity, 1):>5} "
        f"{_number(row.mean_i_over_sigma, 1):>7} {_number(row.cc_half, 3):>6} "
        f"{_number(row.r_meas, 3):>6}"
    )


def _number(value: float, digits: int) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{digits}f}"


def _percent(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{100 * value:.1f}%"
