"""An NXmx run opened for analysis: geometry, mask, sentinels and where each image lives.

Geometry comes from the file's transformation chains through DIALS' ``nxmx`` package (any
chain order, any NXmx producer), never from jfsim's own conventions. The images may sit in
the master (integrated layout), behind a virtual dataset (VDS layout, or a ``_process.h5``)
or behind external links ``data_NNNNNN`` (legacy layout): :class:`ImageBlock` records, for
each contiguous block of images, the real dataset that holds it, so frames are read from
the data files directly and a ``_process.h5`` can point its own VDS at them.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401 - registers the bitshuffle/LZ4 filter for the h5py fallback
import numpy as np
import numpy.typing as npt

from jfsim.analysis.errors import AnalysisInputError
from jfsim.analysis.geometry import DetectorModule, RunGeometry
from jfsim.geometry import Panel

__all__ = ["ImageBlock", "NxmxRun", "open_run"]

_log = logging.getLogger(__name__)

#: Pixel-mask bits that do not exclude a pixel: NeXus bit 30/31 mark virtual (interpolated)
#: pixels, e.g. JUNGFRAU chip-border pixels split from a double-size sensor pixel.
VIRTUAL_PIXEL_BITS = np.uint32((1 << 30) | (1 << 31))
_LEGACY_LINK = re.compile(r"^data_(\d{6})$")


@dataclass(frozen=True, slots=True)
class ImageBlock:
    """Images ``first_image … first_image + n_images − 1`` of the run are frames
    ``source_offset …`` of ``dataset_path`` in ``file_path``."""

    file_path: Path
    dataset_path: str
    first_image: int
    n_images: int
    source_offset: int = 0


@dataclass(frozen=True)
class NxmxRun:
    """What the analysis needs from a run's master file (read once, then closed).

    Attributes:
        master_path: the master (or integrated, or ``_process.h5``) file.
        geometry: detector, beam and goniometer.
        n_images: frames in ``/entry/data``.
        image_dtype: stored pixel type.
        valid_pixels: bool ``[height, width]``; False for masked pixels (any pixel-mask bit
            other than the virtual-pixel bits 30/31).
        error_value: the "no data" sentinel (NXmx ``error_value``/``underload`` or the
            type's extreme); pixels holding it are never signal.
        saturation_value: the largest valid count; pixels at or above it are never signal.
        blocks: where the images are stored, in image order.
        image_numbers: the original number of each image (``detectorSpecific/number`` when
            the file has it, else 0 … n − 1).
        entry_path: the NXmx entry (``/entry``).
        notes: what the analysis should say about the input (missing optional fields).
    """

    master_path: Path
    geometry: RunGeometry
    n_images: int
    image_dtype: np.dtype
    valid_pixels: npt.NDArray[np.bool_]
    error_value: int
    saturation_value: int
    blocks: tuple[ImageBlock, ...]
    image_numbers: npt.NDArray[np.int64] = field(repr=False)
    entry_path: str = "/entry"
    notes: tuple[str, ...] = ()

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.geometry.image_shape

    def block_of(self, image: int) -> tuple[ImageBlock, int]:
        """The block holding ``image`` and the frame's index in the block's dataset."""
        for block in self.blocks:
            if block.first_image <= image < block.first_image + block.n_images:
                return block, block.source_offset + image - block.first_image
        raise AnalysisInputError(
            f"{self.master_path.name}: image {image} is not mapped to any data file"
        )


def open_run(path: Path) -> NxmxRun:
    """Read a run's master file; one-line :class:`AnalysisInputError` when it is unusable."""
    if not path.is_file():
        raise AnalysisInputError(f"{path}: no such file")
    try:
        h5 = h5py.File(path, "r")
    except OSError as error:
        raise AnalysisInputError(f"{path}: not an HDF5 file ({_first_line(error)})") from error
    try:
        return _read_run(path, h5)
    except AnalysisInputError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, OSError) as error:
        raise AnalysisInputError(
            f"{path}: not a usable NXmx file ({type(error).__name__}: {_first_line(error)})"
        ) from error
    finally:
        h5.close()


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def _read_run(path: Path, h5: h5py.File) -> NxmxRun:
    import nxmx  # deferred: pulls in pint and scipy

    entries = nxmx.NXmx(h5).entries  # type: ignore[no-untyped-call]  # unannotated __init__
    entry = next((e for e in entries if _definition(e) == "NXmx"), None)
    if entry is None:
        raise AnalysisInputError(
            f"{path}: not an NXmx file (no NXentry with definition 'NXmx'); "
            "give the run's master file"
        )
    if not entry.instruments or not entry.instruments[0].detectors:
        raise AnalysisInputError(f"{path}: the NXmx entry has no NXinstrument/NXdetector")
    instrument = entry.instruments[0]
    detector = instrument.detectors[0]
    notes: list[str] = []
    blocks, n_images, frame_shape, dtype = _image_blocks(path, h5, str(entry.path))
    detector_group = h5[str(detector.path)]
    modules = tuple(_module(module, path) for module in detector.modules)
    if not modules:
        raise AnalysisInputError(f"{path}: the detector has no NXdetector_module")
    wavelength_A = _wavelength_A(instrument, path)
    polarization = _polarization_factor(h5, instrument)
    if polarization is None:
        notes.append("no incident_polarization_stokes: no polarization correction")
    axis, angles = _rotation(entry)
    geometry = RunGeometry(
        modules=modules,
        image_shape=frame_shape,
        wavelength_A=wavelength_A,
        polarization_factor=polarization,
        rotation_axis=axis,
        rotation_angles_rad=angles,
    )
    mask = _pixel_mask(detector_group, frame_shape, path, notes)
    error_value, saturation_value = _sentinels(detector_group, dtype)
    return NxmxRun(
        master_path=path,
        geometry=geometry,
        n_images=n_images,
        image_dtype=dtype,
        valid_pixels=mask,
        error_value=error_value,
        saturation_value=saturation_value,
        blocks=tuple(blocks),
        image_numbers=_image_numbers(detector_group, n_images),
        entry_path=str(entry.path),
        notes=tuple(notes),
    )


