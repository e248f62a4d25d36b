"""NXmx metadata of the master file, from the start and end messages (S1 §3, §4.9-4.11).

Wire units (m, eV, degrees) are what NXmx stores, so values pass through unchanged; only
names and places change. Geometry follows physics.md §2.1: fast = (-1, 0, 0), slow =
(0, -1, 0) in McStas, beam centre in continuous pixel coordinates (pixel i covers [i, i+1)),
so the corner of pixel (0, 0) sits at (bx·p, by·p) from the beam spot.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from jfsim import __version__
from jfsim.geometry import rotation_matrix
from jfsim.protocol import Compression, PixelArray, ProtocolError
from jfsim.units import ev_to_kev, kev_to_angstrom
from jfsim.writer.datafile import set_nx_class
from jfsim.writer.mask import PixelMask
from jfsim.writer.plan import SeriesPlan

DETECTOR = "/entry/instrument/detector"
DETECTOR_TRANSFORMATIONS = f"{DETECTOR}/transformations"
MODULE = f"{DETECTOR}/module"
FAST_PIXEL_VECTOR = (-1.0, 0.0, 0.0)
SLOW_PIXEL_VECTOR = (0.0, -1.0, 0.0)
#: pyFAI's PONI rotation axes in McStas (right-handed, active). pyFAI rotates the detector
#: about the sample, rot1 first: X = R(rot3)·R(rot2)·R(rot1)·(D ẑ + p). Its axes (t1 slow,
#: t2 fast, t3 beam) map to McStas by a mirror for the default orientation (t1 → -y,
#: t2 → -x), which flips the sense of rot3 (checked against jfsim.geometry).
PONI_ROTATION_VECTORS = {
    "rot1": (0.0, -1.0, 0.0),
    "rot2": (-1.0, 0.0, 0.0),
    "rot3": (0.0, 0.0, -1.0),
}
#: The detector chain in Jungfraujoch's names and order (seed 001 §3), from the detector's
#: ``depends_on`` outwards: rot3 → rot2 → rot1 → translation → ``.``.
DETECTOR_CHAIN = ("rot3", "rot2", "rot1", "translation")
DEFAULT_ROTATION_VECTOR = (-1.0, 0.0, 0.0)


def iso_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` and milliseconds (strict parsers accept it)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "Z"


def _put(group: h5py.Group, name: str, value: Any, units: str | None = None) -> h5py.Dataset:
    if isinstance(value, str):
        dataset = group.create_dataset(name, data=value, dtype=h5py.string_dtype())
    else:
        dataset = group.create_dataset(name, data=value)
    if units is not None:
        dataset.attrs["units"] = units
    return dataset


def _put_if(
    group: h5py.Group, name: str, fields: Mapping[str, Any], key: str, units: str | None = None
) -> None:
    value = fields.get(key)
    if isinstance(value, bool):
        _put(group, name, np.bool_(value))
    elif isinstance(value, (int, float, str)):
        _put(group, name, value, units)
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        _put(group, name, np.array(value, dtype=h5py.string_dtype()))


def _axis(
    group: h5py.Group,
    name: str,
    value: Any,
    *,
    kind: str,
    vector: tuple[float, ...],
    units: str,
    depends_on: str,
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> h5py.Dataset:
    dataset = group.create_dataset(name, data=value)
    dataset.attrs["transformation_type"] = kind
    dataset.attrs["vector"] = np.asarray(vector, dtype="f8")
    dataset.attrs["offset"] = np.asarray(offset, dtype="f8")
    dataset.attrs["offset_units"] = "m"
    dataset.attrs["units"] = units
    dataset.attrs["depends_on"] = depends_on
    return dataset


def _as_array(value: Any) -> np.ndarray | None:
    """A wire array (PixelArray, numpy array or list of numbers) as numpy, else None."""
    if isinstance(value, PixelArray):
        try:
            return value.to_numpy()
        except ProtocolError:
            return None
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        return np.asarray(value)
    return None


def _bitshuffle() -> dict[str, Any]:
    return dict(hdf5plugin.Bitshuffle(cname="lz4"))


def _group(parent: h5py.Group, name: str, nx_class: str) -> h5py.Group:
    return set_nx_class(parent.require_group(name), nx_class)


def write_nxmx_metadata(
    h5: h5py.File,
    start: Mapping[str, Any],
    end: Mapping[str, Any] | None,
    plan: SeriesPlan,
    received: np.ndarray,
    state: str,
    pixel_mask: PixelMask,
) -> list[str]:
    """Write every NXmx group except ``/entry/data``; returns problems (skipped values).

    Args:
        received: ``[n_images]`` bool, which images were written.
        state: ``completed`` (end message seen), ``cancelled`` or ``interrupted``.
        pixel_mask: the series' mask (zeros when the start message had none); its bytes
            are still being written when this returns: call ``pixel_mask.finish()`` before
            closing the file.
    """
    problems: list[str] = []
    h5.attrs["file_time"] = iso_time(datetime.now(timezone.utc))
    h5.attrs["HDF5_Version"] = h5py.version.hdf5_version
    h5.attrs["creator"] = f"jfsim write {__version__}"
    h5.attrs["NX_class"] = "NXroot"
    h5.attrs["default"] = "entry"
    entry = _group(h5, "entry", "NXentry")
    entry.attrs["default"] = "data"
    _put(entry, "definition", "NXmx")
    _write_times(entry, start, end, plan)
    _write_source(entry, start)
    instrument = _group(entry, "instrument", "NXinstrument")
    _put(instrument, "name", str(start.get("instrument_name") or "jfsim"))
    instrument["name"].attrs["short_name"] = str(start.get("instrument_name") or "jfsim")
    _put(instrument, "time_zone", "+00:00")  # every time in the file is UTC
    detector_group = _group(instrument, "detector_group", "NXdetector_group")
    _put(detector_group, "group_names", np.array(["detector"], dtype=h5py.string_dtype()))
    _put(detector_group, "group_index", np.array([1], dtype="i4"))
    _put(detector_group, "group_parent", np.array([-1], dtype="i4"))
    _write_beam(instrument, start, plan)
    if isinstance(start.get("attenuator_transmission"), (int, float)):
        attenuator = _group(instrument, "attenuator", "NXattenuator")
        _put(attenuator, "attenuator_transmission", float(start["attenuator_transmission"]))
    detector = _group(instrument, "detector", "NXdetector")
    _write_detector(detector, start, plan)
    _write_detector_specific(detector, start, end, plan, received, state, pixel_mask)
    _write_detector_geometry(detector, start, plan)
    _write_sample(entry, start, plan)
    _write_fluorescence(instrument, start)
    problems += _write_user(entry, start)
    _write_run_summaries(entry, start, end, plan)
    return problems


def _write_times(
    entry: h5py.Group, start: Mapping[str, Any], end: Mapping[str, Any] | None, plan: SeriesPlan
) -> None:
    arm_date = start.get("arm_date")
    start_time = arm_date if isinstance(arm_date, datetime) else datetime.now(timezone.utc)
    _put(entry, "start_time", iso_time(start_time))
    end_date = end.get("end_date") if end else None
    if isinstance(end_date, datetime):
        _put(entry, "end_time", iso_time(end_date))
        _put(entry, "end_time_estimated", iso_time(end_date))
    else:
        frame_time_s = start.get("frame_time")
        duration_s = plan.n_images * frame_time_s if isinstance(frame_time_s, float) else 0.0
        _put(entry, "end_time_estimated", iso_time(start_time + timedelta(seconds=duration_s)))


def _write_source(entry: h5py.Group, start: Mapping[str, Any]) -> None:
    source = _group(entry, "source", "NXsource")
    name = str(start.get("source_name") or "jfsim synthetic source")
    _put(source, "name", name)
    _put_if(source, "type", start, "source_type")
    _put_if(source, "current", start, "ring_current", "mA")


def _write_beam(instrument: h5py.Group, start: Mapping[str, Any], plan: SeriesPlan) -> None:
    beam = _group(instrument, "beam", "NXbeam")
    wavelength_A = start.get("incident_wavelength")
    if not isinstance(wavelength_A, (int, float)):
        energy_eV = start.get("incident_energy")
        if isinstance(energy_eV, (int, float)) and energy_eV > 0:
            wavelength_A = kev_to_angstrom(ev_to_kev(energy_eV))
        else:
            wavelength_A = float("nan")
    _put(beam, "incident_wavelength", float(wavelength_A), "angstrom")
    _put_if(beam, "total_flux", start, "total_flux", "Hz")
    polarization = start.get("polarization_factor")
    if isinstance(polarization, (int, float)):
        # pyFAI's factor is the horizontal degree of linear polarisation: Stokes (1, p, 0, 0).
        stokes = np.tile([1.0, float(polarization), 0.0, 0.0], (plan.n_images, 1))
        _put(beam, "incident_polarization_stokes", stokes)
    if isinstance(start.get("beam_size_x"), (int, float)) and isinstance(
        start.get("beam_size_y"), (int, float)
    ):
        size = [float(start["beam_size_x"]), float(start["beam_size_y"])]
        _put(beam, "incident_beam_size", np.asarray(size), "um")


def _write_detector(detector: h5py.Group, start: Mapping[str, Any], plan: SeriesPlan) -> None:
    _put(detector, "depends_on", f"{DETECTOR_TRANSFORMATIONS}/{DETECTOR_CHAIN[0]}")
    _put(detector, "description", str(start.get("detector_description") or "jfsim detector"))
    _put_if(detector, "serial_number", start, "detector_serial_number")
    _put_if(detector, "detector_number", start, "detector_number")
    _put_if(detector, "beam_center_x", start, "beam_center_x", "pixel")
    _put_if(detector, "beam_center_y", start, "beam_center_y", "pixel")
    _put_if(detector, "distance", start, "detector_distance", "m")
    _put(detector, "distance_derived", np.bool_(True))  # equals the transformation chain
    _put_if(detector, "detector_distance", start, "detector_distance", "m")
    _put_if(detector, "count_time", start, "count_time", "s")
    _put_if(detector, "frame_time", start, "frame_time", "s")
    _put_if(detector, "sensor_material", start, "sensor_material")
    _put_if(detector, "sensor_thickness", start, "sensor_thickness", "m")
    _put_if(detector, "x_pixel_size", start, "pixel_size_x", "m")
    _put_if(detector, "y_pixel_size", start, "pixel_size_y", "m")
    threshold = start.get("threshold_energy")
    if isinstance(threshold, Mapping) and len(threshold) == 1:
        threshold = next(iter(threshold.values()))
    if isinstance(threshold, (int, float)):
        _put(detector, "threshold_energy", float(threshold), "eV")
    bit_depth_image = plan.image_dtype.itemsize * 8
    readout = start.get("bit_depth_readout", bit_depth_image)
    _put(detector, "bit_depth_readout", np.int32(readout if isinstance(readout, int) else 16))
    _put(detector, "bit_depth_image", np.int32(bit_depth_image))
    _put_if(detector, "saturation_value", start, "saturation_value")
    if plan.image_dtype.kind == "i":
        # Jungfraujoch writes the error value of signed images as underload_value: readers
        # that trust (underload, saturation) exclusive (DIALS, XDS via flag < underload + 1)
        # then drop gap and error pixels even without the mask. Unsigned images have none:
        # 0 is a valid count, and their error value lies above saturation.
        _put(detector, "underload_value", np.int64(plan.error_value))
    _put(detector, "error_value", np.int64(plan.error_value))
    _put(detector, "flatfield_applied", np.bool_(bool(start.get("flatfield_enabled", False))))
    _put(detector, "pixel_mask_applied", np.bool_(bool(start.get("pixel_mask_enabled", False))))
    _put(
        detector,
        "countrate_correction_applied",
        np.bool_(bool(start.get("countrate_correction_enabled", False))),
    )
    summation = start.get("summation")
    _put(detector, "number_of_cycles", np.int64(summation if isinstance(summation, int) else 1))
    _put(detector, "acquisition_type", "triggered")
    _put(detector, "type", "pixel")
    for flag in ("jungfrau_conversion_applied", "geometry_transformation_applied"):
        _put_if(detector, flag, start, flag)
    if isinstance(start.get("virtual_pixel_interpolation_enabled"), bool):
        interpolated = np.bool_(start["virtual_pixel_interpolation_enabled"])
        _put(detector, "virtual_pixel_interpolation_applied", interpolated)
    flatfields = start.get("flatfield")
    flatfield = _as_array(flatfields.get("default")) if isinstance(flatfields, Mapping) else None
    if flatfield is not None and flatfield.shape == plan.image_shape:
        detector.create_dataset(
            "flatfield", data=flatfield.astype("f4"), chunks=flatfield.shape, **_bitshuffle()
        )
    lookup = _as_array(start.get("countrate_correction_lookup_table"))
    if lookup is not None and lookup.ndim == 1:
        _put(detector, "countrate_correction_lookup_table", lookup)
    _put_if(detector, "jungfrau_conversion_factor", start, "jungfrau_conversion_factor", "eV")


def _write_detector_specific(
    detector: h5py.Group,
    start: Mapping[str, Any],
    end: Mapping[str, Any] | None,
    plan: SeriesPlan,
    received: np.ndarray,
    state: str,
    pixel_mask: PixelMask,
) -> None:
    specific = _group(detector, "detectorSpecific", "NXcollection")
    height, width = plan.image_shape
    _put(specific, "x_pixels_in_detector", np.int64(width))
    _put(specific, "y_pixels_in_detector", np.int64(height))
    _put(specific, "nimages", np.int64(plan.n_images))
    _put(specific, "ntrigger", np.int64(1))
    collected = end.get("images_collected") if end else None
    if not isinstance(collected, int):
        collected = int(received.sum())
    _put(specific, "nimages_collected", np.int64(collected))
    _put(specific, "nimages_written", np.int64(received.sum()))
    _put(specific, "image_received", received.astype("u1"))
    _put(specific, "series_state", state)
    if end:
        _put_if(specific, "data_collection_efficiency", end, "data_collection_efficiency")
        _put_if(specific, "max_receiver_delay", end, "max_receiver_delay")
    for key in (
        "storage_cell_number",
        "software_git_commit",
        "software_git_date",
        "jfjoch_release",
        "detect_ice_rings",
        "gain_file_names",
        "data_reduction_factor_serialmx",
    ):
        _put_if(specific, key, start, key)
    _put_if(specific, "storage_cell_delay", start, "storage_cell_delay", "ns")
    _put_if(specific, "summation_mode", start, "summation")
    _put(specific, "jfjoch_writer_release", f"jfsim {__version__}")
    # Contiguous (not chunked) uint32: Neggia's requirement (conformance.md §5.3); its bytes
    # are written by a thread while the rest of the master is (jfsim.writer.mask).
    detector["pixel_mask"] = pixel_mask.store(specific, "pixel_mask")


def poni_chain_axes(
    rot1_rad: float, rot2_rad: float, rot3_rad: float
) -> dict[str, tuple[float, float, float]]:
    """Unit vectors of Jungfraujoch's detector chain that reproduce pyFAI's geometry exactly.

    NeXus applies ``depends_on`` → rot3 → rot2 → rot1 → translation as
    X = T·R(v1, rot1)·R(v2, rot2)·R(v3, rot3)·p, the reverse of pyFAI's R3·R2·R1. Since
    R(Q·e, a) = Q·R(e, a)·Qᵀ, the product equals pyFAI's when each axis is pyFAI's carried
    through the rotations pyFAI applies after it: v3 = e3, v2 = R3·e2, v1 = R3·R2·e1. The
    translation then points along R·ẑ, so that the PONI sits at distance D from the sample.
    Untilted, these are the plain axes and ẑ.
    """
    turn3 = rotation_matrix(PONI_ROTATION_VECTORS["rot3"], rot3_rad)
    turn32 = turn3 @ rotation_matrix(PONI_ROTATION_VECTORS["rot2"], rot2_rad)
    turn321 = turn32 @ rotation_matrix(PONI_ROTATION_VECTORS["rot1"], rot1_rad)
    vectors = {
        "rot3": np.asarray(PONI_ROTATION_VECTORS["rot3"]),
        "rot2": turn3 @ PONI_ROTATION_VECTORS["rot2"],
        "rot1": turn32 @ PONI_ROTATION_VECTORS["rot1"],
        "translation": turn321 @ np.array([0.0, 0.0, 1.0]),
    }
    return {name: (float(x), float(y), float(z)) for name, (x, y, z) in vectors.items()}


def _poni_angle_rad(start: Mapping[str, Any], name: str) -> float:
    angle_rad = start.get(f"poni_{name}", 0.0)
    return float(angle_rad) if isinstance(angle_rad, (int, float)) else 0.0


def _write_detector_geometry(
    detector: h5py.Group, start: Mapping[str, Any], plan: SeriesPlan
) -> None:
    transformations = _group(detector, "transformations", "NXtransformations")
    angles_rad = {name: _poni_angle_rad(start, name) for name in ("rot1", "rot2", "rot3")}
    vectors = poni_chain_axes(angles_rad["rot1"], angles_rad["rot2"], angles_rad["rot3"])
    for name, outer in zip(DETECTOR_CHAIN, (*DETECTOR_CHAIN[1:], None), strict=True):
        depends_on = "." if outer is None else f"{DETECTOR_TRANSFORMATIONS}/{outer}"
        if name == "translation":
            value, kind, units = float(start.get("detector_distance", 0.0)), "translation", "m"
        else:
            value, kind, units = angles_rad[name], "rotation", "rad"
        _axis(
            transformations,
            name,
            value,
            kind=kind,
            vector=vectors[name],
            units=units,
            depends_on=depends_on,
        )
    module = _group(detector, "module", "NXdetector_module")
    height, width = plan.image_shape
    _put(module, "data_origin", np.array([0, 0], dtype="i4"))
    _put(module, "data_size", np.array([height, width], dtype="i4"))
    _put(module, "data_stride", np.array([1, 1], dtype="i4"))
    pixel_x_m = float(start.get("pixel_size_x", 75e-6))
    pixel_y_m = float(start.get("pixel_size_y", pixel_x_m))
    corner_m = np.array(
        [
            float(start.get("beam_center_x", 0.0)) * pixel_x_m,
            float(start.get("beam_center_y", 0.0)) * pixel_y_m,
            0.0,
        ]
    )
    corner_length_m = float(np.linalg.norm(corner_m))
    corner_direction = corner_m / corner_length_m if corner_length_m > 0 else np.array([1.0, 0, 0])
    _axis(
        module,
        "module_offset",
        corner_length_m,
        kind="translation",
        vector=tuple(corner_direction),
        units="m",
        depends_on=f"{DETECTOR_TRANSFORMATIONS}/{DETECTOR_CHAIN[0]}",
    )
    for name, vector, size_m in (
        ("fast_pixel_direction", FAST_PIXEL_VECTOR, pixel_x_m),
        ("slow_pixel_direction", SLOW_PIXEL_VECTOR, pixel_y_m),
    ):
        _axis(
            module,
            name,
            size_m,
            kind="translation",
            vector=vector,
            units="m",
            depends_on=f"{MODULE}/module_offset",
        )


def _write_sample(entry: h5py.Group, start: Mapping[str, Any], plan: SeriesPlan) -> None:
    sample = _group(entry, "sample", "NXsample")
    _put(sample, "name", str(start.get("sample_name") or ""))
    _put_if(sample, "temperature", start, "sample_temperature", "K")
    cell = start.get("unit_cell")
    if isinstance(cell, Mapping) and all(
        isinstance(cell.get(k), (int, float)) for k in ("a", "b", "c", "alpha", "beta", "gamma")
    ):
        values = [float(cell[k]) for k in ("a", "b", "c", "alpha", "beta", "gamma")]
        _put(sample, "unit_cell", np.asarray(values))
    depends_on = "."
    goniometer = start.get("goniometer")
    grid = start.get("grid_scan")
    if isinstance(goniometer, Mapping) and goniometer:
        depends_on = _write_rotation(sample, goniometer, plan)
    elif isinstance(grid, Mapping):
        depends_on = _write_grid(sample, grid, plan)
    _put(sample, "depends_on", depends_on)
    if "transformations" in sample:
        sample["goniometer"] = sample["transformations"]


def scan_axis(goniometer: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The goniometer axis the series scans: the first with a non-zero ``increment``.

    DECTRIS start messages list every axis (``chi``, ``kappa``, ``omega``, ``phi``,
    ``two_theta``) and only the scanned one moves; when none moves (a still), ``omega`` if
    listed, else the first axis.
    """
    axes = {
        str(name): axis if isinstance(axis, Mapping) else {} for name, axis in goniometer.items()
    }
    for name, axis in axes.items():
        increment = axis.get("increment", 0.0)
        if isinstance(increment, (int, float)) and increment != 0:
            return name, axis
    name = "omega" if "omega" in axes else next(iter(axes))
    return name, axes[name]


