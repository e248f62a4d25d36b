"""The run-level reflection step of ``jfsim process -M``: after every image is integrated,
scale and merge (the caller writes ``PREFIX.mtz``, ``.cif`` or ``.hkl`` with
:func:`jfsim.analysis.merged_files.write_merged_file` once ``_process.h5`` is complete).

What cannot be merged (no image indexed, a cell that does not fit ``-S``, nothing left
after the cuts) does not stop the run: the per-image results are written all the same, the
reason is reported as one line (:attr:`MergeOutcome.error`) and ``jfsim process`` exits
with status 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np
import numpy.typing as npt

from jfsim.analysis.errors import AnalysisInputError
from jfsim.analysis.merged_files import merged_file_path
from jfsim.analysis.merging import MergeResult, merge, merge_cell
from jfsim.analysis.reflections import IntegratedReflections
from jfsim.analysis.settings import ProcessSettings

__all__ = ["MergeOutcome", "merge_run"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeOutcome:
    """What the merging step did: a result and the file to write it to, or why not."""

    result: MergeResult | None = None
    path: Path | None = None
    error: str | None = None
    notes: tuple[str, ...] = ()


def merge_run(
    reflections: IntegratedReflections,
    ub_matrices: list[npt.NDArray[np.float64]],
    settings: ProcessSettings,
    *,
    prefix: str | Path,
) -> MergeOutcome:
    """Scale and merge a run's integrated reflections.

    Args:
        reflections: every image's integrated reflections.
        ub_matrices: the lattices they were integrated with (their cells give the merge's).
        settings: ``scaling`` and ``space_group_number`` (-S; P1 when absent).
        prefix: the output prefix (``PREFIX.mtz``).
    """
    notes: list[str] = []
    space_group = settings.space_group()
    if space_group is None:
        space_group = gemmi.find_spacegroup_by_number(1)
        notes.append("no space group (-S): merged in P 1")
    if len(reflections) == 0:
        return MergeOutcome(
            error="merging: no reflection was integrated (no image indexed): nothing to merge",
            notes=tuple(notes),
        )
    try:
        cell = merge_cell(ub_matrices, space_group)
        result = merge(reflections, cell, space_group, settings.scaling)
    except AnalysisInputError as error:
        return MergeOutcome(error=f"merging: {error}", notes=tuple(notes))
    _log.info(
        "merged %d observations into %d reflections in %s",
        result.observations_merged,
        len(result.merged),
        result.space_group,
    )
    path = merged_file_path(prefix, settings.scaling.output_format)
    return MergeOutcome(result=result, path=path, notes=tuple(notes))
