"""CrystFEL geometry files for jfsim's streams and files, so nobody writes one by hand.

One panel per JUNGFRAU/EIGER module. Each panel takes its rectangle of the assembled image
(``min_fs`` … ``max_ss``), so the gaps between modules belong to no panel. Its position comes
from :mod:`jfsim.geometry`, which the renderer uses too. CrystFEL's lab frame is McStas here,
as the README pins with a real indexer: ``corner_x``/``corner_y`` (pixels) and ``coffset``
(m) place the outer corner of the panel's first pixel, and ``fs``/``ss`` are the lab
directions of the module's fast and slow axes. Untilted, ``fs = -x``, ``ss = -y`` and the
first module's corner is at +beam centre. CrystFEL puts the centre of a pixel at
index + 0.5, as jfsim does.

Two targets share everything but where the data come from:

* ``stream``: the MessagePack frames of ``jfsim stream --format crystfel``. The keys come
  from :mod:`jfsim.crystfel.frame`: ``data = detector_data``, ``photon_energy = beam_energy
  eV``, ``clen = detector_distance mm`` and ``peak_list = peak_list``.
* ``hdf5``: the NXmx files of ``jfsim write``. Here ``data = /entry/data/data`` with
  ``dim0 = %``, the wavelength and distance come from the master, ``peak_list = /entry/MX``
  and ``peak_list_type = cxi``. The file's ``pixel_mask`` is the bad-pixel mask.

Error pixels (the detector's error value) are flagged with ``flag_lessthan``. An optional
HDF5 mask file adds the pixel mask to a stream geometry.

Pure: returns text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from jfsim.crystfel.frame import (
    DATA_KEY,
    DISTANCE_MM_KEY,
    PEAK_LIST_KEY,
    PHOTON_ENERGY_EV_KEY,
    bad_pixel_value,
)
from jfsim.detectors import MASK_VIRTUAL, Detector
from jfsim.experiment import Experiment, detector_panel
from jfsim.units import mm_to_m

__all__ = [
    "BAD_MASK_BITS",
    "HDF5_PATHS",
    "MASK_FILE_DATASET",
    "GeometryTarget",
    "PanelLayout",
    "crystfel_geometry",
    "module_panels",
]

#: Pixel-mask bits that make a pixel bad for CrystFEL: every bit but the virtual chip-border
#: pixels (bit 31), which hold valid, if shared, counts.
BAD_MASK_BITS = 0xFFFFFFFF & ~MASK_VIRTUAL
#: Where the pixel mask sits in a mask file written for a stream geometry.
MASK_FILE_DATASET = "/pixel_mask"

#: Paths of jfsim's NXmx files (the writer's layout, seed 001) that the hdf5 target reads.
HDF5_PATHS = {
    "data": "/entry/data/data",
    "wavelength": "/entry/instrument/beam/incident_wavelength",
    "distance": "/entry/instrument/detector/distance",
    "peak_list": "/entry/MX",
    "pixel_mask": "/entry/instrument/detector/pixel_mask",
}


class GeometryTarget(str, enum.Enum):
    """Where CrystFEL reads the images from."""

    STREAM = "stream"
    HDF5 = "hdf5"


@dataclass(frozen=True, slots=True)
class PanelLayout:
    """One module as a CrystFEL panel.

    Attributes:
        name: panel name (``m0``, ``m1``, ... by module index).
        min_fs, max_fs, min_ss, max_ss: inclusive pixel-index rectangle in the image.
        corner_x_pxl, corner_y_pxl: lab x, y of the panel's first pixel's outer corner, in
            pixels.
        coffset_m: lab z of that corner minus the distance (``clen``), in metres.
        fs, ss: lab unit vectors of the fast and slow axes.
    """

    name: str
    min_fs: int
    max_fs: int
    min_ss: int
    max_ss: int
    corner_x_pxl: float
    corner_y_pxl: float
    coffset_m: float
    fs: tuple[float, float, float]
    ss: tuple[float, float, float]


def _floats(vector: tuple[float, float, float]) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in vector)
    return (x, y, z)


def module_panels(experiment: Experiment) -> list[PanelLayout]:
    """One panel per module, placed with the experiment's beam centre, distance and tilts."""
    detector = experiment.detector
    position = experiment.position
    panel = detector_panel(experiment)
    pixel_mm = detector.pixel_size_mm
    panels = []
    for module in detector.modules:
        corner_mm = panel.pixel_to_lab_mm(
            np.float64(module.fast_origin_pxl), np.float64(module.slow_origin_pxl)
        )
        panels.append(
            PanelLayout(
                name=f"m{module.index}",
                min_fs=module.fast_origin_pxl,
                max_fs=module.fast_origin_pxl + module.fast_size_pxl - 1,
                min_ss=module.slow_origin_pxl,
                max_ss=module.slow_origin_pxl + module.slow_size_pxl - 1,
                corner_x_pxl=float(corner_mm[0] / pixel_mm),
                corner_y_pxl=float(corner_mm[1] / pixel_mm),
                coffset_m=float(mm_to_m(corner_mm[2] - position.distance_mm)),
                fs=_floats(panel.fast),
                ss=_floats(panel.slow),
            )
        )
    return panels


