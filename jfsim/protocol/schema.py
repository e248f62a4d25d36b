"""The field table: every wire name jfsim knows, with its type and confidence.

This is the ONE place where names live that stream.md marks [inferred]; correcting the
Jungfraujoch schema (once the full CBOR.md is in hand) means editing rows here only. The
encoder uses the table to write Float fields as CBOR floats, the strict decoder to check
types and required fields. Keys not in the table are accepted and kept as they are. Where
the writer stores each field is the writer's business (``jfsim.writer.field_homes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "FIELDS",
    "MEMBERS",
    "SCHEMA",
    "Confidence",
    "FieldSpec",
    "WireType",
    "field_spec",
    "member_specs",
    "required_fields",
]


class WireType(str, Enum):
    """The CBOR shape a field must have (stream.md §2.1 names, plus a few composites)."""

    UINT = "unsigned integer"
    INT = "integer"
    FLOAT = "float"
    BOOL = "boolean"
    TEXT = "text string"
    DATETIME = "date-time (tag 0)"
    RATIONAL = "rational [numerator, denominator]"
    TIME = "rational or non-negative number"
    FLOAT_LIST = "array of floats"
    TEXT_LIST = "array of text strings"
    FLOAT_MAP = "map of text to float"
    AXIS_MAP = "map of axis to {start, increment, ...}"
    CHANNELS = "map of channel to multi-dimensional array"
    TYPED_ARRAY = "typed array"
    MAP = "map"
    MAP_LIST = "array of maps"
    MAP_OF_MAPS = "map of name to map"
    ANY = "any"


class Confidence(str, Enum):
    """How sure we are of the wire name (stream.md §0.1)."""

    CONFIRMED = "confirmed"
    VERIFIED = "verified-test-vectors"
    INFERRED = "inferred"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One row: ``name`` in messages of type ``message``."""

    name: str
    message: str
    wire_type: WireType
    required: bool
    confidence: Confidence


T = WireType
C = Confidence.CONFIRMED
V = Confidence.VERIFIED
I = Confidence.INFERRED  # noqa: E741 - short column marker


def _rows(message: str, rows: list[tuple[str, WireType, bool, Confidence]]) -> list[FieldSpec]:
    return [
        FieldSpec(name, message, wire_type, required, confidence)
        for name, wire_type, required, confidence in rows
    ]