def _definition(entry: Any) -> str | None:
    try:
        return str(entry.definition)
    except (KeyError, ValueError, TypeError):
        return None


def _module(module: Any, path: Path) -> DetectorModule:
    """A module's panel from its fast/slow axes and their dependency chains."""
    import nxmx

    fast_axis = module.fast_pixel_direction
    slow_axis = module.slow_pixel_direction
    frame = nxmx.get_cumulative_transformation(nxmx.get_dependency_chain(fast_axis.depends_on))[0]
    slow_frame = nxmx.get_cumulative_transformation(
        nxmx.get_dependency_chain(slow_axis.depends_on)
    )[0]
    origin_mm = frame @ np.array([0.0, 0.0, 0.0, 1.0])
    fast = frame[:3, :3] @ np.asarray(fast_axis.vector, dtype=np.float64)
    slow = slow_frame[:3, :3] @ np.asarray(slow_axis.vector, dtype=np.float64)
    fast_mm = float(np.atleast_1d(fast_axis[()].to("mm").magnitude)[0])
    slow_mm = float(np.atleast_1d(slow_axis[()].to("mm").magnitude)[0])
    if not (fast_mm > 0 and math.isclose(fast_mm, slow_mm, rel_tol=1e-6)):
        raise AnalysisInputError(
            f"{path}: module pixel sizes {fast_mm} x {slow_mm} mm: only square pixels are supported"
        )
    size = np.asarray(module.data_size, dtype=np.int64).reshape(-1)
    origin = np.asarray(module.data_origin, dtype=np.int64).reshape(-1)
    if size.size != 2 or origin.size != 2:
        raise AnalysisInputError(f"{path}: module data_size/data_origin must have 2 values")
    panel = Panel(
        origin_mm=(float(origin_mm[0]), float(origin_mm[1]), float(origin_mm[2])),
        fast=_unit(fast),
        slow=_unit(slow),
        pixel_size_mm=fast_mm,
        width_pxl=int(size[1]),
        height_pxl=int(size[0]),
    )
    return DetectorModule(panel, origin_row=int(origin[0]), origin_col=int(origin[1]))


