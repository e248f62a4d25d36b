"""One image as CrystFEL's ZeroMQ input reads it: a MessagePack map (seed 004).

``indexamajig --zmq-input`` unpacks one MessagePack map per ZeroMQ message. The image is a
map that serialises a NumPy array (``type`` ``<i4`` or ``<f4``, ``shape`` [slow, fast],
``data`` raw little-endian bytes); the photon energy, the detector distance and the peak list
are looked up under keys that the geometry file names. Those keys are the constants below,
shared with :mod:`jfsim.crystfel.geometry` so the two always agree.

CrystFEL finds a key by comparing the map's key with the first characters of the name it
looks for, so no key of the map may be the beginning of another one it looks up
(``detector`` would shadow ``detector_data``); :data:`FRAME_KEYS` keeps to that.

Pure: no sockets, no files.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack
import numpy as np

__all__ = [
    "DATA_KEY",
    "DISTANCE_MM_KEY",
    "FRAME_KEYS",
    "IMAGE_ID_KEY",
    "PEAK_LIST_KEY",
    "PHOTON_ENERGY_EV_KEY",
    "SERIES_UNIQUE_ID_KEY",
    "CrystfelDtype",
    "bad_pixel_value",
    "frame_map",
    "pack_frame",
    "peak_list",
    "pixels_for_crystfel",
]

#: The image, as a serialised NumPy array map (geometry: ``data = detector_data``).
DATA_KEY = "detector_data"
#: Incident photon energy in eV (geometry: ``photon_energy = beam_energy eV``; seed 004).
PHOTON_ENERGY_EV_KEY = "beam_energy"
#: Sample-detector distance in mm (geometry: ``clen = detector_distance mm``; seed 004).
DISTANCE_MM_KEY = "detector_distance"
#: Peaks as ``{fs: [...], ss: [...], intensity: [...]}`` (geometry: ``peak_list = peak_list``).
PEAK_LIST_KEY = "peak_list"
#: Not read by CrystFEL; they let a receiver tell frames apart.
IMAGE_ID_KEY = "image_id"
SERIES_UNIQUE_ID_KEY = "series_unique_id"

FRAME_KEYS = (
    DATA_KEY,
    PHOTON_ENERGY_EV_KEY,
    DISTANCE_MM_KEY,
    PEAK_LIST_KEY,
    IMAGE_ID_KEY,
    SERIES_UNIQUE_ID_KEY,
)

_INT32_MAX = np.iinfo(np.int32).max


class CrystfelDtype(str, enum.Enum):
    """The two pixel types CrystFEL reads from MessagePack (seed 004)."""

    INT32 = "int32"
    FLOAT32 = "float32"

    @property
    def numpy_type(self) -> str:
        """The NumPy type string CrystFEL expects in the array map's ``type``."""
        return "<i4" if self is CrystfelDtype.INT32 else "<f4"


def bad_pixel_value(error_value: int) -> int:
    """What an error/gap pixel reads in an ``int32`` frame: the detector's own error value
    when it is negative (JUNGFRAU: −32768), otherwise −1 (EIGER marks errors with the type's
    maximum, which a signed 32-bit value cannot hold). Valid counts are never below it, so
    the geometry's ``flag_lessthan = bad_pixel_value + 1`` masks exactly these pixels."""
    return int(error_value) if error_value < 0 else -1


def pixels_for_crystfel(
    pixels: np.ndarray, error_value: int | None, dtype: CrystfelDtype = CrystfelDtype.INT32
) -> np.ndarray:
    """The image in CrystFEL's pixel type, ``[slow, fast]``, C order, little-endian.

    Pixels equal to ``error_value`` (None: there is none) become :func:`bad_pixel_value`
    (``int32``) or NaN (``float32``, which CrystFEL masks by itself); counts above the
    ``int32`` range are clipped to its maximum.
    """
    image = np.asarray(pixels)
    if dtype is CrystfelDtype.FLOAT32:
        converted = image.astype("<f4")
        if error_value is not None:
            converted[image == error_value] = np.nan
        return converted
    if image.dtype.kind == "u" and image.dtype.itemsize >= 4:
        converted = np.minimum(image, _INT32_MAX).astype("<i4")
    else:
        converted = image.astype("<i4")
    if error_value is not None:
        converted[image == error_value] = bad_pixel_value(error_value)
    return converted


def peak_list(spots: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Jungfraujoch spots (``x``, ``y`` in index coordinates, ``I``) as CrystFEL's peak map.

    CrystFEL reads the three arrays as doubles and, by default, adds half a pixel to fs/ss:
    index coordinates (first pixel's centre at 0) are what it expects.
    """
    fs: list[float] = []
    ss: list[float] = []
    intensity: list[float] = []
    for spot in spots:
        fs.append(float(spot["x"]))
        ss.append(float(spot["y"]))
        intensity.append(float(spot.get("I", 0.0)))
    return {"fs": fs, "ss": ss, "intensity": intensity}


def frame_map(
    pixels: np.ndarray,
    *,
    image_id: int,
    photon_energy_eV: float,
    distance_mm: float,
    spots: Iterable[Mapping[str, Any]] = (),
    series_unique_id: str = "",
) -> dict[str, Any]:
    """The map of one frame; ``pixels`` already in CrystFEL's type (``pixels_for_crystfel``)."""
    image = np.ascontiguousarray(pixels)
    if image.ndim != 2:
        raise ValueError(f"a CrystFEL frame is one 2-D array, got shape {image.shape}")
    if image.dtype.str not in ("<i4", "<f4"):
        raise ValueError(f"CrystFEL reads <i4 or <f4 pixels, got {image.dtype.str}")
    return {
        DATA_KEY: {
            "type": image.dtype.str,
            "shape": [int(image.shape[0]), int(image.shape[1])],
            "data": image.data,
        },
        PHOTON_ENERGY_EV_KEY: float(photon_energy_eV),
        DISTANCE_MM_KEY: float(distance_mm),
        PEAK_LIST_KEY: peak_list(spots),
        IMAGE_ID_KEY: int(image_id),
        SERIES_UNIQUE_ID_KEY: str(series_unique_id),
    }


def pack_frame(frame: Mapping[str, Any]) -> bytes:
    """MessagePack bytes of a frame map (``bin`` for the pixels, float64 for numbers)."""
    return msgpack.packb(frame, use_bin_type=True, use_single_float=False)
