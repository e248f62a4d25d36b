"""Per-image analysis results: which image-message field lands in which HDF5 dataset.

Image messages carry spot finding, indexing, azimuthal integration, ROI and detector
diagnostics (stream.md §6.2). The writer collects them in memory, one row per image, and
writes each data file's arrays once when the file closes: cheap per image, and the arrays
are complete (sentinels where an image was missing or a value absent, S1 §4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import h5py
import numpy as np

from jfsim.protocol import Rational
from jfsim.writer.field_homes import PROFILING_DATASETS
from jfsim.writer.h5tree import H5Tree

#: Sentinel written where an image or a value is absent: NaN for floats, 0 for counts.
FLOAT_SENTINEL = np.nan
#: An azimuthal profile whose size no start message announced may take this much per file.
MAX_AZINT_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class ScalarField:
    """One image-message field stored as an ``[n_images]`` vector (or ``[n_images, k]``)."""

    wire_name: str
    path: str  # relative to /entry, e.g. "MX/nPeaks"
    dtype: str
    units: str | None = None
    sentinel: Any = 0
    width: int = 0  # 0 = scalar per image; otherwise a fixed row length (latticeIndexed = 9)


def _float(wire: str, path: str, units: str | None = None) -> ScalarField:
    return ScalarField(wire, path, "f4", units, FLOAT_SENTINEL)


def _float64(wire: str, path: str, units: str | None = None) -> ScalarField:
    return ScalarField(wire, path, "f8", units, FLOAT_SENTINEL)


def _count(wire: str, path: str) -> ScalarField:
    return ScalarField(wire, path, "i8", None, 0)


#: Image-message scalars → /entry/<group>/<dataset> (S1 §4.1, 4.5, 4.7, 4.8).
SCALAR_FIELDS: tuple[ScalarField, ...] = (
    _count("spot_count", "MX/peakCountUnfiltered"),
    _count("strong_pixel_count", "MX/strongPixels"),
    _count("spot_count_low_res", "MX/peakCountLowRes"),
    _count("spot_count_ice_rings", "MX/peakCountIceRingRes"),
    _count("spot_count_indexed", "MX/peakCountIndexed"),
    ScalarField("indexing_result", "MX/imageIndexed", "u1", None, 0),
    _count("indexing_lattice_count", "MX/indexingLatticeCount"),
    _count("niggli_class", "MX/niggliClass"),
    ScalarField("bravais_lattice", "MX/bravaisLattice", "S2", None, b""),
    _float("profile_radius", "MX/profileRadius", "1/angstrom"),
    _float("mosaicity", "MX/mosaicity", "deg"),
    _float("b_factor", "MX/bFactor", "angstrom^2"),
    _float("resolution_estimate", "MX/resolutionEstimate", "angstrom"),
    _count("integrated_reflections", "MX/integratedReflections"),
    _float("bkg_estimate", "MX/bkgEstimate", "photons"),
    _float("beam_corr_x", "MX/beam_corr_x", "pixel"),
    _float("beam_corr_y", "MX/beam_corr_y", "pixel"),
    _float("image_scale_factor", "MX/imageScaleFactor"),
    _float("image_scale_cc", "MX/imageScaleCC"),
    _float("image_scale_mosaicity", "MX/imageScaleMosaicity", "deg"),
    _float("image_scale_b_factor", "MX/imageScaleBFactor", "angstrom^2"),
    ScalarField("indexing_lattice", "MX/latticeIndexed", "f4", "angstrom", FLOAT_SENTINEL, 9),
    _count("max_viable_pixel_value", "image/max_value"),
    _count("min_viable_pixel_value", "image/min_value"),
    _count("error_pixel_count", "image/error_pixels"),
    _count("saturated_pixel_count", "image/saturated_pixels"),
    _count("pixel_sum", "image/pixel_sum"),
    ScalarField("xfel_pulse_id", "xfel/pulseID", "u8", None, 0),
    ScalarField("xfel_event_code", "xfel/eventCode", "u8", None, 0),
    _count("storage_cell", "detector/storage_cell_image"),
    _count("packets_expected", "detector/packets_expected"),
    _count("packets_received", "detector/packets_received"),
    _float("data_collection_efficiency", "detector/data_collection_efficiency_image"),
    _float64("timestamp", "detector/timestamp", "s"),
    _float64("exptime", "detector/exptime", "s"),
    _count("original_number", "detector/number"),
    _count("jf_info", "detector/det_info"),
    _count("receiver_aq_dev_delay", "detector/rcv_delay"),
    _count("receiver_free_send_buf", "detector/rcv_free_send_buffers"),
)

#: Per-image timings (s) → ``/entry/profiling`` (S1 §4.6).
PROFILING_FIELDS: tuple[ScalarField, ...] = tuple(
    _float64(wire, f"profiling/{dataset}", "s") for wire, dataset in PROFILING_DATASETS.items()
)

_SCALARS_BY_WIRE_NAME: dict[str, ScalarField] = {
    field.wire_name: field for field in SCALAR_FIELDS + PROFILING_FIELDS
}

#: Spot-map keys → per-spot ``/entry/MX`` arrays ``[n_images, max_spots]`` (S1 §4.1).
SPOT_FIELDS: tuple[ScalarField, ...] = (
    ScalarField("x", "MX/peakXPosRaw", "f4", "pixel", FLOAT_SENTINEL),
    ScalarField("y", "MX/peakYPosRaw", "f4", "pixel", FLOAT_SENTINEL),
    ScalarField("I", "MX/peakTotalIntensity", "f4", "photons", FLOAT_SENTINEL),
    ScalarField("ice_ring", "MX/peakIceRingRes", "u1", None, 0),
    ScalarField("indexed", "MX/peakIndexed", "u1", None, 0),
    ScalarField("h", "MX/peakH", "i4", None, 0),
    ScalarField("k", "MX/peakK", "i4", None, 0),
    ScalarField("l", "MX/peakL", "i4", None, 0),
    ScalarField("dist_ewald", "MX/peakDistEwaldSphere", "f4", "1/angstrom", FLOAT_SENTINEL),
    ScalarField("lattice", "MX/peakLattice", "i4", None, -1),
)

#: ROI statistic keys in ``roi_integrals[name]`` → ``/entry/roi/<name>/<dataset>``.
ROI_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("sum", "sum", "i8"),
    ("sum_square", "sum_sq", "i8"),
    ("max_count", "max", "i8"),
    ("pixels", "npixel", "i8"),
    ("x_weighted", "x", "f4"),
    ("y_weighted", "y", "f4"),
)

#: Azimuthal-integration arrays → ``/entry/azint/<dataset>`` ``[n_images, phi, q]``.
AZINT_FIELDS: tuple[tuple[str, str], ...] = (
    ("az_int_profile", "image"),
    ("az_int_profile_std", "image_std"),
    ("az_int_profile_count", "image_count"),
)

#: Reflection-map keys → NXreflections columns with units (S1 §4.2).
REFLECTION_COLUMNS: tuple[tuple[str, str, str, str | None], ...] = (
    ("h", "h", "i4", None),
    ("k", "k", "i4", None),
    ("l", "l", "i4", None),
    ("d", "d", "f4", "angstrom"),
    ("I", "int_sum", "f4", None),
    ("sigma", "int_err", "f4", None),
    ("bkg", "background_mean", "f4", None),
    ("x", "predicted_x", "f4", "pixel"),
    ("y", "predicted_y", "f4", "pixel"),
    ("obs_x", "observed_x", "f4", "pixel"),
    ("obs_y", "observed_y", "f4", "pixel"),
    ("lp", "lp", "f4", None),
    ("partiality", "partiality", "f4", None),
    ("delta_phi", "delta_phi", "f4", "deg"),
    ("zeta", "zeta", "f4", None),
    ("image_scale_corr", "image_scale_corr", "f4", None),
)


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """Type, per-image row shape, fill value and units of one per-image dataset."""

    dtype: np.dtype
    row_shape: tuple[int, ...]
    fill_value: Any
    units: str | None


def _as_number(value: Any) -> Any:
    """Wire scalars: bools, Rationals (time stamps in ticks) and text become array values."""
    if isinstance(value, Rational):
        return value.numerator / value.denominator if value.denominator else np.nan
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        return value.encode("ascii", "replace")
    return value


class AnalysisBuffer:
    """Rows of per-image results for ``n_images`` images, filled as images arrive.

    ``max_spots`` is the width of the per-spot arrays (start ``max_spot_count``);
    ``azint_shape`` is ``(phi_bins, q_bins)`` when the start message gives it.
    """

    def __init__(
        self,
        n_images: int,
        *,
        max_spots: int,
        first_image_id: int = 0,
        azint_shape: tuple[int, int] | None = None,
    ) -> None:
        self.n_images = n_images
        self.max_spots = max_spots
        self.first_image_id = first_image_id
        self.azint_shape = azint_shape
        self._arrays: dict[str, np.ndarray] = {}
        self._units: dict[str, str | None] = {}
        self._sentinels: dict[str, Any] = {}
        self._reflections: dict[int, dict[str, np.ndarray]] = {}
        for field in SPOT_FIELDS:
            self._ensure(field.path, field.dtype, field.sentinel, (max_spots,), field.units)
        self._ensure("MX/nPeaks", "i4", 0, (), None)

    def _ensure(
        self, path: str, dtype: str, sentinel: Any, row_shape: tuple[int, ...], units: str | None
    ) -> np.ndarray:
        array = self._arrays.get(path)
        if array is None:
            array = np.full((self.n_images, *row_shape), sentinel, dtype=dtype)
            self._arrays[path] = array
            self._units[path] = units
            self._sentinels[path] = sentinel
        return array

    def record(self, position: int, fields: Mapping[str, Any]) -> list[str]:
        """Store one image's results at row ``position``; returns problems (field: why)."""
        problems: list[str] = []
        # a set intersection in C instead of ~50 lookups per image
        for wire_name in fields.keys() & _SCALARS_BY_WIRE_NAME.keys():
            value = fields[wire_name]
            if value is None:
                continue
            field = _SCALARS_BY_WIRE_NAME[wire_name]
            row_shape = (field.width,) if field.width else ()
            array = self._ensure(field.path, field.dtype, field.sentinel, row_shape, field.units)
            try:
                value = _as_number(value)
                if field.width:  # a fixed-length row: exactly that many values, no broadcast
                    value = np.asarray(value, dtype=array.dtype).reshape(row_shape)
                elif isinstance(value, (list, tuple, dict)):
                    raise TypeError(f"expected a scalar, got {type(value).__name__}")
                array[position] = value
            except (TypeError, ValueError, OverflowError) as error:
                problems.append(f"{wire_name}: {error}")
        if "spots" in fields:
            problems += self._record_spots(position, fields["spots"])
        for wire_name, dataset in AZINT_FIELDS:
            if fields.get(wire_name) is not None:
                problems += self._record_azint(position, wire_name, dataset, fields[wire_name])
        if isinstance(fields.get("roi_integrals"), Mapping):
            problems += self._record_rois(position, fields["roi_integrals"])
        if isinstance(fields.get("reflections"), list):
            problems += self._record_reflections(position, fields["reflections"])
        return problems

    def _record_spots(self, position: int, spots: Any) -> list[str]:
        # plain dicts first, through map(): the ABC check is 10× slower and a generator
        # costs more than the check itself, for every spot of every image
        if not isinstance(spots, list) or not (
            all(map(isinstance, spots, repeat(dict)))
            or all(map(isinstance, spots, repeat(Mapping)))
        ):
            return ["spots: expected a list of maps"]
        kept = spots[: self.max_spots]
        problems = []
        present = set().union(*kept) if kept else set()
        for field in SPOT_FIELDS:
            if field.wire_name not in present:
                continue
            try:  # every spot has the key (the usual case): itemgetter is 2× faster
                row = list(map(itemgetter(field.wire_name), kept))
            except KeyError:
                row = [spot.get(field.wire_name, field.sentinel) for spot in kept]
            try:
                self._arrays[field.path][position, : len(row)] = row
            except (TypeError, ValueError, OverflowError) as error:
                problems.append(f"spots.{field.wire_name}: {error}")
        self._arrays["MX/nPeaks"][position] = len(kept)
        return problems

    def _record_azint(self, position: int, wire_name: str, dataset: str, value: Any) -> list[str]:
        try:
            profile = np.asarray(value, dtype="f4").ravel()
        except (TypeError, ValueError) as error:
            return [f"{wire_name}: {error}"]
        shape = self.azint_shape or (1, profile.size)
        if self.azint_shape is None and self.n_images * profile.size * 4 > MAX_AZINT_BYTES:
            return [f"{wire_name}: {profile.size} bins × {self.n_images} images is too large"]
        if profile.size != shape[0] * shape[1]:
            return [f"{wire_name}: {profile.size} bins, expected {shape[0] * shape[1]}"]
        self.azint_shape = shape
        self._ensure(f"azint/{dataset}", "f4", FLOAT_SENTINEL, shape, None)[position] = (
            profile.reshape(shape)
        )
        return []

    def _record_rois(self, position: int, rois: Mapping[str, Any]) -> list[str]:
        problems = []
        for name, values in rois.items():
            if (
                not isinstance(name, str)
                or not name.isidentifier()
                or not isinstance(values, Mapping)
            ):
                problems.append(f"roi_integrals[{name!r}]: expected a name and a map")
                continue
            for wire_key, dataset, dtype in ROI_FIELDS:
                if values.get(wire_key) is None:
                    continue
                sentinel = FLOAT_SENTINEL if dtype.startswith("f") else 0
                array = self._ensure(f"roi/{name}/{dataset}", dtype, sentinel, (), None)
                try:
                    array[position] = values[wire_key]
                except (TypeError, ValueError, OverflowError) as error:
                    problems.append(f"roi_integrals.{name}.{wire_key}: {error}")
        return problems

    def _record_reflections(self, position: int, reflections: list[Any]) -> list[str]:
        columns: dict[str, np.ndarray] = {}
        rows = [r for r in reflections if isinstance(r, Mapping)]
        for wire_key, column, dtype, _units in REFLECTION_COLUMNS:
            if rows and any(wire_key in row for row in rows):
                sentinel = np.nan if dtype.startswith("f") else 0
                try:
                    columns[column] = np.array(
                        [row.get(wire_key, sentinel) for row in rows], dtype=dtype
                    )
                except (TypeError, ValueError, OverflowError) as error:
                    return [f"reflections.{wire_key}: {error}"]
        columns["observed_frame"] = np.full(len(rows), self.first_image_id + position, "f4")
        self._reflections[position] = columns
        return [] if len(rows) == len(reflections) else ["reflections: non-map entries skipped"]

    def dataset_specs(self) -> dict[str, DatasetSpec]:
        """Every per-image dataset this buffer writes, by path relative to /entry."""
        return {
            path: DatasetSpec(
                array.dtype, array.shape[1:], self._sentinels[path], self._units[path]
            )
            for path, array in self._arrays.items()
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-image arrays by path relative to /entry (shared, not copied)."""
        return dict(self._arrays)

    def reflection_groups(self) -> list[str]:
        """``reflections/image_NNNNNN`` group names (global image numbers), in order."""
        return [
            f"reflections/image_{self.first_image_id + position:06d}"
            for position in sorted(self._reflections)
        ]

    def tree(self, *, detector_group: str = "detector") -> H5Tree:
        """Every array as an ``H5Tree`` below ``/entry`` (``detector/*`` goes to
        ``detector_group``); groups that exist already are left as they are."""
        tree = H5Tree()
        for path, array in self._arrays.items():
            group_name, _, rest = path.partition("/")
            target = detector_group if group_name == "detector" else group_name
            parent_path, _, _name = f"{target}/{rest}".rpartition("/")
            if parent_path:
                tree.require_group(parent_path, "NXcollection")
            tree.dataset(f"{target}/{rest}", array, self._units.get(path))
        units = {column: unit for _w, column, _d, unit in REFLECTION_COLUMNS}
        for position, columns in sorted(self._reflections.items()):
            group = tree.require_group(
                f"reflections/image_{self.first_image_id + position:06d}",
                "NXcollection",
                leaf_class="NXreflections",
            )
            for column, values in columns.items():
                tree.dataset(f"{group}/{column}", values, units.get(column))
        return tree

    def write(self, entry: h5py.Group, *, detector_group: str = "detector") -> None:
        """Write every array below ``entry`` (``detector/*`` goes to ``detector_group``)."""
        self.tree(detector_group=detector_group).write(entry)
