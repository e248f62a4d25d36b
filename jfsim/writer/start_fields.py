"""The start- and end-message fields the writer uses, and the values it accepts.

A message the decoder accepts can still be unwritable: a frame time of ``inf``, a bit depth
of 2^31, a NUL inside a sample name (HDF5 strings cannot hold one), a goniometer start given
as text, an image of 2^31 × 2^31 pixels. Every start field the writer reads is checked here
once, before any file exists, against bounds that follow from the physics and the file
layout; a refusal names the field. End-message fields that cannot be stored are dropped with
a problem instead: the series' images are on disk by then and its master must still be
written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from jfsim.experiment.model import MAX_IMAGES
from jfsim.protocol import PixelArray
from jfsim.writer.errors import SeriesRefusedError

__all__ = [
    "MAX_FRAME_PIXELS",
    "MAX_IMAGES",
    "check_start_fields",
    "usable_end_fields",
]

#: Pixels of one frame: the largest detectors (EIGER2 16M, JUNGFRAU 16M) have ~18 M; one
#: uncompressed 32-bit frame of this size (256 MiB) still fits memory comfortably.
MAX_FRAME_PIXELS = 1 << 26
#: Longest frame or count time: a day per image is far beyond any detector.
MAX_FRAME_TIME_S = 86_400.0
#: Longest series (number_of_images × frame_time): the end estimate must stay a valid date.
MAX_SERIES_DURATION_S = 10 * 365.25 * 86_400.0
#: Years a date may carry (the master stores ISO 8601 dates; end = start + duration).
DATE_YEARS = (1900, 9000)
#: Stored image bit depths (the pixel types Jungfraujoch writes).
IMAGE_BIT_DEPTHS = (8, 16, 32)
#: Readout bit depths: a counter of 1 to 32 bits (EIGER modes 4, 8, 12, 16, 32; JUNGFRAU 16).
READOUT_BIT_DEPTHS = range(1, 33)
#: Frames summed into one image: a 32-bit image holds the sum of 65536 16-bit frames.
MAX_SUMMATION = 65_536
#: Spot slots per image (the width of /entry/MX/peak*).
MAX_SPOTS = 100_000
#: Azimuthal-integration bins per axis.
MAX_AZINT_BINS = 100_000
INT64_RANGE = (-(2**63), 2**63 - 1)

Check = Callable[[Any], "str | None"]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, (float, np.floating))


def _int_in(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if not _is_int(value):
            return f"expected an integer, got {_shown(value)}"
        if not low <= value <= high:
            return f"{value} is outside {low}..{high}"
        return None

    return check


def _int_of(allowed: tuple[int, ...]) -> Check:
    def check(value: Any) -> str | None:
        if not _is_int(value) or value not in allowed:
            return f"expected one of {', '.join(map(str, allowed))}, got {_shown(value)}"
        return None

    return check


def _finite(*, low: float = -math.inf, high: float = math.inf, positive: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if not _is_number(value):
            return f"expected a number, got {_shown(value)}"
        if _is_int(value) and (problem := _generic(value)):
            return problem
        number = float(value)
        if not math.isfinite(number):
            return f"{value} is not a finite number"
        if positive and number <= 0:
            return f"{value} is not > 0"
        if not low <= number <= high:
            return f"{value} is outside {low:g}..{high:g}"
        return None

    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {_shown(value)}"


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected text, got {_shown(value)}"
    return _generic(value)


def _text_list(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)):
        return f"expected a list of text, got {_shown(value)}"
    for index, item in enumerate(value):
        problem = _text(item)
        if problem:
            return f"[{index}]: {problem}"
    return None


def _number_list(value: Any) -> str | None:
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iuf":
        return None if np.isfinite(value).all() else "holds a value that is not finite"
    if not isinstance(value, (list, tuple)):
        return f"expected a list of numbers, got {_shown(value)}"
    for index, item in enumerate(value):
        problem = _finite()(item)
        if problem:
            return f"[{index}]: {problem}"
    return None


def _number_map(value: Any) -> str | None:
    """A map of text to finite numbers (``unit_cell``: a, b, c, alpha, beta, gamma)."""
    if not isinstance(value, Mapping):
        return f"expected a map of text to numbers, got {_shown(value)}"
    for key, item in value.items():
        problem = _text(key) or _finite()(item)
        if problem:
            return f"[{key!r}]: {problem}"
    return None


def _number_or_number_map(value: Any) -> str | None:
    """One number, or one per channel (``threshold_energy``)."""
    return _number_map(value) if isinstance(value, Mapping) else _finite()(value)


def _pixel_channels(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return f"expected a map of channel to array, got {_shown(value)}"
    for key, item in value.items():
        if _text(key) or not isinstance(item, PixelArray):
            return f"[{key!r}]: expected a multi-dimensional array, got {_shown(item)}"
    return None


def _array(value: Any) -> str | None:
    if isinstance(value, (PixelArray, np.ndarray)):
        return None
    return _number_list(value)


def _date(value: Any) -> str | None:
    if not isinstance(value, datetime):
        return f"expected a date, got {_shown(value)}"
    if not DATE_YEARS[0] <= value.year <= DATE_YEARS[1]:
        return f"year {value.year} is outside {DATE_YEARS[0]}..{DATE_YEARS[1]}"
    return None


def _goniometer(value: Any) -> str | None:
    """``{axis: {start, increment[, vector]}}``: angles in degrees, a 3-vector axis."""
    if not isinstance(value, Mapping):
        return f"expected a map of axis to {{start, increment}}, got {_shown(value)}"
    for name, axis in value.items():
        problem = _text(name)
        if problem:
            return f"axis name: {problem}"
        if not isinstance(axis, Mapping):
            return f"[{name!r}]: expected a map with start and increment, got {_shown(axis)}"
        for key in ("start", "increment"):
            if key in axis and (problem := _finite()(axis[key])):
                return f"[{name!r}].{key}: {problem}"
        if "vector" in axis:
            vector = axis["vector"]
            problem = _number_list(vector)
            if problem is None and len(vector) != 3:
                problem = f"expected 3 numbers, got {len(vector)}"
            if problem is None and not any(float(v) for v in vector):
                problem = "is the zero vector"
            if problem:
                return f"[{name!r}].vector: {problem}"
        if problem := _generic(axis):
            return f"[{name!r}]: {problem}"
    return None


def _grid_scan(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return f"expected a map, got {_shown(value)}"
    checks: dict[str, Check] = {
        "n_fast": _int_in(1, MAX_IMAGES),
        "n_slow": _int_in(1, MAX_IMAGES),
        "step_x_um": _finite(),
        "step_y_um": _finite(),
        "snake": _boolean,
        "vertical": _boolean,
    }
    for key, check in checks.items():
        if key in value and (problem := check(value[key])):
            return f"{key}: {problem}"
    return _generic(value)


def _map(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return f"expected a map, got {_shown(value)}"
    return _generic(value)


def _generic(value: Any, depth: int = 0) -> str | None:
    """What every stored value must satisfy: text without NUL, integers that fit 64 bits."""
    if isinstance(value, str):
        return "contains a NUL character (HDF5 text cannot hold one)" if "\x00" in value else None
    if _is_int(value):
        low, high = INT64_RANGE
        return None if low <= value <= high else f"{value} does not fit a 64-bit integer"
    if depth > 64:
        return "nested too deeply"
    if isinstance(value, Mapping):
        for key, item in value.items():
            problem = _generic(key, depth + 1) or _generic(item, depth + 1)
            if problem:
                return f"[{key!r}]: {problem}"
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = _generic(item, depth + 1)
            if problem:
                return f"[{index}]: {problem}"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


_TEXT_FIELDS = (
    "series_unique_id",
    "sample_name",
    "instrument_name",
    "source_name",
    "source_type",
    "detector_description",
    "detector_serial_number",
    "detector_number",
    "sensor_material",
    "experiment_group",
    "software_git_commit",
    "software_git_date",
    "jfjoch_release",
    "indexing_algorithm",
    "geom_refinement_algorithm",
    "image_dtype",
)
_FINITE_FIELDS = (
    "beam_center_x",
    "beam_center_y",
    "poni_rot1",
    "poni_rot2",
    "poni_rot3",
    "total_flux",
    "ring_current",
    "sample_temperature",
    "attenuator_transmission",
    "polarization_factor",
    "beam_size_x",
    "beam_size_y",
    "jungfrau_conversion_factor",
    "data_reduction_factor_serialmx",
    "storage_cell_delay",
    "saturation_value",
)
_FLAG_FIELDS = (
    "write_master_file",
    "flatfield_enabled",
    "pixel_mask_enabled",
    "countrate_correction_enabled",
    "jungfrau_conversion_applied",
    "geometry_transformation_applied",
    "virtual_pixel_interpolation_enabled",
    "detect_ice_rings",
)

#: Every start field the writer reads (plan, master, notifications) and its check.
START_FIELD_CHECKS: dict[str, Check] = {
    "number_of_images": _int_in(1, MAX_IMAGES),
    "images_per_file": _int_in(1, MAX_IMAGES),
    "image_size_x": _int_in(1, MAX_FRAME_PIXELS),
    "image_size_y": _int_in(1, MAX_FRAME_PIXELS),
    "bit_depth_image": _int_of(IMAGE_BIT_DEPTHS),
    "bit_depth_readout": _int_in(READOUT_BIT_DEPTHS.start, READOUT_BIT_DEPTHS.stop - 1),
    "summation": _int_in(1, MAX_SUMMATION),
    "error_value": _int_in(*INT64_RANGE),
    "series_id": _int_in(0, INT64_RANGE[1]),
    "space_group_number": _int_in(0, 230),
    "storage_cell_number": _int_in(0, 1 << 16),
    "max_spot_count": _int_in(0, MAX_SPOTS),
    "image_sockets": _int_in(1, 1024),
    "az_int_q_bin_count": _int_in(0, MAX_AZINT_BINS),
    "az_int_phi_bin_count": _int_in(0, MAX_AZINT_BINS),
    "frame_time": _finite(high=MAX_FRAME_TIME_S, positive=True),
    "count_time": _finite(high=MAX_FRAME_TIME_S, positive=True),
    "detector_distance": _finite(high=1e3, positive=True),
    "pixel_size_x": _finite(high=1.0, positive=True),
    "pixel_size_y": _finite(high=1.0, positive=True),
    "sensor_thickness": _finite(low=0.0, high=1.0),
    "incident_energy": _finite(high=1e7, positive=True),
    "incident_wavelength": _finite(high=1e4, positive=True),
    "threshold_energy": _number_or_number_map,
    "unit_cell": _number_map,
    "arm_date": _date,
    "goniometer": _goniometer,
    "grid_scan": _grid_scan,
    "gain_file_names": _text_list,
    "pixel_mask": _pixel_channels,
    "flatfield": _pixel_channels,
    "countrate_correction_lookup_table": _array,
    "az_int_bin_to_q": _number_list,
    "az_int_bin_to_two_theta": _number_list,
    "az_int_bin_to_phi": _number_list,
    "fluorescence": _map,
    "rois": _map,
    "user_data": _generic,
    **{name: _text for name in _TEXT_FIELDS},
    **{name: _finite() for name in _FINITE_FIELDS},
    **{name: _boolean for name in _FLAG_FIELDS},
}


def _refuse(name: str, problem: str) -> SeriesRefusedError:
    return SeriesRefusedError(f"start message: field '{name}': {problem}")


def check_start_fields(fields: Mapping[str, Any]) -> None:
    """Refuse a start message the writer could not turn into files.

    Raises:
        SeriesRefusedError: naming the first field that is missing or out of bounds.
    """
    for name in ("number_of_images", "image_size_x", "image_size_y"):
        if name not in fields:
            raise _refuse(name, "missing (the writer needs it to lay out the files)")
    for name, value in fields.items():
        check = START_FIELD_CHECKS.get(name)
        if check is not None and (problem := check(value)):
            raise _refuse(name, problem)
    n_images = fields["number_of_images"]
    pixels = fields["image_size_x"] * fields["image_size_y"]
    if pixels > MAX_FRAME_PIXELS:
        raise _refuse(
            "image_size_x",
            f"{fields['image_size_x']} × {fields['image_size_y']} = {pixels} pixels exceeds "
            f"{MAX_FRAME_PIXELS} per frame",
        )
    frame_time_s = fields.get("frame_time")
    if frame_time_s is not None and n_images * frame_time_s > MAX_SERIES_DURATION_S:
        raise _refuse(
            "frame_time",
            f"{n_images} images × {frame_time_s} s is longer than "
            f"{MAX_SERIES_DURATION_S / 86_400 / 365.25:g} years",
        )


#: End fields the master stores, and the check each must pass to be stored.
END_FIELD_CHECKS: dict[str, Check] = {
    "end_date": _date,
    "images_collected": _int_in(0, INT64_RANGE[1]),
    "data_collection_efficiency": _finite(),
    "max_receiver_delay": _finite(),
    "indexing_rate": _finite(),
    "bkg_estimate": _finite(),
    "rotation_lattice": _number_list,
}


def usable_end_fields(fields: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The end message without the fields the master cannot store, and why each was dropped.

    An end message never refuses a series: its images are written already.
    """
    usable = dict(fields)
    problems = []
    for name, check in END_FIELD_CHECKS.items():
        if name in usable and (problem := check(usable[name])):
            del usable[name]
            problems.append(f"end message: field '{name}': {problem}; not stored")
    return usable, problems