def _write_rotation(sample: h5py.Group, goniometer: Mapping[str, Any], plan: SeriesPlan) -> str:
    name, axis = scan_axis(goniometer)
    name = name if name.isidentifier() else "omega"
    start_deg = float(axis.get("start", 0.0))
    increment_deg = float(axis.get("increment", 0.0))
    vector = axis.get("vector", DEFAULT_ROTATION_VECTOR)
    if not (isinstance(vector, (list, tuple)) and len(vector) == 3):
        vector = DEFAULT_ROTATION_VECTOR
    angles_deg = start_deg + increment_deg * np.arange(plan.n_images, dtype="f8")
    transformations = _group(sample, "transformations", "NXtransformations")
    _axis(
        transformations,
        name,
        angles_deg,
        kind="rotation",
        vector=tuple(float(v) for v in vector),
        units="deg",
        depends_on=".",
    )
    _put(transformations, f"{name}_end", angles_deg + increment_deg, "deg")
    _put(transformations, f"{name}_range_average", increment_deg, "deg")
    _put(transformations, f"{name}_range_total", increment_deg * plan.n_images, "deg")
    return f"/entry/sample/transformations/{name}"


def _write_grid(sample: h5py.Group, grid: Mapping[str, Any], plan: SeriesPlan) -> str:
    n_fast = max(1, int(grid.get("n_fast", 1)))
    image = np.arange(plan.n_images)
    row, column = image // n_fast, image % n_fast
    if grid.get("snake"):
        column = np.where(row % 2 == 1, n_fast - 1 - column, column)
    step_x_um = float(grid.get("step_x_um", 0.0))
    step_y_um = float(grid.get("step_y_um", 0.0))
    if grid.get("vertical"):
        x_um, y_um = row * step_x_um, column * step_y_um
    else:
        x_um, y_um = column * step_x_um, row * step_y_um
    transformations = _group(sample, "transformations", "NXtransformations")
    base = "/entry/sample/transformations"
    _axis(
        transformations,
        "grid_y",
        y_um.astype("f8"),
        kind="translation",
        vector=(0.0, 1.0, 0.0),
        units="um",
        depends_on=".",
    )
    _axis(
        transformations,
        "grid_x",
        x_um.astype("f8"),
        kind="translation",
        vector=(1.0, 0.0, 0.0),
        units="um",
        depends_on=f"{base}/grid_y",
    )
    return f"{base}/grid_x"


