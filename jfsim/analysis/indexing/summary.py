"""The run-level indexing summary: how many images indexed, with which cell, and at which
step the others failed (the summary table, ``--json`` and ``/entry/MX``'s run-level
datasets, seed 001 §4.1).

The cell reported is the median of the indexed images' cells in the most common Bravais
type: one number per parameter that a person can compare with what they expected.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jfsim.analysis.indexing.solution import FAILURE_STEPS, ImageIndexing

__all__ = ["IndexingSummary", "IndexingTally"]

#: ``/entry/MX/indexing_algorithm`` values (seed 001 §4.1) per algorithm and engine.
_ALGORITHM_NAMES = {"ffbidx": "FFBIDX", "fft": "FFT", "rotation": "FFT"}


@dataclass(frozen=True)
class IndexingSummary:
    """What indexing did over a run.

    Attributes:
        algorithm: ``ffbidx`` or ``fft`` (``auto`` resolved); ``refinement``: ``-r``.
        images: images indexing was tried on (analysed images).
        indexed: images that indexed.
        failures: images that did not, by the step that stopped them (:data:`FAILURE_STEPS`).
        bravais, cell: the most common Bravais type and the median cell of its images
            (Å, degrees); None when nothing indexed.
        rotation_lattice_A: two-pass runs: the sweep's lattice (9 numbers, a b c rows).
        rotation_message: two-pass runs: what the first pass found, in words.
    """

    algorithm: str
    refinement: str
    images: int
    indexed: int
    failures: dict[str, int] = field(default_factory=dict)
    bravais: str | None = None
    cell: tuple[float, ...] | None = None
    rotation_lattice_A: tuple[float, ...] | None = None
    rotation_message: str = ""

    @property
    def rate(self) -> float:
        return self.indexed / self.images if self.images else 0.0

    @property
    def algorithm_name(self) -> str:
        """The ``/entry/MX/indexing_algorithm`` text."""
        return _ALGORITHM_NAMES.get(self.algorithm, self.algorithm.upper())

    def as_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "refinement": self.refinement,
            "images": self.images,
            "indexed": self.indexed,
            "indexing_rate": round(self.rate, 4),
            "failures": dict(self.failures),
            "bravais_lattice": self.bravais,
            "cell": None if self.cell is None else [round(v, 3) for v in self.cell],
            "rotation_lattice_A": None
            if self.rotation_lattice_A is None
            else [round(v, 4) for v in self.rotation_lattice_A],
            "rotation_first_pass": self.rotation_message or None,
        }


class IndexingTally:
    """Collects every image's :class:`ImageIndexing` as results arrive."""

    def __init__(self, algorithm: str, refinement: str) -> None:
        self.algorithm = algorithm
        self.refinement = refinement
        self.images = 0
        self.failures: Counter[str] = Counter()
        self._cells: dict[str, list[tuple[float, ...]]] = {}

    def add(self, indexing: ImageIndexing) -> None:
        self.images += 1
        if indexing.indexed and indexing.lattice is not None:
            self._cells.setdefault(indexing.lattice.bravais, []).append(indexing.lattice.cell)
        else:
            self.failures[indexing.failure or "no_lattice"] += 1

    def summary(
        self,
        *,
        rotation_lattice_A: tuple[float, ...] | None = None,
        rotation_message: str = "",
    ) -> IndexingSummary:
        indexed = sum(len(cells) for cells in self._cells.values())
        bravais = cell = None
        if self._cells:
            bravais = max(self._cells, key=lambda key: len(self._cells[key]))
            medians = np.median(np.array(self._cells[bravais]), axis=0)
            cell = tuple(float(v) for v in medians)
        return IndexingSummary(
            algorithm=self.algorithm,
            refinement=self.refinement,
            images=self.images,
            indexed=indexed,
            failures={step: self.failures[step] for step in FAILURE_STEPS if self.failures[step]},
            bravais=bravais,
            cell=cell,
            rotation_lattice_A=rotation_lattice_A,
            rotation_message=rotation_message,
        )
