"""CrystFEL's real-time input: MessagePack frames (seed 004) and matching geometry files.

:mod:`jfsim.crystfel.frame` builds the map of one image; :mod:`jfsim.crystfel.geometry`
writes the geometry file that reads it, or jfsim's HDF5 files. The ZeroMQ transport is
:mod:`jfsim.stream.crystfel`.
"""

from __future__ import annotations

from jfsim.crystfel.frame import (
    DATA_KEY,
    DISTANCE_MM_KEY,
    FRAME_KEYS,
    PEAK_LIST_KEY,
    PHOTON_ENERGY_EV_KEY,
    CrystfelDtype,
    frame_map,
    pack_frame,
    peak_list,
    pixels_for_crystfel,
)
from jfsim.crystfel.geometry import GeometryTarget, PanelLayout, crystfel_geometry, module_panels

__all__ = [
    "DATA_KEY",
    "DISTANCE_MM_KEY",
    "FRAME_KEYS",
    "PEAK_LIST_KEY",
    "PHOTON_ENERGY_EV_KEY",
    "CrystfelDtype",
    "GeometryTarget",
    "PanelLayout",
    "crystfel_geometry",
    "frame_map",
    "module_panels",
    "pack_frame",
    "peak_list",
    "pixels_for_crystfel",
]
