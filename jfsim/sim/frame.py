"""What an engine needs to render frames: the fixed plan and one frame's spot list."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jfsim.detectors import MASK_USER
from jfsim.sim.noise import PIXEL_ERROR, PIXEL_SENSITIVE, PIXEL_ZERO

#: Mask bits that turn a pixel into the error sentinel: all low 16 NeXus bits but the user
#: mask (bit 8, e.g. the beamstop), whose pixels read 0 counts (physics.md §2.8).
ERROR_MASK_BITS = 0xFFFF & ~MASK_USER


def pixel_classes(pixel_mask: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W]`` pixel classes (sensitive / error / zero) from a NeXus pixel mask."""
    mask = np.asarray(pixel_mask, dtype=np.uint32)
    classes = np.full(mask.shape, PIXEL_SENSITIVE, dtype=np.uint8)
    classes[(mask & np.uint32(MASK_USER)) != 0] = PIXEL_ZERO
    classes[(mask & np.uint32(ERROR_MASK_BITS)) != 0] = PIXEL_ERROR
    return classes


@dataclass(frozen=True, slots=True)
class FramePlan:
    """Everything fixed across the frames of one run.

    ``background_photons``: float32 ``[H, W]`` expected diffuse photons per pixel;
    ``pixel_class``: uint8 ``[H, W]`` from :func:`pixel_classes`; sentinels and the pixel type
    of the detector; ``seed`` keys the counter-based noise; ``poisson_noise`` False rounds the
    expectation instead of sampling.
    """

    background_photons: np.ndarray
    pixel_class: np.ndarray
    image_dtype: np.dtype
    saturation_value: int
    error_value: int
    seed: int
    poisson_noise: bool = True

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.background_photons.shape[0]), int(self.background_photons.shape[1]))


@dataclass(frozen=True, slots=True)
class SpotList:
    """Spots of one frame: continuous centre (pixel centre at i + 0.5), isotropic Gaussian
    width, and expected photons recorded on this frame (float64 arrays of equal length)."""

    x_pxl: np.ndarray
    y_pxl: np.ndarray
    sigma_pxl: np.ndarray
    photons: np.ndarray

    @classmethod
    def empty(cls) -> SpotList:
        zero = np.zeros(0)
        return cls(zero, zero, zero, zero)

    def __len__(self) -> int:
        return int(self.x_pxl.shape[0])

    def window_half_width_pxl(self) -> np.ndarray:
        """Half-size of each spot's render window: ceil(4σ) + 1 pixels."""
        return np.ceil(4.0 * self.sigma_pxl).astype(np.int64) + 1