FIELDS: tuple[FieldSpec, ...] = tuple(
    _rows(
        "start",
        [
            ("series_id", T.UINT, True, C),
            ("series_unique_id", T.TEXT, True, C),
            ("arm_date", T.DATETIME, False, C),
            ("beam_center_x", T.FLOAT, False, C),
            ("beam_center_y", T.FLOAT, False, C),
            ("channels", T.TEXT_LIST, False, C),
            ("count_time", T.FLOAT, False, C),
            ("countrate_correction_enabled", T.BOOL, False, C),
            ("countrate_correction_lookup_table", T.TYPED_ARRAY, False, C),
            ("detector_description", T.TEXT, False, C),
            ("detector_serial_number", T.TEXT, False, C),
            ("detector_translation", T.FLOAT_LIST, False, C),
            ("flatfield", T.CHANNELS, False, C),
            ("flatfield_enabled", T.BOOL, False, C),
            ("frame_time", T.FLOAT, False, C),
            ("goniometer", T.AXIS_MAP, False, C),
            ("image_dtype", T.TEXT, False, C),
            ("image_size_x", T.UINT, False, C),
            ("image_size_y", T.UINT, False, C),
            ("incident_energy", T.FLOAT, False, C),
            ("incident_wavelength", T.FLOAT, False, C),
            ("number_of_images", T.UINT, False, C),
            ("pixel_mask", T.CHANNELS, False, C),
            ("pixel_mask_enabled", T.BOOL, False, C),
            ("pixel_size_x", T.FLOAT, False, C),
            ("pixel_size_y", T.FLOAT, False, C),
            ("saturation_value", T.INT, False, C),
            ("sensor_material", T.TEXT, False, C),
            ("sensor_thickness", T.FLOAT, False, C),
            ("threshold_energy", T.FLOAT_MAP, False, C),
            ("user_data", T.ANY, False, C),
            ("virtual_pixel_interpolation_enabled", T.BOOL, False, C),
            ("magic_number", T.UINT, False, C),
            ("detector_distance", T.FLOAT, False, C),
            ("error_value", T.INT, False, C),
            ("experiment_group", T.TEXT, False, I),
            ("file_prefix", T.TEXT, False, I),
            ("images_per_file", T.UINT, False, I),
            ("file_format", T.ANY, False, I),
            ("overwrite", T.BOOL, False, I),
            ("write_master_file", T.BOOL, False, I),
            # jfsim's own: how many image sockets share the series (jfjoch_broker sends none)
            ("image_sockets", T.UINT, False, I),
            ("writer_notification_zmq_addr", T.TEXT, False, I),
            ("sample_name", T.TEXT, False, I),
            ("run_name", T.TEXT, False, I),
            ("run_number", T.UINT, False, I),
            ("space_group_number", T.UINT, False, I),
            ("unit_cell", T.FLOAT_MAP, False, I),
            ("grid_scan", T.MAP, False, I),
            ("poni_rot1", T.FLOAT, False, I),
            ("poni_rot2", T.FLOAT, False, I),
            ("poni_rot3", T.FLOAT, False, I),
            ("source_name", T.TEXT, False, I),
            ("source_type", T.TEXT, False, I),
            ("instrument_name", T.TEXT, False, I),
            ("pulsed_source", T.BOOL, False, I),
            ("total_flux", T.FLOAT, False, I),
            ("attenuator_transmission", T.FLOAT, False, I),
            ("beam_size_x", T.FLOAT, False, I),
            ("beam_size_y", T.FLOAT, False, I),
            ("sample_temperature", T.FLOAT, False, I),
            ("ring_current", T.FLOAT, False, I),
            ("polarization_factor", T.FLOAT, False, I),
            ("bit_depth_image", T.UINT, False, I),
            ("bit_depth_readout", T.UINT, False, I),
            ("summation", T.UINT, False, I),
            ("storage_cell_number", T.UINT, False, I),
            ("storage_cell_delay", T.UINT, False, I),
            ("jungfrau_conversion_applied", T.BOOL, False, I),
            ("jungfrau_conversion_factor", T.FLOAT, False, I),
            ("geometry_transformation_applied", T.BOOL, False, I),
            ("detector_number", T.TEXT, False, I),
            ("jfjoch_release", T.TEXT, False, I),
            ("software_git_commit", T.TEXT, False, I),
            ("software_git_date", T.TEXT, False, I),
            ("gain_file_names", T.TEXT_LIST, False, I),
            ("data_reduction_factor_serialmx", T.FLOAT, False, I),
            ("detect_ice_rings", T.BOOL, False, I),
            ("max_spot_count", T.UINT, False, I),
            ("indexing_algorithm", T.TEXT, False, I),
            ("geom_refinement_algorithm", T.TEXT, False, I),
            ("az_int_bin_to_q", T.FLOAT_LIST, False, C),
            ("az_int_bin_to_two_theta", T.FLOAT_LIST, False, I),
            ("az_int_bin_to_phi", T.FLOAT_LIST, False, I),
            ("az_int_q_bin_count", T.UINT, False, I),
            ("az_int_phi_bin_count", T.UINT, False, I),
            ("rois", T.MAP, False, I),
            ("fluorescence", T.MAP, False, I),
        ],
    )
    + _rows(
        "image",
        [
            ("series_id", T.UINT, True, C),
            ("series_unique_id", T.TEXT, True, C),
            ("image_id", T.UINT, True, C),
            ("real_time", T.RATIONAL, False, V),
            ("series_date", T.DATETIME, False, V),
            ("start_time", T.RATIONAL, False, V),
            ("stop_time", T.RATIONAL, False, V),
            ("user_data", T.ANY, False, C),
            ("data", T.CHANNELS, True, C),
            ("indexing_result", T.BOOL, False, C),
            ("indexing_unit_cell", T.FLOAT_MAP, False, C),
            ("az_int_profile", T.FLOAT_LIST, False, C),
            ("xfel_pulse_id", T.UINT, False, C),
            ("roi_integrals", T.MAP_OF_MAPS, False, C),
            ("xfel_event_code", T.UINT, False, I),
            ("spots", T.MAP_LIST, False, I),
            ("spot_count", T.UINT, False, I),
            ("spot_count_low_res", T.UINT, False, I),
            ("spot_count_ice_rings", T.UINT, False, I),
            ("spot_count_indexed", T.UINT, False, I),
            ("strong_pixel_count", T.UINT, False, I),
            ("indexing_lattice", T.FLOAT_LIST, False, I),
            ("indexing_lattice_count", T.UINT, False, I),
            ("niggli_class", T.UINT, False, I),
            ("bravais_lattice", T.TEXT, False, I),
            ("profile_radius", T.FLOAT, False, I),
            ("mosaicity", T.FLOAT, False, I),
            ("b_factor", T.FLOAT, False, I),
            ("resolution_estimate", T.FLOAT, False, I),
            ("bkg_estimate", T.FLOAT, False, I),
            ("beam_corr_x", T.FLOAT, False, I),
            ("beam_corr_y", T.FLOAT, False, I),
            ("reflections", T.MAP_LIST, False, I),
            ("integrated_reflections", T.UINT, False, I),
            ("az_int_profile_std", T.FLOAT_LIST, False, I),
            ("az_int_profile_count", T.FLOAT_LIST, False, I),
            ("max_viable_pixel_value", T.INT, False, I),
            ("min_viable_pixel_value", T.INT, False, I),
            ("error_pixel_count", T.UINT, False, I),
            ("saturated_pixel_count", T.UINT, False, I),
            ("pixel_sum", T.INT, False, I),
            ("storage_cell", T.UINT, False, I),
            ("packets_expected", T.UINT, False, I),
            ("packets_received", T.UINT, False, I),
            ("data_collection_efficiency", T.FLOAT, False, I),
            ("original_number", T.UINT, False, I),
            ("image_scale_factor", T.FLOAT, False, I),
            ("image_scale_cc", T.FLOAT, False, I),
            ("image_scale_mosaicity", T.FLOAT, False, I),
            ("image_scale_b_factor", T.FLOAT, False, I),
            ("timestamp", T.TIME, False, I),
            ("exptime", T.TIME, False, I),
            ("jf_info", T.UINT, False, I),
            ("receiver_aq_dev_delay", T.UINT, False, I),
            ("receiver_free_send_buf", T.UINT, False, I),
        ]
        + [
            (wire, T.FLOAT, False, I)  # per-image timings, s
            for wire in (
                "spot_finding_time",
                "indexing_time",
                "integration_time",
                "refinement_time",
                "processing_time",
                "bragg_prediction_time",
                "preprocessing_time",
                "compression_time",
                "az_int_time",
                "index_analysis_time",
                "image_scale_time",
            )
        ],
    )
    + _rows(
        "end",
        [
            ("series_id", T.UINT, True, C),
            ("series_unique_id", T.TEXT, True, C),
            ("end_date", T.DATETIME, False, I),
            ("images_collected", T.UINT, False, I),
            ("max_image_number", T.UINT, False, I),
            ("images_sent", T.UINT, False, I),
            ("data_collection_efficiency", T.FLOAT, False, I),
            ("max_receiver_delay", T.UINT, False, I),
            ("adu_histogram", T.ANY, False, I),
            ("indexing_rate", T.FLOAT, False, I),
            ("bkg_estimate", T.FLOAT, False, I),
            ("rotation_lattice", T.FLOAT_LIST, False, I),
            ("write_master_file", T.BOOL, False, I),
            ("user_data", T.ANY, False, I),
        ],
    )
    + _rows(
        "calibration",
        [
            ("series_id", T.UINT, False, I),
            ("series_unique_id", T.TEXT, False, I),
            ("name", T.TEXT, False, I),
            ("data", T.ANY, False, I),
        ],
    )
    + _rows(
        "metadata",
        [
            ("series_id", T.UINT, False, I),
            ("series_unique_id", T.TEXT, False, I),
            ("images", T.MAP_LIST, True, C),
        ],
    )
)

