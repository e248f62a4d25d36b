"""The judge's own table of message fields, written from DECTRIS Stream V2 and Jungfraujoch's
CBOR stream documentation.

Independent of jfsim's protocol package on purpose: a wrong name or type shared by the
encoder and the judge would otherwise pass unseen. A field whose name those sources do not
confirm (marked inferred) is judged with W, a confirmed one with E. Keys not in the table are
accepted, as receivers must ignore unknown keys (DECTRIS Stream V2).
"""

from __future__ import annotations

import datetime
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from cbor2 import CBORTag

__all__ = [
    "MESSAGE_FIELDS",
    "MESSAGE_TYPES",
    "Kind",
    "Spec",
    "is_array",
    "is_float",
    "is_map",
    "is_uint",
    "kind_problem",
]

#: Message types of Stream V2 (start, image, end) and Jungfraujoch (calibration, metadata).
MESSAGE_TYPES = ("start", "image", "end", "calibration", "metadata")


class Kind(enum.Enum):
    """The CBOR shape a field must have (DECTRIS Stream V2 data model names)."""

    UINT = "an unsigned integer"
    INT = "an integer"
    FLOAT = "a float (CBOR major type 7)"
    NUMBER = "a number"
    BOOL = "a boolean"
    TEXT = "a text string"
    DATETIME = "a tag-0 date-time string"
    RATIONAL = "a rational [numerator, denominator > 0]"
    TIME = "a rational or a non-negative number"
    FLOAT_LIST = "an array of floats"
    NUMBER_LIST = "an array of numbers"
    TEXT_LIST = "an array of text strings"
    FLOAT_MAP = "a map of text to float"
    NUMBER_MAP = "a map of text to number"
    AXIS_MAP = "a map of axis name to {start, increment}"
    CHANNELS = "a map of channel name to tag-40 array"
    TYPED_ARRAY = "an RFC 8746 typed array"
    MAP = "a map"
    MAP_LIST = "an array of maps"
    MAP_OF_MAPS = "a map of name to map"
    ANY = "any item"


@dataclass(frozen=True, slots=True)
class Spec:
    """One field: its kind, whether the message type requires it, whether its name is
    confirmed (E when wrong) or only inferred (W)."""

    kind: Kind
    required: bool = False
    confirmed: bool = True


def _c(kind: Kind, required: bool = False) -> Spec:
    return Spec(kind, required, True)


def _i(kind: Kind) -> Spec:
    return Spec(kind, False, False)


K = Kind
_SERIES = {"series_id": _c(K.UINT, True), "series_unique_id": _c(K.TEXT, True)}

#: Per message type: field name → spec (DECTRIS Stream V2, then Jungfraujoch's extensions).
MESSAGE_FIELDS: dict[str, dict[str, Spec]] = {
    "start": {
        **_SERIES,
        "arm_date": _c(K.DATETIME),
        "beam_center_x": _c(K.FLOAT),
        "beam_center_y": _c(K.FLOAT),
        "channels": _c(K.TEXT_LIST),
        "count_time": _c(K.FLOAT),
        "countrate_correction_enabled": _c(K.BOOL),
        "countrate_correction_lookup_table": _c(K.TYPED_ARRAY),
        "detector_description": _c(K.TEXT),
        "detector_serial_number": _c(K.TEXT),
        "detector_translation": _c(K.FLOAT_LIST),
        "flatfield": _c(K.CHANNELS),
        "flatfield_enabled": _c(K.BOOL),
        "frame_time": _c(K.FLOAT),
        "goniometer": _c(K.AXIS_MAP),
        "image_dtype": _c(K.TEXT),
        "image_size_x": _c(K.UINT),
        "image_size_y": _c(K.UINT),
        "incident_energy": _c(K.FLOAT),
        "incident_wavelength": _c(K.FLOAT),
        "number_of_images": _c(K.UINT),
        "pixel_mask": _c(K.CHANNELS),
        "pixel_mask_enabled": _c(K.BOOL),
        "pixel_size_x": _c(K.FLOAT),
        "pixel_size_y": _c(K.FLOAT),
        "saturation_value": _c(K.INT),
        "sensor_material": _c(K.TEXT),
        "sensor_thickness": _c(K.FLOAT),
        "threshold_energy": _c(K.FLOAT_MAP),
        "user_data": _c(K.ANY),
        "virtual_pixel_interpolation_enabled": _c(K.BOOL),
        "magic_number": _c(K.UINT),
        "detector_distance": _c(K.FLOAT),
        "error_value": _c(K.INT),
        "az_int_bin_to_q": _c(K.FLOAT_LIST),
        "experiment_group": _i(K.TEXT),
        "file_prefix": _i(K.TEXT),
        "images_per_file": _i(K.UINT),
        "overwrite": _i(K.BOOL),
        "write_master_file": _i(K.BOOL),
        "sample_name": _i(K.TEXT),
        "run_name": _i(K.TEXT),
        "run_number": _i(K.UINT),
        "space_group_number": _i(K.UINT),
        "unit_cell": _i(K.NUMBER_MAP),
        "grid_scan": _i(K.MAP),
        "poni_rot1": _i(K.FLOAT),
        "poni_rot2": _i(K.FLOAT),
        "poni_rot3": _i(K.FLOAT),
        "source_name": _i(K.TEXT),
        "source_type": _i(K.TEXT),
        "instrument_name": _i(K.TEXT),
        "total_flux": _i(K.FLOAT),
        "attenuator_transmission": _i(K.FLOAT),
        "polarization_factor": _i(K.FLOAT),
        "bit_depth_image": _i(K.UINT),
        "bit_depth_readout": _i(K.UINT),
        "max_spot_count": _i(K.UINT),
        "storage_cell_number": _i(K.UINT),
        "jfjoch_release": _i(K.TEXT),
    },
    "image": {
        **_SERIES,
        "image_id": _c(K.UINT, True),
        "data": _c(K.CHANNELS, True),
        "real_time": _c(K.RATIONAL),
        "series_date": _c(K.DATETIME),
        "start_time": _c(K.RATIONAL),
        "stop_time": _c(K.RATIONAL),
        "user_data": _c(K.ANY),
        "indexing_result": _c(K.BOOL),
        "indexing_unit_cell": _c(K.NUMBER_MAP),
        "az_int_profile": _c(K.NUMBER_LIST),
        "xfel_pulse_id": _c(K.UINT),
        "roi_integrals": _c(K.MAP_OF_MAPS),
        "spots": _i(K.MAP_LIST),
        "spot_count": _i(K.UINT),
        "indexing_lattice": _i(K.FLOAT_LIST),
        "indexing_lattice_count": _i(K.UINT),
        "niggli_class": _i(K.UINT),
        "bravais_lattice": _i(K.TEXT),
        "reflections": _i(K.MAP_LIST),
        "storage_cell": _i(K.UINT),
        "xfel_event_code": _i(K.UINT),
        "timestamp": _i(K.TIME),
        "exptime": _i(K.TIME),
    },
    "end": {
        **_SERIES,
        "end_date": _i(K.DATETIME),
        "images_collected": _i(K.UINT),
        "max_image_number": _i(K.UINT),
        "images_sent": _i(K.UINT),
        "data_collection_efficiency": _i(K.FLOAT),
        "indexing_rate": _i(K.FLOAT),
        "user_data": _i(K.ANY),
    },
    "calibration": {
        "series_id": _i(K.UINT),
        "series_unique_id": _i(K.TEXT),
        "name": _i(K.TEXT),
    },
    "metadata": {
        "series_id": _i(K.UINT),
        "series_unique_id": _i(K.TEXT),
        "images": _c(K.MAP_LIST, True),
    },
}