def _write_fluorescence(instrument: h5py.Group, start: Mapping[str, Any]) -> None:
    spectrum = start.get("fluorescence")
    if not isinstance(spectrum, Mapping):
        return
    energy_eV, counts = _as_array(spectrum.get("energy")), _as_array(spectrum.get("data"))
    if energy_eV is not None and counts is not None and energy_eV.shape == counts.shape:
        group = _group(instrument, "fluorescence", "NXcollection")
        _put(group, "energy", energy_eV, "eV")
        _put(group, "data", counts)


def _write_user(entry: h5py.Group, start: Mapping[str, Any]) -> list[str]:
    user_data = start.get("user_data")
    user = user_data.get("user") if isinstance(user_data, Mapping) else None
    values = user.get("hdf5") if isinstance(user, Mapping) else None
    if not isinstance(values, Mapping):
        return []
    group = _group(entry, "user", "NXcollection")
    problems = []
    for key, value in values.items():
        if not (isinstance(key, str) and key.isidentifier()):
            problems.append(f"user_data.user.hdf5[{key!r}]: not a valid HDF5 name, skipped")
        elif isinstance(value, bool):
            _put(group, key, np.bool_(value))
        elif isinstance(value, (int, float, str)):
            _put(group, key, value)
        else:
            problems.append(f"user_data.user.hdf5.{key}: not a scalar, skipped")
    return problems


