"""The ground-truth file ``<prefix>_truth.h5``: what the simulator put on every image.

Plain HDF5, readable with h5py alone (format "jfsim-truth", version 1):

    /                 attrs format, format_version, seed, jfsim_version, pixel_convention
    /experiment       attrs json (experiment_to_dict as JSON text)
      wavelength_A, distance_mm, beam_x_pxl, beam_y_pxl, pixel_size_mm   float64 scalars
      image_size_pxl [2] int64 (width, height); unit_cell [6] float64 (Å, deg)
      space_group_number int64; scan_type str ("rotation" | "stills" | "grid")
      rotation_axis [3] float64, rotation_start_deg, rotation_step_deg (NaN unless rotation)
    /images
      image_id int64 [n_images]; n_lattices int32 [n_images] (0 = no crystal hit)
      ub_matrix float64 [n_images, max_lattices, 3, 3]  (Å⁻¹, r_lab = UB·h at scan angle 0;
                                                         NaN for absent lattices)
      pixel_sha256 uint8 [n_images, 32]  SHA-256 of the image's pixels (``pixel_sha256``);
                                         attrs dtype (e.g. "<i2"), definition; all zeros =
                                         not recorded (files written before it: absent)
    /reflections      one row per predicted reflection, all columns the same length:
      image_id int64, lattice int32, h, k, l int32, x_pxl, y_pxl float64 (continuous),
      phi_deg (NaN for stills), excitation_error_invA (NaN for rotation), partiality,
      intensity_photons (expected photons recorded on that image), d_A float64, masked bool,
      sigma_pxl (rendered spot width), background_photons (expected background per pixel at
      the spot centre) float64 — both absent from files of jfsim ≤ 0.1 (read as NaN)
    /unique_reflections  one row per unique reflection (space group's reciprocal ASU,
                      gemmi's convention) to the resolution the simulator predicts:
      h, k, l int32, d_A float64, intensity_full_photons float64 (the whole reflection's
      expected photons with Lorentz, polarisation and partiality factors 1: what merged
      intensities estimate up to one scale; an image records it times L·P·partiality);
      attribute definition. Absent from files written before it (read as None).

Every dataset carries a ``units`` attribute. The file is written as ``<name>.tmp`` and
renamed when complete, so a file under the final name is always whole.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jfsim import __version__
from jfsim.atomic import CommittedHdf5File
from jfsim.errors import JfsimError
from jfsim.experiment import Experiment, RotationScan, experiment_to_dict
from jfsim.image_truth import ImageTruth, ReflectionTable, UniqueReflections
from jfsim.units import rad_to_deg

__all__ = [
    "PIXEL_CONVENTION",
    "TRUTH_FORMAT",
    "TRUTH_FORMAT_VERSION",
    "UNIQUE_REFLECTIONS_DEFINITION",
    "TruthError",
    "TruthFile",
    "TruthWriter",
    "pixel_sha256",
    "read_truth",
    "truth_path",
]

TRUTH_FORMAT = "jfsim-truth"
TRUTH_FORMAT_VERSION = 1
PIXEL_CONVENTION = (
    "continuous pixel coordinates: pixel index i covers [i, i+1) and its centre is at i + 0.5; "
    "x runs along the fast axis (columns), y along the slow axis (rows); "
    "wire spot lists and CXI peak lists use x - 0.5, y - 0.5"
)
#: (name, dtype, units) of the /reflections columns, in file order.
REFLECTION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("image_id", "int64", "1"),
    ("lattice", "int32", "1"),
    ("h", "int32", "1"),
    ("k", "int32", "1"),
    ("l", "int32", "1"),
    ("x_pxl", "float64", "pixel"),
    ("y_pxl", "float64", "pixel"),
    ("phi_deg", "float64", "deg"),
    ("excitation_error_invA", "float64", "1/angstrom"),
    ("partiality", "float64", "1"),
    ("intensity_photons", "float64", "photons"),
    ("d_A", "float64", "angstrom"),
    ("masked", "bool", "1"),
    ("sigma_pxl", "float64", "pixel"),
    ("background_photons", "float64", "photons"),
)
#: Columns a reader accepts as missing (added later to format version 1), read as NaN.
OPTIONAL_COLUMNS = ("sigma_pxl", "background_photons")
_ROW_CHUNK = 16384
_IMAGE_CHUNK = 64
SHA256_BYTES = 32
#: The checksum as the truth file states it (``/images/pixel_sha256`` attribute).
PIXEL_SHA256_DEFINITION = (
    "SHA-256 of the image's pixel values after decompression: the [height, width] array in "
    "C order (fast axis varying fastest), each value stored in the little-endian integer "
    "type named by the dtype attribute; all zeros = not recorded"
)


#: (name, dtype, units) of the /unique_reflections columns.
UNIQUE_REFLECTION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("h", "int32", "1"),
    ("k", "int32", "1"),
    ("l", "int32", "1"),
    ("d_A", "float64", "angstrom"),
    ("intensity_full_photons", "float64", "photons"),
)
#: What ``/unique_reflections`` holds, as the file states it (attribute ``definition``).
UNIQUE_REFLECTIONS_DEFINITION = (
    "one row per unique reflection of the space group's reciprocal asymmetric unit (gemmi) "
    "to the resolution the simulator predicts; intensity_full_photons = expected photons of "
    "the whole reflection with Lorentz, polarisation and partiality factors 1 (what merged "
    "intensities estimate, up to one overall scale); an image records it times "
    "L * P * partiality (/reflections/intensity_photons); Friedel mates are equal"
)


class TruthError(JfsimError):
    """A truth file cannot be written or read."""


def truth_path(prefix: str | Path) -> Path:
    """``<prefix>_truth.h5``."""
    return Path(f"{prefix}_truth.h5")


def pixel_sha256(pixels: np.ndarray, dtype: np.dtype | str) -> bytes:
    """The truth file's content checksum of one image (``PIXEL_SHA256_DEFINITION``).

    Args:
        pixels: the image, [height, width], any integer type holding the values.
        dtype: the integer type the values are hashed in (byte order is forced little-endian).
    """
    little = np.dtype(dtype).newbyteorder("<")
    values = np.ascontiguousarray(pixels, dtype=little)
    if values.shape != pixels.shape or not np.array_equal(values, pixels):
        raise ValueError(f"pixel values do not fit {little.str}")
    return hashlib.sha256(values.tobytes()).digest()


def _scalar(group: h5py.Group, name: str, value: Any, units: str) -> None:
    group.create_dataset(name, data=value)
    group[name].attrs["units"] = units


class TruthWriter(CommittedHdf5File):
    """Streams per-image truth into a new truth file; ``close()`` renames it into place.

    Use as a context manager; on an exception the partial ``.tmp`` file is removed.
    """

    def __init__(self, path: str | Path, experiment: Experiment, *, max_lattices: int) -> None:
        self.path = Path(path)
        #: The dtype image checksums are computed in: the detector's, little-endian.
        self.pixel_dtype = np.dtype(experiment.detector.image_dtype).newbyteorder("<")
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._max_lattices = max(1, max_lattices)
        try:
            self._file = h5py.File(self._tmp, "w")
        except OSError as error:
            raise TruthError(f"{self.path}: cannot create the truth file ({error})") from error
        self._n_images = 0
        self._n_rows = 0
        self._write_header(experiment)

    def _write_header(self, experiment: Experiment) -> None:
        root = self._file
        root.attrs["format"] = TRUTH_FORMAT
        root.attrs["format_version"] = TRUTH_FORMAT_VERSION
        root.attrs["seed"] = experiment.seed
        root.attrs["jfsim_version"] = __version__
        root.attrs["pixel_convention"] = PIXEL_CONVENTION
        group = root.create_group("experiment")
        group.attrs["json"] = json.dumps(experiment_to_dict(experiment))
        detector = experiment.detector
        position = experiment.position
        cell = experiment.crystal.unit_cell
        scan = experiment.scan
        _scalar(group, "wavelength_A", float(experiment.beam.wavelength_A), "angstrom")
        _scalar(group, "distance_mm", float(position.distance_mm), "mm")
        _scalar(group, "beam_x_pxl", float(position.beam_x_pxl), "pixel")
        _scalar(group, "beam_y_pxl", float(position.beam_y_pxl), "pixel")
        _scalar(group, "pixel_size_mm", float(detector.pixel_size_mm), "mm")
        _scalar(
            group,
            "image_size_pxl",
            np.array([detector.width_pxl, detector.height_pxl], dtype=np.int64),
            "pixel",
        )
        _scalar(group, "unit_cell", np.array(cell.as_tuple(), dtype=np.float64), "angstrom, deg")
        _scalar(group, "space_group_number", int(experiment.crystal.space_group_number), "1")
        _scalar(group, "scan_type", scan.kind, "1")
        if isinstance(scan, RotationScan):
            axis = np.array(scan.axis_vector, dtype=np.float64)
            start, step = rad_to_deg(scan.start_rad), rad_to_deg(scan.step_rad)
        else:
            axis, start, step = np.full(3, math.nan), math.nan, math.nan
        _scalar(group, "rotation_axis", axis, "1")
        _scalar(group, "rotation_start_deg", float(start), "deg")
        _scalar(group, "rotation_step_deg", float(step), "deg")
        images = root.create_group("images")
        for name, dtype, units in (("image_id", "int64", "1"), ("n_lattices", "int32", "1")):
            images.create_dataset(
                name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(_IMAGE_CHUNK,)
            )
            images[name].attrs["units"] = units
        lattices = self._max_lattices
        images.create_dataset(
            "ub_matrix",
            shape=(0, lattices, 3, 3),
            maxshape=(None, lattices, 3, 3),
            dtype="float64",
            chunks=(_IMAGE_CHUNK, lattices, 3, 3),
        )
        images["ub_matrix"].attrs["units"] = "1/angstrom"
        checksums = images.create_dataset(
            "pixel_sha256",
            shape=(0, SHA256_BYTES),
            maxshape=(None, SHA256_BYTES),
            dtype="uint8",
            chunks=(_IMAGE_CHUNK, SHA256_BYTES),
        )
        checksums.attrs["units"] = "1"
        checksums.attrs["dtype"] = self.pixel_dtype.str
        checksums.attrs["definition"] = PIXEL_SHA256_DEFINITION
        reflections = root.create_group("reflections")
        for name, dtype, units in REFLECTION_COLUMNS:
            reflections.create_dataset(
                name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(_ROW_CHUNK,)
            )
            reflections[name].attrs["units"] = units

    def write(self, truth: ImageTruth, *, pixel_sha256: bytes | None = None) -> None:
        """Append one image's truth; ``pixel_sha256``: ``pixel_sha256(pixels,
        self.pixel_dtype)`` of the image the truth describes (None: not recorded)."""
        self.write_many([truth], [pixel_sha256])

    def write_many(
        self, truths: Sequence[ImageTruth], pixel_sha256: Sequence[bytes | None]
    ) -> None:
        """Append several images' truth at once (one resize per dataset: much faster than
        ``write`` per image for long series); ``pixel_sha256`` as for ``write``, per image."""
        if len(truths) != len(pixel_sha256):
            raise ValueError("write_many: one pixel_sha256 (or None) per truth")
        if not truths:
            return
        n = len(truths)
        ub = np.full((n, self._max_lattices, 3, 3), np.nan)
        digests = np.zeros((n, SHA256_BYTES), dtype=np.uint8)
        for index, (truth, digest) in enumerate(zip(truths, pixel_sha256, strict=True)):
            if truth.n_lattices > self._max_lattices:
                raise TruthError(
                    f"{self.path}: image {truth.image_id} has {truth.n_lattices} lattices, "
                    f"the file was opened for at most {self._max_lattices}"
                )
            ub[index, : truth.n_lattices] = truth.ub_matrices
            if digest is not None:
                if len(digest) != SHA256_BYTES:
                    raise TruthError(f"{self.path}: a SHA-256 digest has 32 bytes, got {digest!r}")
                digests[index] = np.frombuffer(digest, dtype=np.uint8)
        image_ids = np.array([truth.image_id for truth in truths], dtype=np.int64)
        per_image: dict[str, np.ndarray] = {
            "image_id": image_ids,
            "n_lattices": np.array([truth.n_lattices for truth in truths], dtype=np.int32),
            "ub_matrix": ub,
            "pixel_sha256": digests,
        }
        _append(self._file["images"], per_image, self._n_images)
        self._n_images += n
        tables = [truth.reflections for truth in truths]
        counts = [len(table) for table in tables]
        rows = {
            name: (
                np.repeat(image_ids, counts)
                if name == "image_id"
                else np.concatenate([getattr(t, name) for t in tables]).astype(dtype, copy=False)
            )
            for name, dtype, _ in REFLECTION_COLUMNS
        }
        _append(self._file["reflections"], rows, self._n_rows)
        self._n_rows += sum(counts)

    def write_unique_reflections(self, unique: UniqueReflections) -> None:
        """Store the run's full intensities (``/unique_reflections``), once."""
        if "unique_reflections" in self._file:
            raise TruthError(f"{self.path}: unique reflections were already written")
        group = self._file.create_group("unique_reflections")
        group.attrs["definition"] = UNIQUE_REFLECTIONS_DEFINITION
        for name, dtype, units in UNIQUE_REFLECTION_COLUMNS:
            group.create_dataset(name, data=np.asarray(getattr(unique, name), dtype=dtype))
            group[name].attrs["units"] = units