def _direction(vector: tuple[float, float, float]) -> str:
    x, y, z = vector
    return f"{x:+.8f}x {y:+.8f}y {z:+.8f}z"


def _source_lines(target: GeometryTarget, mask_file: str | None) -> list[str]:
    if target is GeometryTarget.STREAM:
        lines = [
            "; MessagePack keys of 'jfsim stream --format crystfel'",
            f"data = {DATA_KEY}",
            f"photon_energy = {PHOTON_ENERGY_EV_KEY} eV",
            f"clen = {DISTANCE_MM_KEY} mm",
            f"peak_list = {PEAK_LIST_KEY}",
        ]
        if mask_file is not None:
            lines += [
                f"mask0_file = {mask_file}",
                f"mask0_data = {MASK_FILE_DATASET}",
                "mask0_goodbits = 0x0",
                f"mask0_badbits = {BAD_MASK_BITS:#x}",
            ]
        return lines
    return [
        "; NXmx files of 'jfsim write'",
        f"data = {HDF5_PATHS['data']}",
        "dim0 = %",
        "dim1 = ss",
        "dim2 = fs",
        f"wavelength = {HDF5_PATHS['wavelength']} A",
        f"clen = {HDF5_PATHS['distance']} m",
        f"peak_list = {HDF5_PATHS['peak_list']}",
        "peak_list_type = cxi",
        f"mask0_data = {HDF5_PATHS['pixel_mask']}",
        "mask0_goodbits = 0x0",
        f"mask0_badbits = {BAD_MASK_BITS:#x}",
    ]


def crystfel_geometry(
    experiment: Experiment,
    target: GeometryTarget | str = GeometryTarget.STREAM,
    *,
    mask_file: str | None = None,
) -> str:
    """The text of a CrystFEL geometry file for ``experiment``'s detector and position.

    Args:
        experiment: gives the detector (modules, pixel size, error value) and the position
            (beam centre, tilts; the distance only as the reference of ``coffset``).
        target: ``stream`` (MessagePack frames) or ``hdf5`` (jfsim's NXmx files).
        mask_file: stream target only: an HDF5 file holding the pixel mask at
            :data:`MASK_FILE_DATASET` (see ``jfsim geometry --mask-file``).
    """
    target = GeometryTarget(target)
    if mask_file is not None and target is not GeometryTarget.STREAM:
        raise ValueError("mask_file is for the stream target; hdf5 reads the file's own mask")
    detector = experiment.detector
    pixel_size_m = mm_to_m(detector.pixel_size_mm)
    lines = [
        f"; CrystFEL geometry for jfsim: {detector.description} ({detector.name}), "
        f"experiment {experiment.name}, target {target.value}",
        "; lab frame = McStas (z along the beam, y up); pixel centres at index + 0.5",
        f"; beam centre ({experiment.position.beam_x_pxl}, {experiment.position.beam_y_pxl}) "
        f"px, distance {experiment.position.distance_mm} mm",
        "",
        *_source_lines(target, mask_file),
        "adu_per_photon = 1",
        f"res = {1.0 / pixel_size_m:.6f}",
        "; error and gap pixels (the detector's error value)",
        _flag_line(target, detector),
        "",
    ]
    for panel in module_panels(experiment):
        lines += [
            f"{panel.name}/min_fs = {panel.min_fs}",
            f"{panel.name}/max_fs = {panel.max_fs}",
            f"{panel.name}/min_ss = {panel.min_ss}",
            f"{panel.name}/max_ss = {panel.max_ss}",
            f"{panel.name}/corner_x = {panel.corner_x_pxl:.6f}",
            f"{panel.name}/corner_y = {panel.corner_y_pxl:.6f}",
            f"{panel.name}/coffset = {panel.coffset_m:.9f}",
            f"{panel.name}/fs = {_direction(panel.fs)}",
            f"{panel.name}/ss = {_direction(panel.ss)}",
            "",
        ]
    return "\n".join(lines)


def _flag_line(target: GeometryTarget, detector: Detector) -> str:
    """Frames carry :func:`bad_pixel_value`; files carry the error value itself, which for
    unsigned types is the type's maximum, one above the saturation value."""
    if target is GeometryTarget.STREAM:
        return f"flag_lessthan = {bad_pixel_value(detector.error_value) + 1}"
    if detector.error_value < 0:
        return f"flag_lessthan = {detector.error_value + 1}"
    return f"flag_morethan = {detector.saturation_value}"
