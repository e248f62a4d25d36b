"""Run by test_indexing_engines.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (or on a GPU)
and PYTHONPATH at the project root: scores and indexes one synthetic still with the GPU and
the CPU indexing engine and prints the comparison as JSON.

The still: lysozyme reflections within 2 Å whose excitation error is below 0.0006 Å⁻¹, in a
random orientation, as the scattering vectors the spot finder's positions give.
"""

from __future__ import annotations

import json
import sys

import gemmi
import numpy as np

from jfsim.analysis.indexing.engines import cpu, gpu
from jfsim.analysis.indexing.fft import FftOptions, search_fft
from jfsim.analysis.indexing.known_cell import KnownCellOptions, search_known_cell
from jfsim.analysis.indexing.lattice import ReferenceCell
from jfsim.analysis.indexing.vectors import hemisphere_directions
from jfsim.geometry import rotation_matrix

CELL = (79.1, 79.1, 37.9, 90.0, 90.0, 90.0)
WAVELENGTH_A = 1.0
#: Small searches: the simulator runs every GPU thread in Python.
DIRECTIONS = 1024


def still_spots(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(scattering vectors ``(n, 3)`` Å⁻¹, the true real-space lattice, rows a, b, c)."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    turn = np.asarray(rotation_matrix(tuple(axis / np.linalg.norm(axis)), rng.uniform(0, 6)))
    real = np.array(gemmi.UnitCell(*CELL).orth.mat, dtype=float).T @ turn.T
    ub = np.linalg.inv(real)
    span = np.arange(-40, 41)
    hkl = np.stack(np.meshgrid(span, span, span[20:61], indexing="ij"), -1).reshape(-1, 3)
    r = hkl @ ub.T
    s0 = np.array([0.0, 0.0, 1.0 / WAVELENGTH_A])
    excitation = np.linalg.norm(s0 + r, axis=1) - 1.0 / WAVELENGTH_A
    keep = (np.abs(excitation) < 0.0006) & (np.linalg.norm(r, axis=1) < 0.5) & hkl.any(axis=1)
    return r[keep], real


def main() -> int:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    spots, real = still_spots(seed)
    on_gpu, on_cpu = gpu.prepare(), cpu.prepare()
    directions = hemisphere_directions(DIRECTIONS)
    scores = [e.score_vectors(spots, directions * CELL[0], 0.3) for e in (on_gpu, on_cpu)]
    histograms = [e.projection_histograms(spots, directions, 0.5, 256) for e in (on_gpu, on_cpu)]
    reference = ReferenceCell(CELL, "P", 96)
    known = KnownCellOptions(directions=DIRECTIONS)
    fft = FftOptions(directions=DIRECTIONS, max_cell_A=120.0, candidates=60)
    engines = (on_gpu, on_cpu)
    bases = {
        "known_cell": [search_known_cell(spots, reference, e, 0.2, known) for e in engines],
        "fft": [search_fft(spots, e, 0.2, fft) for e in engines],
    }
    report = {
        "engines": [on_gpu.name, on_cpu.name],
        "spots": int(spots.shape[0]),
        "score_max_abs_diff": float(np.max(np.abs(scores[0] - scores[1]))),
        "best_score": float(scores[1].max()),
        "histograms_identical": bool(np.array_equal(histograms[0], histograms[1])),
        "histogram_total": int(histograms[1].sum()),
    }
    for name, (from_gpu, from_cpu) in bases.items():
        found = from_gpu is not None and from_cpu is not None
        report[f"{name}_found"] = found
        report[f"{name}_same"] = found and bool(np.allclose(from_gpu, from_cpu, atol=1e-9))
        if found:  # the solution spans the true lattice: an integer, unimodular change
            change = from_cpu @ np.linalg.inv(real)
            report[f"{name}_max_fraction"] = float(np.max(np.abs(change - np.rint(change))))
            report[f"{name}_det"] = round(float(np.linalg.det(np.rint(change))))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