def _append(group: h5py.Group, columns: dict[str, np.ndarray], start: int) -> None:
    """Write each column's rows after row ``start`` of the dataset of the same name."""
    for name, values in columns.items():
        if len(values):
            group[name].resize(start + len(values), axis=0)
            group[name][start:] = values


@dataclass(frozen=True, slots=True)
class TruthFile:
    """A truth file read into memory."""

    seed: int
    experiment: dict[str, Any]
    scan_type: str
    image_id: np.ndarray
    n_lattices: np.ndarray
    ub_matrix: np.ndarray
    reflections: dict[str, np.ndarray]
    #: [n_images, 32] uint8 per-image pixel checksums (None in files written before them).
    pixel_sha256: np.ndarray | None = None
    #: The full intensity of every unique reflection (None in files written before it).
    unique_reflections: UniqueReflections | None = None

    def image_reflections(self, image_id: int) -> ReflectionTable:
        """The reflection rows of one image."""
        rows = self.reflections["image_id"] == image_id
        return ReflectionTable(
            *(self.reflections[name][rows] for name in ReflectionTable.__slots__)
        )


def read_truth(path: str | Path) -> TruthFile:
    """Read and check a truth file (format and version)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as file:
            found = file.attrs.get("format")
            if found != TRUTH_FORMAT:
                raise TruthError(f"{path}: not a {TRUTH_FORMAT} file (format attribute {found!r})")
            version = int(file.attrs.get("format_version", -1))
            if version != TRUTH_FORMAT_VERSION:
                raise TruthError(
                    f"{path}: format_version {version} is not supported "
                    f"(this jfsim reads {TRUTH_FORMAT_VERSION})"
                )
            scan_type = file["experiment/scan_type"][()]
            return TruthFile(
                seed=int(file.attrs["seed"]),
                experiment=json.loads(file["experiment"].attrs["json"]),
                scan_type=scan_type.decode() if isinstance(scan_type, bytes) else str(scan_type),
                image_id=file["images/image_id"][()],
                n_lattices=file["images/n_lattices"][()],
                ub_matrix=file["images/ub_matrix"][()],
                reflections=_read_reflections(file["reflections"]),
                pixel_sha256=(
                    file["images/pixel_sha256"][()] if "pixel_sha256" in file["images"] else None
                ),
                unique_reflections=_read_unique(file.get("unique_reflections")),
            )
    except OSError as error:
        raise TruthError(f"{path}: cannot read the truth file ({error})") from error
    except KeyError as error:
        raise TruthError(f"{path}: truth file is missing {error}") from error


def _read_reflections(group: h5py.Group) -> dict[str, np.ndarray]:
    columns = {}
    for name, dtype, _ in REFLECTION_COLUMNS:
        if name in group or name not in OPTIONAL_COLUMNS:
            columns[name] = group[name][()]
        else:
            columns[name] = np.full(group["image_id"].shape, np.nan, dtype=dtype)
    return columns


def _read_unique(group: h5py.Group | None) -> UniqueReflections | None:
    if group is None:
        return None
    return UniqueReflections(
        *(np.asarray(group[name][()], dtype=dtype) for name, dtype, _ in UNIQUE_REFLECTION_COLUMNS)
    )
