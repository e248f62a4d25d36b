"""Integrated reflections: one row per reflection predicted and integrated on an image.

:class:`IntegratedReflections` is what :func:`jfsim.analysis.integration.integrate_image`
returns for one image, what scaling and merging (:mod:`jfsim.analysis.merging`) take for a
whole run, and what ``_process.h5`` stores per image as NXreflections (seed 001 §4.2).
Columns are numpy arrays of equal length (structure of arrays); names carry their units.

Pixel positions are in **index** coordinates (first pixel's centre at 0, as CXI peak lists
and the wire use), the convention of ``/entry/MX/peakXPosRaw``. Angles are degrees.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["IntegratedReflections"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class IntegratedReflections:
    """Summation-integrated reflections (see the module docstring for conventions).

    Attributes:
        image: the image's row in the analysed run (0-based position, one per row).
        lattice: which lattice of the image the reflection belongs to (0 first).
        h, k, l: Miller indices in the setting of the image's lattice.
        d_A: resolution.
        intensity_photons: Σ signal − n·⟨background⟩ (seed 001 ``int_sum``).
        sigma_photons: its standard deviation (``int_err``).
        background_photons: mean background per pixel (``background_mean``).
        predicted_x_pxl, predicted_y_pxl: predicted centre (index coordinates).
        observed_x_pxl, observed_y_pxl: background-subtracted centroid of the signal pixels
            (NaN when the background-subtracted signal is not positive).
        phi_deg: crossing angle of the reflection on the scan axis (NaN for stills).
        delta_phi_deg: crossing angle minus the middle of the image's exposure (XDS Δφ;
            NaN for stills).
        zeta: Kabsch's ζ (NaN for stills).
        lp: Lorentz × polarisation factor the full intensity carries on the detector
            (the simulator's L·P; stills have L = 1).
        partiality: predicted fraction of the full reflection recorded on this image.
        signal_pixels, background_pixels: pixels summed in the disc and the annulus.
    """

    image: npt.NDArray[np.int64]
    lattice: IntArray
    h: IntArray
    k: IntArray
    l: IntArray  # noqa: E741 - Miller index name
    d_A: FloatArray
    intensity_photons: FloatArray
    sigma_photons: FloatArray
    background_photons: FloatArray
    predicted_x_pxl: FloatArray
    predicted_y_pxl: FloatArray
    observed_x_pxl: FloatArray
    observed_y_pxl: FloatArray
    phi_deg: FloatArray
    delta_phi_deg: FloatArray
    zeta: FloatArray
    lp: FloatArray
    partiality: FloatArray
    signal_pixels: IntArray
    background_pixels: IntArray

    def __len__(self) -> int:
        return int(self.h.shape[0])

    @property
    def hkl(self) -> IntArray:
        """Miller indices as an int32 ``(n, 3)`` array."""
        return np.stack([self.h, self.k, self.l], axis=1).astype(np.int32, copy=False)

    def select(self, rows: Any) -> IntegratedReflections:
        """The rows picked by a boolean mask or an index array."""
        return IntegratedReflections(
            **{field.name: getattr(self, field.name)[rows] for field in fields(self)}
        )

    def at_image(self, image: int) -> IntegratedReflections:
        """The same rows, attributed to run row ``image``."""
        return replace(self, image=np.full(len(self), image, dtype=np.int64))

    def by_image(self) -> list[IntegratedReflections]:
        """The rows of each image (``image`` column) as a table of its own, in image order;
        a table of one image is returned as it is, without copying its columns."""
        if len(self) == 0:
            return []
        if np.all(self.image == self.image[0]):
            return [self]
        order = np.argsort(self.image, kind="stable")
        _images, starts = np.unique(self.image[order], return_index=True)
        return [self.select(rows) for rows in np.split(order, starts[1:])]

    @classmethod
    def concatenate(cls, tables: list[IntegratedReflections]) -> IntegratedReflections:
        """One table of every row of ``tables``, in order (one table: itself, not a copy)."""
        if not tables:
            return cls.empty()
        if len(tables) == 1:
            return tables[0]
        return cls(
            **{
                field.name: np.concatenate([getattr(table, field.name) for table in tables])
                for field in fields(cls)
            }
        )

    @classmethod
    def empty(cls) -> IntegratedReflections:
        """A table without rows (an image on which nothing was predicted)."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            if field.name == "image":
                values[field.name] = np.zeros(0, dtype=np.int64)
            elif field.name in _INTEGER_COLUMNS:
                values[field.name] = np.zeros(0, dtype=np.int32)
            else:
                values[field.name] = np.zeros(0, dtype=np.float64)
        return cls(**values)


_INTEGER_COLUMNS = frozenset({"lattice", "h", "k", "l", "signal_pixels", "background_pixels"})