def _unit(vector: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    unit = vector / np.linalg.norm(vector)
    return (float(unit[0]), float(unit[1]), float(unit[2]))


def _wavelength_A(instrument: Any, path: Path) -> float:
    if not instrument.beams:
        raise AnalysisInputError(f"{path}: no NXbeam: the wavelength is unknown")
    values = np.atleast_1d(instrument.beams[0].incident_wavelength.to("angstrom").magnitude)
    wavelength = float(values.reshape(-1)[0])
    if not (math.isfinite(wavelength) and wavelength > 0):
        raise AnalysisInputError(f"{path}: incident_wavelength {wavelength} Å is not positive")
    return wavelength


def _polarization_factor(h5: h5py.File, instrument: Any) -> float | None:
    """pyFAI's factor from NXbeam ``incident_polarization_stokes`` (S1/S0, first image)."""
    if not instrument.beams:
        return None
    beam = h5[str(instrument.beams[0].path)]
    if "incident_polarization_stokes" not in beam:
        return None
    stokes = np.asarray(beam["incident_polarization_stokes"][()], dtype=np.float64).reshape(-1, 4)
    if stokes.size == 0 or not stokes[0, 0] > 0:
        return None
    return float(stokes[0, 1] / stokes[0, 0])


def _rotation(entry: Any) -> tuple[tuple[float, float, float] | None, tuple[float, ...] | None]:
    """The scanned rotation axis of the sample and its angles, if the run is a rotation."""
    import nxmx

    for sample in entry.samples:
        if sample.depends_on is None:
            continue
        chain = nxmx.get_dependency_chain(sample.depends_on)
        for axis in chain:
            if axis.transformation_type != "rotation":
                continue
            angles = np.atleast_1d(axis[()].to("rad").magnitude)
            if angles.size > 1 and not np.all(angles == angles[0]):
                return _unit(np.asarray(axis.vector, dtype=np.float64)), tuple(
                    float(a) for a in angles
                )
    return None, None


def _pixel_mask(
    detector: h5py.Group, shape: tuple[int, int], path: Path, notes: list[str]
) -> npt.NDArray[np.bool_]:
    dataset = detector.get("pixel_mask")
    if dataset is None:
        notes.append("no pixel_mask: every pixel is assumed sensitive")
        return np.ones(shape, dtype=bool)
    mask = np.asarray(dataset[()])
    if mask.shape != shape:
        raise AnalysisInputError(
            f"{path}: pixel_mask is {mask.shape}, the images are {shape}: cannot apply it"
        )
    return np.asarray((mask.astype(np.uint32) & ~VIRTUAL_PIXEL_BITS) == 0)


def _sentinels(detector: h5py.Group, dtype: np.dtype) -> tuple[int, int]:
    """(error value, saturation value): the file's, else the pixel type's extremes."""
    info = np.iinfo(dtype)
    error = info.min if info.min < 0 else info.max
    saturation = info.max if info.min < 0 else info.max - 1
    for name in ("error_value", "underload_value"):
        if name in detector and np.asarray(detector[name][()]).size == 1:
            error = int(np.asarray(detector[name][()]).reshape(-1)[0])
            break
    if "saturation_value" in detector and np.asarray(detector["saturation_value"][()]).size == 1:
        saturation = int(np.asarray(detector["saturation_value"][()]).reshape(-1)[0])
    return error, saturation


def _image_numbers(detector: h5py.Group, n_images: int) -> npt.NDArray[np.int64]:
    numbers = detector.get("detectorSpecific/number")
    if isinstance(numbers, h5py.Dataset) and numbers.shape == (n_images,):
        return np.asarray(numbers[()], dtype=np.int64)
    return np.arange(n_images, dtype=np.int64)


# -- where the images are ---------------------------------------------------------------------
def _image_blocks(
    path: Path, h5: h5py.File, entry_path: str
) -> tuple[list[ImageBlock], int, tuple[int, int], np.dtype]:
    data = h5.get(f"{entry_path}/data")
    if not isinstance(data, h5py.Group):
        raise AnalysisInputError(f"{path}: no {entry_path}/data group: no images to analyse")
    if "data" in data and isinstance(data.get("data"), h5py.Dataset):
        dataset = data["data"]
        _check_stack(path, dataset)
        n_images, height, width = (int(n) for n in dataset.shape)
        if dataset.is_virtual:
            blocks = _vds_blocks(path, dataset)
        else:
            blocks = [ImageBlock(path, dataset.name, 0, n_images)]
        return blocks, n_images, (height, width), dataset.dtype
    links = sorted(name for name in data if _LEGACY_LINK.match(name))
    if not links:
        raise AnalysisInputError(f"{path}: {entry_path}/data has neither 'data' nor data_NNNNNN")
    linked: list[ImageBlock] = []
    first = 0
    shape: tuple[int, int] | None = None
    dtype: np.dtype | None = None
    for name in links:
        link = data.get(name, getlink=True)
        if not isinstance(link, h5py.ExternalLink):
            raise AnalysisInputError(f"{path}: {entry_path}/data/{name} is not an external link")
        target = _resolve(path, link.filename)
        if not target.is_file():
            raise AnalysisInputError(
                f"{path}: data file {link.filename} ({entry_path}/data/{name}) is missing"
            )
        with h5py.File(target, "r") as handle:
            dataset = handle.get(link.path)
            if not isinstance(dataset, h5py.Dataset):
                raise AnalysisInputError(f"{target}: no dataset {link.path}")
            _check_stack(target, dataset)
            count, height, width = (int(n) for n in dataset.shape)
            if shape is not None and (height, width) != shape:
                raise AnalysisInputError(
                    f"{target}: frames are {height}x{width}, earlier files {shape[0]}x{shape[1]}"
                )
            shape, dtype = (height, width), dataset.dtype
        linked.append(ImageBlock(target, link.path, first, count))
        first += count
    assert shape is not None and dtype is not None
    return linked, first, shape, dtype


def _check_stack(path: Path, dataset: h5py.Dataset) -> None:
    if dataset.ndim != 3 or dataset.dtype.kind not in "iu":
        raise AnalysisInputError(
            f"{path}:{dataset.name}: expected an integer image stack [n, y, x], got "
            f"{dataset.dtype} {dataset.shape}"
        )


def _resolve(master: Path, file_name: str) -> Path:
    """Where libhdf5 finds a link or VDS source: the master itself for '.', else relative
    names against the master's folder."""
    if file_name == ".":
        return master
    candidate = Path(file_name)
    return candidate if candidate.is_absolute() else master.parent / candidate


def _vds_blocks(path: Path, dataset: h5py.Dataset) -> list[ImageBlock]:
    blocks = []
    for source in dataset.virtual_sources():
        first, count = _frame_range(source.vspace)
        if source.src_space.get_select_type() == h5py.h5s.SEL_ALL:
            offset, source_count = 0, count  # the whole source dataset: as many frames
        else:
            offset, source_count = _frame_range(source.src_space)
        if count != source_count:
            raise AnalysisInputError(
                f"{path}: VDS mapping of {source.file_name} has {count} frames in the "
                f"virtual dataset and {source_count} in the source: unsupported"
            )
        target = _resolve(path, source.file_name)
        if not target.is_file():
            raise AnalysisInputError(
                f"{path}: data file {source.file_name} (images {first}..{first + count - 1}) "
                "is missing"
            )
        if os.path.samefile(target, path) and source.dset_name == dataset.name:
            raise AnalysisInputError(f"{path}: {dataset.name} maps onto itself")
        blocks.append(ImageBlock(target, source.dset_name, first, count, offset))
    blocks.sort(key=lambda block: block.first_image)
    return blocks


def _frame_range(space: h5py.h5s.SpaceID) -> tuple[int, int]:
    """(first frame, frame count) of a selection that covers whole frames contiguously."""
    if space.get_select_type() == h5py.h5s.SEL_ALL:
        return 0, int(space.shape[0])
    start, stride, count, block = space.get_regular_hyperslab()
    if count[0] > 1 and stride[0] != block[0]:
        raise AnalysisInputError("a VDS mapping selects frames with gaps: unsupported")
    return int(start[0]), int(count[0] * block[0])