SCHEMA: dict[str, dict[str, FieldSpec]] = {}
for _spec in FIELDS:
    SCHEMA.setdefault(_spec.message, {})[_spec.name] = _spec

_MEMBER_ROWS: tuple[FieldSpec, ...] = tuple(
    _rows(
        "start.grid_scan",
        [
            ("n_fast", T.UINT, True, I),
            ("n_slow", T.UINT, True, I),
            ("step_x_um", T.FLOAT, True, I),
            ("step_y_um", T.FLOAT, True, I),
            ("snake", T.BOOL, False, I),
            ("vertical", T.BOOL, False, I),
        ],
    )
    + _rows(
        "image.spots",
        [
            ("x", T.FLOAT, True, I),
            ("y", T.FLOAT, True, I),
            ("I", T.FLOAT, True, I),
            ("ice_ring", T.BOOL, False, I),
            ("indexed", T.BOOL, False, I),
            ("h", T.INT, False, I),
            ("k", T.INT, False, I),
            ("l", T.INT, False, I),
            ("dist_ewald", T.FLOAT, False, I),
            ("lattice", T.INT, False, I),
        ],
    )
    + _rows(
        "image.reflections",
        [
            ("h", T.INT, True, I),
            ("k", T.INT, True, I),
            ("l", T.INT, True, I),
            ("d", T.FLOAT, False, I),
            ("I", T.FLOAT, False, I),
            ("sigma", T.FLOAT, False, I),
            ("bkg", T.FLOAT, False, I),
            ("x", T.FLOAT, False, I),
            ("y", T.FLOAT, False, I),
            ("obs_x", T.FLOAT, False, I),
            ("obs_y", T.FLOAT, False, I),
            ("lp", T.FLOAT, False, I),
            ("partiality", T.FLOAT, False, I),
            ("delta_phi", T.FLOAT, False, I),
            ("zeta", T.FLOAT, False, I),
            ("image_scale_corr", T.FLOAT, False, I),
        ],
    )
    + _rows(
        "image.roi_integrals",
        [
            ("sum", T.INT, True, C),
            ("sum_square", T.INT, False, I),
            ("max_count", T.INT, False, I),
            ("pixels", T.UINT, False, I),
            ("x_weighted", T.FLOAT, False, I),
            ("y_weighted", T.FLOAT, False, I),
        ],
    )
)