#: Pixel types an ``image_dtype`` may name (DECTRIS unsigned, Jungfraujoch signed too).
IMAGE_DTYPES = ("uint8", "uint16", "uint32", "int8", "int16", "int32")


def is_uint(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_float(value: Any) -> bool:
    return isinstance(value, float)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_map(value: Any) -> TypeGuard[Mapping[Any, Any]]:
    # dict first: cbor2's maps are dicts (frozendicts inside tags), and the ABC check is slow
    return isinstance(value, (dict, Mapping))


def is_array(value: Any) -> TypeGuard[Sequence[Any]]:
    if isinstance(value, (list, tuple)):
        return True
    return isinstance(value, Sequence) and not isinstance(
        value, (str, bytes, bytearray, memoryview)
    )


def _rational_problem(value: Any) -> str | None:
    if not (is_array(value) and len(value) == 2 and all(is_uint(v) for v in value)):
        return "is not [numerator, denominator] of unsigned integers"
    if value[1] == 0:
        return "has denominator 0"
    return None


def _all(items: Any, test: Any) -> bool:
    return all(test(item) for item in items)


def kind_problem(kind: Kind, value: Any) -> str | None:
    """Why ``value`` is not of ``kind`` (None when it is). Channel arrays and typed arrays
    are only checked for their outer shape here; :mod:`jfconform.stream.arrays` looks inside."""
    ok: bool
    if kind is K.ANY:
        return None
    if kind is K.UINT:
        ok = is_uint(value)
    elif kind is K.INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is K.FLOAT:
        ok = is_float(value)
    elif kind is K.NUMBER:
        ok = _is_number(value)
    elif kind is K.BOOL:
        ok = isinstance(value, bool)
    elif kind is K.TEXT:
        ok = isinstance(value, str)
    elif kind is K.DATETIME:
        ok = isinstance(value, datetime.datetime)
    elif kind is K.RATIONAL:
        return _rational_problem(value)
    elif kind is K.TIME:
        if is_array(value):
            return _rational_problem(value)
        ok = _is_number(value) and value >= 0 and not (is_float(value) and math.isnan(value))
    elif kind is K.FLOAT_LIST:
        ok = is_array(value) and _all(value, is_float)
    elif kind is K.NUMBER_LIST:
        ok = is_array(value) and _all(value, _is_number)
    elif kind is K.TEXT_LIST:
        ok = is_array(value) and _all(value, lambda v: isinstance(v, str))
    elif kind is K.FLOAT_MAP:
        ok = is_map(value) and _all(value.values(), is_float)
    elif kind is K.NUMBER_MAP:
        ok = is_map(value) and _all(value.values(), _is_number)
    elif kind is K.AXIS_MAP:
        ok = is_map(value) and _all(
            value.values(), lambda axis: is_map(axis) and is_float(axis.get("start", 0.0))
        )
    elif kind is K.CHANNELS or kind is K.MAP:
        ok = is_map(value)
    elif kind is K.TYPED_ARRAY:
        ok = isinstance(value, CBORTag)
    elif kind is K.MAP_LIST:
        ok = is_array(value) and _all(value, is_map)
    else:  # K.MAP_OF_MAPS
        ok = is_map(value) and _all(value.values(), is_map)
    if ok:
        return None
    return f"is {_describe(value)}, not {kind.value}"


def _describe(value: Any) -> str:
    """A short name of what a decoded CBOR value is, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a negative integer" if value < 0 else "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a text string"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "a byte string"
    if isinstance(value, CBORTag):
        return f"tag {value.tag}"
    if isinstance(value, datetime.datetime):
        return "a date-time"
    if is_map(value):
        return "a map" if value else "an empty map"
    if is_array(value):
        return "an array" if value else "an empty array"
    if value is None:
        return "null"
    return type(value).__name__
