"""De novo indexing by 1-D Fourier transforms (``FFT``): DPS after Steller, Bolotovsky &
Rossmann (J. Appl. Cryst. 1997), as DIALS' ``fft1d``.

1. The spots' reciprocal vectors are projected on ``fft_num_vectors`` directions over a
   half sphere and histogrammed (the engine's ``projection_histograms``) over
   ±1/``fft_high_resolution_A``. Along a direct-lattice vector the projections bunch at
   multiples of 1/|a|, so the histogram's Fourier transform peaks at the length |a|.
2. Per direction, the strongest Fourier amplitude between ``fft_min_unit_cell_A`` and
   ``fft_max_unit_cell_A`` gives a candidate vector; the strongest candidates are refined
   by least squares on the spots and repeats are dropped. A candidate that is a multiple
   of a shorter one (a harmonic) gives way to it.
3. The three that index the most spots together, with the smallest cell among those, are
   the basis; it is primitive and in no particular setting (the caller reduces it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from jfsim.analysis.indexing.engines import ScoringEngine
from jfsim.analysis.indexing.vectors import (
    best_basis,
    best_first,
    distinct,
    fitting,
    hemisphere_directions,
    refine_vector,
)

__all__ = ["FftOptions", "search_fft"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FftOptions:
    """The FFT search: the broker's ``IndexingSettings`` fields and jfsim's own choices.

    Attributes:
        directions: ``fft_num_vectors``.
        min_cell_A, max_cell_A: ``fft_min_unit_cell_A``, ``fft_max_unit_cell_A``.
        high_resolution_A: ``fft_high_resolution_A``: the histogram spans ±1/d.
        oversampling: histogram bins per Nyquist bin of the longest cell (finer lengths).
        candidates: strongest directions refined in step 2.
        refine_tolerances: tolerances of the least-squares rounds.
        basis_candidates: distinct refined vectors tried in step 3.
    """

    directions: int = 16384
    min_cell_A: float = 10.0
    max_cell_A: float = 250.0
    high_resolution_A: float = 2.0
    oversampling: int = 2
    candidates: int = 120
    refine_tolerances: tuple[float, ...] = (0.25, 0.2, 0.15)
    basis_candidates: int = 30

    @property
    def extent_invA(self) -> float:
        return 1.0 / self.high_resolution_A

    @property
    def n_bins(self) -> int:
        """Bins of the histogram: a power of two with the longest cell below Nyquist."""
        needed = 4.0 * self.extent_invA * self.max_cell_A * self.oversampling
        return 1 << max(6, math.ceil(math.log2(needed)))


def _candidate_vectors(
    r_invA: FloatArray, engine: ScoringEngine, options: FftOptions
) -> list[FloatArray]:
    """Step 1: the strongest direction × length pairs, as vectors, strongest first."""
    directions = hemisphere_directions(options.directions)
    histograms = engine.projection_histograms(
        r_invA, directions, options.extent_invA, options.n_bins
    )
    amplitudes = np.abs(np.fft.rfft(histograms.astype(np.float64), axis=1))
    lengths = np.fft.rfftfreq(options.n_bins, d=2.0 * options.extent_invA / options.n_bins)
    band = np.flatnonzero((lengths >= options.min_cell_A) & (lengths <= options.max_cell_A))
    in_band = amplitudes[:, band]
    peak = np.argmax(in_band, axis=1)
    strength = in_band[np.arange(in_band.shape[0]), peak]
    strongest = best_first(strength, options.candidates)
    return [directions[m] * lengths[band[peak[m]]] for m in strongest]


def _fundamental(
    r_invA: FloatArray, vector: FloatArray, tolerance: float, min_cell_A: float
) -> FloatArray:
    """``vector`` divided by the largest n ≤ 4 for which v/n still fits as many spots
    (a harmonic of a lattice vector fits every spot the vector fits)."""
    fits = int(fitting(r_invA, vector, tolerance).sum())
    for n in (4, 3, 2):
        shorter = vector / n
        if (
            np.linalg.norm(shorter) >= min_cell_A
            and fitting(r_invA, shorter, tolerance).sum() >= 0.95 * fits
        ):
            return shorter
    return vector


def search_fft(
    r_invA: FloatArray,
    engine: ScoringEngine,
    tolerance: float,
    options: FftOptions | None = None,
) -> FloatArray | None:
    """A primitive basis (rows, Å, lab frame) that indexes the most spots of ``r_invA``, or
    None when the candidates span no cell."""
    options = options or FftOptions()
    refined: list[tuple[int, FloatArray]] = []
    for vector in _candidate_vectors(r_invA, engine, options):
        vector, count = refine_vector(r_invA, vector, options.refine_tolerances)
        if not count:
            continue
        vector = _fundamental(r_invA, vector, tolerance, options.min_cell_A)
        vector, count = refine_vector(r_invA, vector, options.refine_tolerances[-1:])
        if count and options.min_cell_A <= np.linalg.norm(vector) <= 2 * options.max_cell_A:
            refined.append((count, vector))
    refined.sort(key=lambda item: -item[0])
    vectors = distinct([vector for _count, vector in refined])[: options.basis_candidates]
    return best_basis(r_invA, vectors, tolerance, min_volume_A3=options.min_cell_A**3)
