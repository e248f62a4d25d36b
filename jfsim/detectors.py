"""Detector presets: JUNGFRAU and EIGER2 systems on Jungfraujoch's module grid.

Geometry is derived from parameters, never typed in as tables (physics.md §1.3-1.4): a
detector is ``n_modules`` modules of ``module_fast_pxl × module_slow_pxl`` placed on a grid of
``modules_per_row`` columns with ``gap_fast_pxl`` / ``gap_slow_pxl`` pixels between them.

Pixel mask bits follow NXdetector/pixel_mask: bit 0 = gap (no sensor), bit 31 = virtual
pixel (a JUNGFRAU chip-border pixel split from a double-size sensor pixel; valid, but its
value is shared with its neighbour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from jfsim.errors import ConfigError

MASK_GAP = 1 << 0
MASK_DEAD = 1 << 1
MASK_USER = 1 << 8
MASK_VIRTUAL = 1 << 31

#: JUNGFRAU module after Jungfraujoch's conversion (big pixels split): 1030 × 514.
JUNGFRAU_MODULE_FAST_PXL = 1030
JUNGFRAU_MODULE_SLOW_PXL = 514
#: Columns / rows of a converted JUNGFRAU module that come from split big pixels
#: (physics.md §1.2: raw 256c+255 and 256c+256 become 258c+255 … 258c+258).
JUNGFRAU_VIRTUAL_COLUMNS = tuple(258 * c + k for c in range(3) for k in (255, 256, 257, 258))
JUNGFRAU_VIRTUAL_ROWS = (255, 256, 257, 258)


@dataclass(frozen=True, slots=True)
class Module:
    """One sensor module's place in the assembled image (pixel indices, not mm)."""

    index: int
    fast_origin_pxl: int
    slow_origin_pxl: int
    fast_size_pxl: int
    slow_size_pxl: int


