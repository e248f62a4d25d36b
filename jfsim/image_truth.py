"""What one image truly shows: its lattices and the reflections predicted on it; and what
the crystal truly holds: the full intensity of every unique reflection.

The simulator (``jfsim.sim``) makes these records, the truth file (``jfsim.truth``) stores
and reads them, and ``jfsim.truth_analysis`` turns them into Jungfraujoch analysis fields.
They are plain numpy records, so that none of those needs the others (writing a truth file
loads neither the renderer nor numba).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ImageTruth", "ReflectionTable", "UniqueReflections"]


@dataclass(frozen=True, slots=True)
class ReflectionTable:
    """One row per reflection predicted on an image; the columns of the truth file.

    ``x_pxl``/``y_pxl`` are continuous (pixel centre at i + 0.5); ``phi_deg`` is the crossing
    angle (NaN for stills); ``excitation_error_invA`` NaN for rotation; ``intensity_photons``
    is the expected number of photons recorded on this image (full intensity × partiality);
    ``masked`` is True when the predicted centre is on a gap or masked pixel; ``sigma_pxl``
    is the rendered Gaussian width of the spot and ``background_photons`` the expected
    (noise-free) background per pixel at its centre, which a judge needs to know how
    significant a spot was meant to be.
    """

    lattice: np.ndarray
    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741 - Miller index name
    x_pxl: np.ndarray
    y_pxl: np.ndarray
    phi_deg: np.ndarray
    excitation_error_invA: np.ndarray
    partiality: np.ndarray
    intensity_photons: np.ndarray
    d_A: np.ndarray
    masked: np.ndarray
    sigma_pxl: np.ndarray
    background_photons: np.ndarray

    def __len__(self) -> int:
        return int(self.h.shape[0])

    @property
    def hkl(self) -> np.ndarray:
        """Miller indices as an int32 ``(n, 3)`` array."""
        return np.stack([self.h, self.k, self.l], axis=1)

    @classmethod
    def concatenate(cls, tables: list[ReflectionTable]) -> ReflectionTable:
        if not tables:
            return cls._empty()
        return cls(*(np.concatenate([getattr(t, name) for t in tables]) for name in cls.__slots__))

    @classmethod
    def _empty(cls) -> ReflectionTable:
        i32 = np.zeros(0, dtype=np.int32)
        f64 = np.zeros(0)
        return cls(
            i32, i32, i32, i32, f64, f64, f64, f64, f64, f64, f64, np.zeros(0, bool), f64, f64
        )


@dataclass(frozen=True, slots=True)
class ImageTruth:
    """Ground truth of one image: ``ub_matrices`` ``(n_lattices, 3, 3)`` in Å⁻¹ (r = UB·h at
    scan angle 0) and the predicted reflections."""

    image_id: int
    ub_matrices: np.ndarray
    reflections: ReflectionTable

    @property
    def n_lattices(self) -> int:
        return int(self.ub_matrices.shape[0])


@dataclass(frozen=True, slots=True)
class UniqueReflections:
    """The full intensity of every unique reflection the detector can reach (the space
    group's reciprocal ASU, gemmi's convention; Friedel mates are equal: the simulator has
    no anomalous signal): what scaling and merging estimate, up to one overall scale.

    ``intensity_full_photons`` = expected photons of the whole reflection with Lorentz,
    polarisation and partiality factors 1 (``jfsim.sim.intensities``: transmission ·
    ``intensity_scale_photons`` · |F|² · exp(−B/2d²)/exp(−B/18)); an image records it
    times L · P · partiality (``ReflectionTable.intensity_photons``).
    """

    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741 - Miller index name
    d_A: np.ndarray
    intensity_full_photons: np.ndarray

    def __len__(self) -> int:
        return int(self.h.shape[0])