MEMBERS: dict[str, dict[str, FieldSpec]] = {}
"""Keys of the maps inside container fields, by ``"<message>.<field>"``.

For ``roi_integrals`` (map of ROI name → map) the rows describe each inner map. The
entries of the metadata message's ``images`` follow the image message's own table.
"""
for _spec in _MEMBER_ROWS:
    MEMBERS.setdefault(_spec.message, {})[_spec.name] = _spec
MEMBERS["metadata.images"] = SCHEMA["image"]


def member_specs(message: str, name: str) -> dict[str, FieldSpec] | None:
    """The rows for the keys inside field ``name`` of a ``message``, or None if not tabled.

    ``required`` in these rows documents what a producer always sends; decoding does not
    enforce it (receivers must tolerate missing analysis keys).
    """
    return MEMBERS.get(f"{message}.{name}")


def field_spec(message: str, name: str) -> FieldSpec | None:
    """The row for ``name`` in a ``message``-type message, or None for an unknown key."""
    table = SCHEMA.get(message)
    return None if table is None else table.get(name)


_REQUIRED: dict[str, tuple[str, ...]] = {
    message: tuple(name for name, spec in table.items() if spec.required)
    for message, table in SCHEMA.items()
}


def required_fields(message: str) -> tuple[str, ...]:
    """Names a ``message``-type message must carry (besides ``type``)."""
    return _REQUIRED.get(message, ())
