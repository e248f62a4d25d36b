"""The field table: every wire name jfsim knows, with its type, confidence and HDF5 home.

This is the ONE place where names live that stream.md marks [inferred]; correcting the
Jungfraujoch schema (once the full CBOR.md is in hand) means editing rows here only. The
encoder uses the table to write Float fields as CBOR floats, the strict decoder to check
types and required fields. Keys not in the table are accepted and kept as they are.
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
    hdf5: str = ""


T = WireType
C = Confidence.CONFIRMED
V = Confidence.VERIFIED
I = Confidence.INFERRED  # noqa: E741 - short column marker


def _rows(message: str, rows: list[tuple]) -> list[FieldSpec]:
    return [FieldSpec(name, message, *rest) for name, *rest in rows]


_DET = "/entry/instrument/detector"
_SPEC = f"{_DET}/detectorSpecific"

FIELDS: tuple[FieldSpec, ...] = tuple(
    _rows(
        "start",
        [
            ("series_id", T.UINT, True, C, "not saved"),
            ("series_unique_id", T.TEXT, True, C, "not saved"),
            ("arm_date", T.DATETIME, False, C, "/entry/start_time"),
            ("beam_center_x", T.FLOAT, False, C, f"{_DET}/beam_center_x"),
            ("beam_center_y", T.FLOAT, False, C, f"{_DET}/beam_center_y"),
            ("channels", T.TEXT_LIST, False, C, ""),
            ("count_time", T.FLOAT, False, C, f"{_DET}/count_time"),
            (
                "countrate_correction_enabled",
                T.BOOL,
                False,
                C,
                f"{_DET}/countrate_correction_applied",
            ),
            ("countrate_correction_lookup_table", T.TYPED_ARRAY, False, C, ""),
            ("detector_description", T.TEXT, False, C, f"{_DET}/description"),
            ("detector_serial_number", T.TEXT, False, C, f"{_DET}/serial_number"),
            ("detector_translation", T.FLOAT_LIST, False, C, ""),
            ("flatfield", T.CHANNELS, False, C, ""),
            ("flatfield_enabled", T.BOOL, False, C, f"{_DET}/flatfield_applied"),
            ("frame_time", T.FLOAT, False, C, f"{_DET}/frame_time"),
            ("goniometer", T.AXIS_MAP, False, C, "/entry/sample/transformations/<axis>"),
            ("image_dtype", T.TEXT, False, C, ""),
            ("image_size_x", T.UINT, False, C, f"{_SPEC}/x_pixels_in_detector"),
            ("image_size_y", T.UINT, False, C, f"{_SPEC}/y_pixels_in_detector"),
            ("incident_energy", T.FLOAT, False, C, "/entry/instrument/beam/incident_energy"),
            (
                "incident_wavelength",
                T.FLOAT,
                False,
                C,
                "/entry/instrument/beam/incident_wavelength",
            ),
            ("number_of_images", T.UINT, False, C, f"{_SPEC}/nimages"),
            ("pixel_mask", T.CHANNELS, False, C, f"{_SPEC}/pixel_mask"),
            ("pixel_mask_enabled", T.BOOL, False, C, f"{_DET}/pixel_mask_applied"),
            ("pixel_size_x", T.FLOAT, False, C, f"{_DET}/x_pixel_size"),
            ("pixel_size_y", T.FLOAT, False, C, f"{_DET}/y_pixel_size"),
            ("saturation_value", T.INT, False, C, f"{_DET}/saturation_value"),
            ("sensor_material", T.TEXT, False, C, f"{_DET}/sensor_material"),
            ("sensor_thickness", T.FLOAT, False, C, f"{_DET}/sensor_thickness"),
            ("threshold_energy", T.FLOAT_MAP, False, C, f"{_DET}/threshold_energy"),
            ("user_data", T.ANY, False, C, "/entry/user/* (user.hdf5 only)"),
            ("virtual_pixel_interpolation_enabled", T.BOOL, False, C, ""),
            ("magic_number", T.UINT, False, C, ""),
            ("detector_distance", T.FLOAT, False, C, f"{_DET}/distance"),
            ("error_value", T.INT, False, C, f"{_DET}/error_value"),
            ("experiment_group", T.TEXT, False, I, ""),
            ("file_prefix", T.TEXT, False, I, "data file names"),
            ("images_per_file", T.UINT, False, I, "data-file split"),
            ("file_format", T.ANY, False, I, "master layout"),
            ("overwrite", T.BOOL, False, I, ""),
            ("write_master_file", T.BOOL, False, I, ""),
            # jfsim's own: how many image sockets share the series (jfjoch_broker sends none)
            ("image_sockets", T.UINT, False, I, "which data files a writer should receive"),
            ("writer_notification_zmq_addr", T.TEXT, False, I, ""),
            ("sample_name", T.TEXT, False, I, "/entry/sample/name"),
            ("run_name", T.TEXT, False, I, ""),
            ("run_number", T.UINT, False, I, ""),
            ("space_group_number", T.UINT, False, I, ""),
            ("unit_cell", T.FLOAT_MAP, False, I, "/entry/sample/unit_cell"),
            ("grid_scan", T.MAP, False, I, "/entry/sample/transformations/{sample_x,sample_y}"),
            ("poni_rot1", T.FLOAT, False, I, f"{_DET}/transformations/rot1"),
            ("poni_rot2", T.FLOAT, False, I, f"{_DET}/transformations/rot2"),
            ("poni_rot3", T.FLOAT, False, I, f"{_DET}/transformations/rot3"),
            ("source_name", T.TEXT, False, I, "/entry/source/name"),
            ("source_type", T.TEXT, False, I, "/entry/source/type"),
            ("instrument_name", T.TEXT, False, I, "/entry/instrument/name"),
            ("pulsed_source", T.BOOL, False, I, ""),
            ("total_flux", T.FLOAT, False, I, "/entry/instrument/beam/total_flux"),
            (
                "attenuator_transmission",
                T.FLOAT,
                False,
                I,
                "/entry/instrument/attenuator/attenuator_transmission",
            ),
            ("beam_size_x", T.FLOAT, False, I, "incident_beam_size"),
            ("beam_size_y", T.FLOAT, False, I, "incident_beam_size"),
            ("sample_temperature", T.FLOAT, False, I, "/entry/sample/temperature"),
            ("ring_current", T.FLOAT, False, I, "/entry/source/current"),
            ("polarization_factor", T.FLOAT, False, I, ""),
            ("bit_depth_image", T.UINT, False, I, f"{_DET}/bit_depth_image"),
            ("bit_depth_readout", T.UINT, False, I, f"{_DET}/bit_depth_readout"),
            ("summation", T.UINT, False, I, f"{_DET}/number_of_cycles"),
            ("storage_cell_number", T.UINT, False, I, f"{_SPEC}/storage_cell_number"),
            ("storage_cell_delay", T.UINT, False, I, f"{_SPEC}/storage_cell_delay"),
            (
                "jungfrau_conversion_applied",
                T.BOOL,
                False,
                I,
                f"{_DET}/jungfrau_conversion_applied",
            ),
            ("jungfrau_conversion_factor", T.FLOAT, False, I, f"{_DET}/jungfrau_conversion_factor"),
            (
                "geometry_transformation_applied",
                T.BOOL,
                False,
                I,
                f"{_DET}/geometry_transformation_applied",
            ),
            ("detector_number", T.TEXT, False, I, f"{_DET}/detector_number"),
            ("jfjoch_release", T.TEXT, False, I, f"{_SPEC}/jfjoch_release"),
            ("software_git_commit", T.TEXT, False, I, f"{_SPEC}/software_git_commit"),
            ("software_git_date", T.TEXT, False, I, f"{_SPEC}/software_git_date"),
            ("gain_file_names", T.TEXT_LIST, False, I, f"{_SPEC}/gain_file_names"),
            (
                "data_reduction_factor_serialmx",
                T.FLOAT,
                False,
                I,
                f"{_SPEC}/data_reduction_factor_serialmx",
            ),
            ("detect_ice_rings", T.BOOL, False, I, f"{_SPEC}/detect_ice_rings"),
            ("max_spot_count", T.UINT, False, I, "shape of /entry/MX/peak*"),
            ("indexing_algorithm", T.TEXT, False, I, "/entry/MX/indexing_algorithm"),
            ("geom_refinement_algorithm", T.TEXT, False, I, "/entry/MX/geom_refinement_algorithm"),
            ("az_int_bin_to_q", T.FLOAT_LIST, False, C, "/entry/azint/bin_to_q"),
            ("az_int_bin_to_two_theta", T.FLOAT_LIST, False, I, "/entry/azint/bin_to_two_theta"),
            ("az_int_bin_to_phi", T.FLOAT_LIST, False, I, "/entry/azint/bin_to_phi"),
            ("az_int_q_bin_count", T.UINT, False, I, "shape of /entry/azint/image"),
            ("az_int_phi_bin_count", T.UINT, False, I, "shape of /entry/azint/image"),
            ("rois", T.MAP, False, I, "/entry/roi_defs/<name>/*"),
            ("fluorescence", T.MAP, False, I, "/entry/instrument/fluorescence/*"),
        ],
    )
    + _rows(
        "image",
        [
            ("series_id", T.UINT, True, C, ""),
            ("series_unique_id", T.TEXT, True, C, ""),
            ("image_id", T.UINT, True, C, "position in /entry/data/data"),
            ("real_time", T.RATIONAL, False, V, ""),
            ("series_date", T.DATETIME, False, V, ""),
            ("start_time", T.RATIONAL, False, V, ""),
            ("stop_time", T.RATIONAL, False, V, ""),
            ("user_data", T.ANY, False, C, ""),
            ("data", T.CHANNELS, True, C, "/entry/data/data (one chunk per image)"),
            ("indexing_result", T.BOOL, False, C, "/entry/MX/imageIndexed"),
            ("indexing_unit_cell", T.FLOAT_MAP, False, C, ""),
            ("az_int_profile", T.FLOAT_LIST, False, C, "/entry/azint/image"),
            ("xfel_pulse_id", T.UINT, False, C, "/entry/xfel/pulseID"),
            ("roi_integrals", T.MAP_OF_MAPS, False, C, "/entry/roi/<name>/*"),
            ("xfel_event_code", T.UINT, False, I, "/entry/xfel/eventCode"),
            ("spots", T.MAP_LIST, False, I, "/entry/MX/peak*; count → nPeaks"),
            ("spot_count", T.UINT, False, I, "/entry/MX/peakCountUnfiltered"),
            ("spot_count_low_res", T.UINT, False, I, "/entry/MX/peakCountLowRes"),
            ("spot_count_ice_rings", T.UINT, False, I, "/entry/MX/peakCountIceRingRes"),
            ("spot_count_indexed", T.UINT, False, I, "/entry/MX/peakCountIndexed"),
            ("strong_pixel_count", T.UINT, False, I, "/entry/MX/strongPixels"),
            ("indexing_lattice", T.FLOAT_LIST, False, I, "/entry/MX/latticeIndexed"),
            ("indexing_lattice_count", T.UINT, False, I, "/entry/MX/indexingLatticeCount"),
            ("niggli_class", T.UINT, False, I, "/entry/MX/niggliClass"),
            ("bravais_lattice", T.TEXT, False, I, "/entry/MX/bravaisLattice"),
            ("profile_radius", T.FLOAT, False, I, "/entry/MX/profileRadius"),
            ("mosaicity", T.FLOAT, False, I, "/entry/MX/mosaicity"),
            ("b_factor", T.FLOAT, False, I, "/entry/MX/bFactor"),
            ("resolution_estimate", T.FLOAT, False, I, "/entry/MX/resolutionEstimate"),
            ("bkg_estimate", T.FLOAT, False, I, "/entry/MX/bkgEstimate"),
            ("beam_corr_x", T.FLOAT, False, I, "/entry/MX/beam_corr_x"),
            ("beam_corr_y", T.FLOAT, False, I, "/entry/MX/beam_corr_y"),
            ("reflections", T.MAP_LIST, False, I, "/entry/reflections/image_NNNNNN/*"),
            ("integrated_reflections", T.UINT, False, I, "/entry/MX/integratedReflections"),
            ("az_int_profile_std", T.FLOAT_LIST, False, I, "/entry/azint/image_std"),
            ("az_int_profile_count", T.FLOAT_LIST, False, I, "/entry/azint/image_count"),
            ("max_viable_pixel_value", T.INT, False, I, "/entry/image/max_value"),
            ("min_viable_pixel_value", T.INT, False, I, "/entry/image/min_value"),
            ("error_pixel_count", T.UINT, False, I, "/entry/image/error_pixels"),
            ("saturated_pixel_count", T.UINT, False, I, "/entry/image/saturated_pixels"),
            ("pixel_sum", T.INT, False, I, "/entry/image/pixel_sum"),
            ("storage_cell", T.UINT, False, I, f"{_DET}/storage_cell_image"),
            ("packets_expected", T.UINT, False, I, f"{_DET}/packets_expected"),
            ("packets_received", T.UINT, False, I, f"{_DET}/packets_received"),
            (
                "data_collection_efficiency",
                T.FLOAT,
                False,
                I,
                f"{_DET}/data_collection_efficiency_image",
            ),
            ("original_number", T.UINT, False, I, f"{_DET}/number"),
            ("image_scale_factor", T.FLOAT, False, I, "/entry/MX/imageScaleFactor"),
            ("image_scale_cc", T.FLOAT, False, I, "/entry/MX/imageScaleCC"),
            ("image_scale_mosaicity", T.FLOAT, False, I, "/entry/MX/imageScaleMosaicity"),
            ("image_scale_b_factor", T.FLOAT, False, I, "/entry/MX/imageScaleBFactor"),
            ("timestamp", T.TIME, False, I, f"{_DET}/timestamp"),
            ("exptime", T.TIME, False, I, f"{_DET}/exptime"),
            ("jf_info", T.UINT, False, I, f"{_DET}/det_info"),
            ("receiver_aq_dev_delay", T.UINT, False, I, f"{_DET}/rcv_delay"),
            ("receiver_free_send_buf", T.UINT, False, I, f"{_DET}/rcv_free_send_buffers"),
        ]
        + [
            (wire, T.FLOAT, False, I, f"/entry/profiling/{dataset}")
            for wire, dataset in (
                ("spot_finding_time", "spotFindingTime"),
                ("indexing_time", "indexingTime"),
                ("integration_time", "integrationTime"),
                ("refinement_time", "refinementTime"),
                ("processing_time", "processingTime"),
                ("bragg_prediction_time", "braggPredictionTime"),
                ("preprocessing_time", "preprocessingTime"),
                ("compression_time", "compressionTime"),
                ("az_int_time", "azIntTime"),
                ("index_analysis_time", "indexAnalysisTime"),
                ("image_scale_time", "imageScaleTime"),
            )
        ],
    )
    + _rows(
        "end",
        [
            ("series_id", T.UINT, True, C, ""),
            ("series_unique_id", T.TEXT, True, C, ""),
            ("end_date", T.DATETIME, False, I, "/entry/end_time"),
            ("images_collected", T.UINT, False, I, f"{_SPEC}/nimages_collected"),
            ("max_image_number", T.UINT, False, I, ""),
            ("images_sent", T.UINT, False, I, f"{_SPEC}/nimages_written"),
            (
                "data_collection_efficiency",
                T.FLOAT,
                False,
                I,
                f"{_SPEC}/data_collection_efficiency",
            ),
            ("max_receiver_delay", T.UINT, False, I, f"{_SPEC}/max_receiver_delay"),
            ("adu_histogram", T.ANY, False, I, f"{_SPEC}/adu_histogram/"),
            ("indexing_rate", T.FLOAT, False, I, "/entry/MX/imageIndexedMean"),
            ("bkg_estimate", T.FLOAT, False, I, "/entry/MX/bkgEstimateMean"),
            ("rotation_lattice", T.FLOAT_LIST, False, I, "/entry/MX/rotationLatticeIndexed"),
            ("write_master_file", T.BOOL, False, I, ""),
            ("user_data", T.ANY, False, I, ""),
        ],
    )
    + _rows(
        "calibration",
        [
            ("series_id", T.UINT, False, I, ""),
            ("series_unique_id", T.TEXT, False, I, ""),
            ("name", T.TEXT, False, I, f"{_DET}/calibration/<name>"),
            ("data", T.ANY, False, I, f"{_DET}/calibration/<name>"),
        ],
    )
    + _rows(
        "metadata",
        [
            ("series_id", T.UINT, False, I, ""),
            ("series_unique_id", T.TEXT, False, I, ""),
            ("images", T.MAP_LIST, True, C, ""),
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
            ("n_fast", T.UINT, True, I, "/entry/sample/transformations/sample_x (count)"),
            ("n_slow", T.UINT, True, I, "/entry/sample/transformations/sample_y (count)"),
            ("step_x_um", T.FLOAT, True, I, "/entry/sample/transformations/sample_x (step)"),
            ("step_y_um", T.FLOAT, True, I, "/entry/sample/transformations/sample_y (step)"),
            ("snake", T.BOOL, False, I, "order of sample_x/sample_y values"),
            ("vertical", T.BOOL, False, I, "order of sample_x/sample_y values"),
        ],
    )
    + _rows(
        "image.spots",
        [
            ("x", T.FLOAT, True, I, "/entry/MX/peakXPosRaw"),
            ("y", T.FLOAT, True, I, "/entry/MX/peakYPosRaw"),
            ("I", T.FLOAT, True, I, "/entry/MX/peakTotalIntensity"),
            ("ice_ring", T.BOOL, False, I, "/entry/MX/peakIceRingRes"),
            ("indexed", T.BOOL, False, I, "/entry/MX/peakIndexed"),
            ("h", T.INT, False, I, "/entry/MX/peakH"),
            ("k", T.INT, False, I, "/entry/MX/peakK"),
            ("l", T.INT, False, I, "/entry/MX/peakL"),
            ("dist_ewald", T.FLOAT, False, I, "/entry/MX/peakDistEwaldSphere"),
            ("lattice", T.INT, False, I, "/entry/MX/peakLattice"),
        ],
    )
    + _rows(
        "image.reflections",
        [
            ("h", T.INT, True, I, "/entry/reflections/image_NNNNNN/h"),
            ("k", T.INT, True, I, "/entry/reflections/image_NNNNNN/k"),
            ("l", T.INT, True, I, "/entry/reflections/image_NNNNNN/l"),
            ("d", T.FLOAT, False, I, "/entry/reflections/image_NNNNNN/d"),
            ("I", T.FLOAT, False, I, "/entry/reflections/image_NNNNNN/int_sum"),
            ("sigma", T.FLOAT, False, I, "/entry/reflections/image_NNNNNN/int_err"),
            ("bkg", T.FLOAT, False, I, "/entry/reflections/image_NNNNNN/background_mean"),
            ("x", T.FLOAT, False, I, "/entry/reflections/image_NNNNNN/predicted_x"),
            ("y", T.FLOAT, False, I, "/entry/reflections/image_NNNNNN/predicted_y"),
            ("obs_x", T.FLOAT, False, I, "/entry/reflections/image_NNNNNN/observed_x"),
            ("obs_y", T.FLOAT, False, I, "/entry/reflections/image_NNNNNN/observed_y"),
            ("lp", T.FLOAT, False, I, "/entry/reflections/image_NNNNNN/lp"),
            ("partiality", T.FLOAT, False, I, "/entry/reflections/image_NNNNNN/partiality"),
            ("delta_phi", T.FLOAT, False, I, "/entry/reflections/image_NNNNNN/delta_phi"),
            ("zeta", T.FLOAT, False, I, "/entry/reflections/image_NNNNNN/zeta"),
            (
                "image_scale_corr",
                T.FLOAT,
                False,
                I,
                "/entry/reflections/image_NNNNNN/image_scale_corr",
            ),
        ],
    )
    + _rows(
        "image.roi_integrals",
        [
            ("sum", T.INT, True, C, "/entry/roi/<name>/sum"),
            ("sum_square", T.INT, False, I, "/entry/roi/<name>/sum_sq"),
            ("max_count", T.INT, False, I, "/entry/roi/<name>/max"),
            ("pixels", T.UINT, False, I, "/entry/roi/<name>/npixel"),
            ("x_weighted", T.FLOAT, False, I, "/entry/roi/<name>/x"),
            ("y_weighted", T.FLOAT, False, I, "/entry/roi/<name>/y"),
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