@dataclass(frozen=True, slots=True)
class Detector:
    """A pixel detector as Jungfraujoch presents it: one assembled image of modules.

    ``image_dtype`` is the stored pixel type; ``error_value`` marks gaps, masked and
    missing pixels, ``saturation_value`` is the largest valid count.
    """

    name: str
    description: str
    family: str
    width_pxl: int
    height_pxl: int
    pixel_size_mm: float
    modules: tuple[Module, ...]
    sensor_material: str
    sensor_thickness_mm: float
    image_dtype: np.dtype
    saturation_value: int
    error_value: int
    serial_number: str = "jfsim-0001"

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape as ``(height, width)`` = ``(slow, fast)``."""
        return (self.height_pxl, self.width_pxl)

    @property
    def bit_depth_image(self) -> int:
        return int(self.image_dtype.itemsize * 8)

    def pixel_mask(self) -> np.ndarray:
        """NeXus pixel mask, uint32 ``[height, width]``: gaps and virtual chip-border pixels."""
        mask = np.full(self.shape, MASK_GAP, dtype=np.uint32)
        for module in self.modules:
            rows = slice(module.slow_origin_pxl, module.slow_origin_pxl + module.slow_size_pxl)
            cols = slice(module.fast_origin_pxl, module.fast_origin_pxl + module.fast_size_pxl)
            mask[rows, cols] = 0
            if self.family == "JUNGFRAU":
                block = mask[rows, cols]
                block[:, list(JUNGFRAU_VIRTUAL_COLUMNS)] |= MASK_VIRTUAL
                block[list(JUNGFRAU_VIRTUAL_ROWS), :] |= MASK_VIRTUAL
        return mask

    def with_image_dtype(self, dtype_name: str) -> Detector:
        """The same detector storing another pixel type (sentinels follow the type)."""
        dtype = _checked_pixel_dtype(dtype_name)
        saturation, error = _sentinels(dtype)
        return replace(self, image_dtype=dtype, saturation_value=saturation, error_value=error)


_PIXEL_DTYPES = ("uint8", "uint16", "uint32", "int16", "int32")


def _checked_pixel_dtype(dtype_name: str) -> np.dtype:
    if dtype_name not in _PIXEL_DTYPES:
        raise ConfigError(
            f"[detector] image_dtype: must be one of {', '.join(_PIXEL_DTYPES)}, got {dtype_name!r}"
        )
    return np.dtype(dtype_name).newbyteorder("<")


def _sentinels(dtype: np.dtype) -> tuple[int, int]:
    """(saturation, error) values: signed types use MAX / MIN, unsigned MAX - 1 / MAX."""
    info = np.iinfo(dtype)
    if dtype.kind == "i":
        return int(info.max), int(info.min)
    return int(info.max) - 1, int(info.max)


def grid_detector(
    *,
    name: str,
    description: str,
    family: str,
    n_modules: int,
    modules_per_row: int,
    module_fast_pxl: int,
    module_slow_pxl: int,
    gap_fast_pxl: int,
    gap_slow_pxl: int,
    image_dtype: str,
    sensor_material: str = "Si",
    sensor_thickness_mm: float = 0.32,
    pixel_size_mm: float = 0.075,
) -> Detector:
    """A detector of modules on a regular grid (Jungfraujoch's "standard geometry").

    Module ``m`` sits at column block ``m % modules_per_row`` and row block
    ``m // modules_per_row``; row 0 is the top of the image.
    """
    n_rows = math.ceil(n_modules / modules_per_row)
    width = modules_per_row * module_fast_pxl + (modules_per_row - 1) * gap_fast_pxl
    height = n_rows * module_slow_pxl + (n_rows - 1) * gap_slow_pxl
    modules = tuple(
        Module(
            index=m,
            fast_origin_pxl=(m % modules_per_row) * (module_fast_pxl + gap_fast_pxl),
            slow_origin_pxl=(m // modules_per_row) * (module_slow_pxl + gap_slow_pxl),
            fast_size_pxl=module_fast_pxl,
            slow_size_pxl=module_slow_pxl,
        )
        for m in range(n_modules)
    )
    dtype = _checked_pixel_dtype(image_dtype)
    saturation, error = _sentinels(dtype)
    return Detector(
        name=name,
        description=description,
        family=family,
        width_pxl=width,
        height_pxl=height,
        pixel_size_mm=pixel_size_mm,
        modules=modules,
        sensor_material=sensor_material,
        sensor_thickness_mm=sensor_thickness_mm,
        image_dtype=dtype,
        saturation_value=saturation,
        error_value=error,
    )


def _jungfrau(name: str, n_modules: int, modules_per_row: int) -> Detector:
    return grid_detector(
        name=name,
        description=f"PSI JUNGFRAU {name[2:]}",
        family="JUNGFRAU",
        n_modules=n_modules,
        modules_per_row=modules_per_row,
        module_fast_pxl=JUNGFRAU_MODULE_FAST_PXL,
        module_slow_pxl=JUNGFRAU_MODULE_SLOW_PXL,
        gap_fast_pxl=8,
        gap_slow_pxl=36,
        image_dtype="int16",
        sensor_thickness_mm=0.32,
    )


def _eiger2(name: str, label: str, n_modules: int, modules_per_row: int) -> Detector:
    return grid_detector(
        name=name,
        description=f"DECTRIS EIGER2 X {label}",
        family="EIGER2",
        n_modules=n_modules,
        modules_per_row=modules_per_row,
        module_fast_pxl=1028,
        module_slow_pxl=512,
        gap_fast_pxl=12,
        gap_slow_pxl=38,
        image_dtype="uint32",
        sensor_thickness_mm=0.45,
    )


#: Every built-in detector by name (physics.md §1.3 table and §1.4 EIGER2 row).
DETECTOR_PRESETS: dict[str, Detector] = {
    detector.name: detector
    for detector in (
        _jungfrau("JF1M", 2, 1),
        _jungfrau("JF4M", 8, 2),
        _jungfrau("JF9M", 18, 3),
        _jungfrau("JF10M", 20, 2),
        _jungfrau("JF16M", 32, 4),
        _eiger2("EIGER2_500K", "500K", 1, 1),
        _eiger2("EIGER2_4M", "4M", 8, 2),
        _eiger2("EIGER2_16M", "16M", 32, 4),
    )
}


def detector_preset(name: str) -> Detector:
    """A built-in detector by name, case-insensitive (``jf4m``, ``EIGER2_4M``)."""
    for preset_name, detector in DETECTOR_PRESETS.items():
        if preset_name.lower() == name.lower():
            return detector
    raise ConfigError(
        f"[detector] preset: unknown detector {name!r}; choose one of {', '.join(DETECTOR_PRESETS)}"
    )