def _write_run_summaries(
    entry: h5py.Group, start: Mapping[str, Any], end: Mapping[str, Any] | None, plan: SeriesPlan
) -> None:
    mx = _group(entry, "MX", "NXcollection")
    _put_if(mx, "indexing_algorithm", start, "indexing_algorithm")
    _put_if(mx, "geom_refinement_algorithm", start, "geom_refinement_algorithm")
    if end:
        _put_if(mx, "imageIndexedMean", end, "indexing_rate")
        _put_if(mx, "bkgEstimateMean", end, "bkg_estimate")
        lattice = end.get("rotation_lattice")
        if isinstance(lattice, list) and len(lattice) == 9:
            _put(mx, "rotationLatticeIndexed", np.asarray(lattice, dtype="f4"), "angstrom")
    bins = {k: start.get(f"az_int_bin_to_{k}") for k in ("q", "two_theta", "phi")}
    if isinstance(bins["q"], list) and bins["q"]:
        azint = _group(entry, "azint", "NXcollection")
        shape = plan.azint_shape or (1, len(bins["q"]))
        units = {"q": "1/angstrom", "two_theta": "deg", "phi": "deg"}
        for key, values in bins.items():
            if isinstance(values, list) and len(values) == shape[0] * shape[1]:
                array = np.asarray(values, dtype="f4").reshape(shape)
                _put(azint, f"bin_to_{key}", array, units[key])
    rois = start.get("rois")
    if isinstance(rois, Mapping) and rois:
        defs = _group(entry, "roi_defs", "NXcollection")
        for bit_index, (name, definition) in enumerate(rois.items()):
            if not (isinstance(name, str) and name.isidentifier()):
                continue
            roi = _group(defs, name, "NXcollection")
            _put(roi, "bit_index", np.int32(bit_index))
            if isinstance(definition, Mapping):
                for key in definition:
                    if isinstance(key, str) and key.isidentifier() and key != "bit_index":
                        _put_if(roi, key, definition, key)


def write_calibration(detector: h5py.Group, images: Mapping[str, PixelArray]) -> None:
    """Calibration images under ``detector/calibration/<name>`` (S1 §4.9), bitshuffle/LZ4;
    compressed arrays are stored as received (one direct chunk each)."""
    group = _group(detector, "calibration", "NXcollection")
    for name, pixels in images.items():
        dataset = group.create_dataset(
            name, shape=pixels.shape, dtype=pixels.dtype, chunks=pixels.shape, **_bitshuffle()
        )
        if pixels.compression is Compression.BSLZ4:
            dataset.id.write_direct_chunk((0,) * len(pixels.shape), pixels.payload)
        else:
            dataset[...] = pixels.to_numpy()
