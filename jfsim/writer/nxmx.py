"""NXmx metadata of the master file, from the start and end messages (S1 §3, §4.9-4.11).

Wire units (m, eV, degrees) are what NXmx stores, so values pass through unchanged; only
names and places change. Geometry follows physics.md §2.1: fast = (-1, 0, 0), slow =
(0, -1, 0) in McStas, beam centre in continuous pixel coordinates (pixel i covers [i, i+1)),
so the corner of pixel (0, 0) sits at (bx·p, by·p) from the beam spot.

The ~80 datasets and their attributes are first described as an ``H5Tree`` (``nxmx_tree``,
no HDF5 involved) and then created in one pass (``jfsim.writer.h5tree``): a few ms instead
of the 20-30 ms that h5py's high-level API needs, all of it time during which no image
chunk can be written. Only the pixel mask and the compressed arrays go through h5py.
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
from jfsim.writer.h5tree import H5Tree
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


def _put_if(
    tree: H5Tree, path: str, fields: Mapping[str, Any], key: str, units: str | None = None
) -> None:
    """``path`` holds ``fields[key]`` when it is a scalar or a list of text (else nothing)."""
    value = fields.get(key)
    if isinstance(value, bool):
        tree.dataset(path, np.bool_(value))
    elif isinstance(value, (int, float, str)):
        tree.dataset(path, value, units)
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        tree.dataset(path, np.array(value, dtype=h5py.string_dtype()))


def _axis(
    tree: H5Tree,
    path: str,
    value: Any,
    *,
    kind: str,
    vector: tuple[float, ...],
    units: str,
    depends_on: str,
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> None:
    tree.dataset(
        path,
        value,
        units,
        transformation_type=kind,
        vector=np.asarray(vector, dtype="f8"),
        offset=np.asarray(offset, dtype="f8"),
        offset_units="m",
        depends_on=depends_on,
    )


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
    tree, problems = nxmx_tree(start, end, plan, received, state)
    tree.write(h5)
    detector = h5[DETECTOR]
    specific = detector["detectorSpecific"]
    if "pixel_mask" not in specific:  # not stored as the file was opened
        store_pixel_mask(h5, pixel_mask)
    detector["pixel_mask"] = specific["pixel_mask"]
    flatfields = start.get("flatfield")
    flatfield = _as_array(flatfields.get("default")) if isinstance(flatfields, Mapping) else None
    if flatfield is not None and flatfield.shape == plan.image_shape:
        detector.create_dataset(
            "flatfield", data=flatfield.astype("f4"), chunks=flatfield.shape, **_bitshuffle()
        )
    return problems


def store_pixel_mask(h5: h5py.File, pixel_mask: PixelMask) -> None:
    """Create ``detectorSpecific/pixel_mask`` and start writing the mask into it.

    Contiguous (not chunked) uint32: Neggia's requirement (conformance.md §5.3). Its bytes
    are written by a thread (``jfsim.writer.mask``): call ``pixel_mask.finish()`` before
    closing the file. The groups get their NeXus attributes from ``write_nxmx_metadata``.
    """
    pixel_mask.store(h5.require_group(f"{DETECTOR}/detectorSpecific"), "pixel_mask")


def nxmx_tree(
    start: Mapping[str, Any],
    end: Mapping[str, Any] | None,
    plan: SeriesPlan,
    received: np.ndarray,
    state: str,
) -> tuple[H5Tree, list[str]]:
    """The master's NXmx objects below ``/`` (all but ``/entry/data``, the pixel mask and
    the flat field), and the problems met (values skipped)."""
    tree = H5Tree()
    tree.attrs(
        "",
        file_time=iso_time(datetime.now(timezone.utc)),
        HDF5_Version=h5py.version.hdf5_version,
        creator=f"jfsim write {__version__}",
        NX_class="NXroot",
        default="entry",
    )
    tree.group("entry", "NXentry", default="data")
    tree.dataset("entry/definition", "NXmx")
    _write_times(tree, start, end, plan)
    _write_source(tree, start)
    tree.group("entry/instrument", "NXinstrument")
    name = str(start.get("instrument_name") or "jfsim")
    tree.dataset("entry/instrument/name", name, short_name=name)
    tree.dataset("entry/instrument/time_zone", "+00:00")  # every time in the file is UTC
    group = tree.group("entry/instrument/detector_group", "NXdetector_group")
    tree.dataset(f"{group}/group_names", np.array(["detector"], dtype=h5py.string_dtype()))
    tree.dataset(f"{group}/group_index", np.array([1], dtype="i4"))
    tree.dataset(f"{group}/group_parent", np.array([-1], dtype="i4"))
    _write_beam(tree, start, plan)
    if isinstance(start.get("attenuator_transmission"), (int, float)):
        tree.group("entry/instrument/attenuator", "NXattenuator")
        tree.dataset(
            "entry/instrument/attenuator/attenuator_transmission",
            float(start["attenuator_transmission"]),
        )
    tree.group(DETECTOR[1:], "NXdetector")
    _write_detector(tree, start, plan)
    _write_detector_specific(tree, start, end, plan, received, state)
    _write_detector_geometry(tree, start, plan)
    _write_sample(tree, start, plan)
    _write_fluorescence(tree, start)
    problems = _write_user(tree, start)
    _write_run_summaries(tree, start, end, plan)
    return tree, problems


def _write_times(
    tree: H5Tree, start: Mapping[str, Any], end: Mapping[str, Any] | None, plan: SeriesPlan
) -> None:
    arm_date = start.get("arm_date")
    start_time = arm_date if isinstance(arm_date, datetime) else datetime.now(timezone.utc)
    tree.dataset("entry/start_time", iso_time(start_time))
    end_date = end.get("end_date") if end else None
    if isinstance(end_date, datetime):
        tree.dataset("entry/end_time", iso_time(end_date))
        tree.dataset("entry/end_time_estimated", iso_time(end_date))
    else:
        frame_time_s = start.get("frame_time")
        duration_s = plan.n_images * frame_time_s if isinstance(frame_time_s, float) else 0.0
        estimated = iso_time(start_time + timedelta(seconds=duration_s))
        tree.dataset("entry/end_time_estimated", estimated)


def _write_source(tree: H5Tree, start: Mapping[str, Any]) -> None:
    source = tree.group("entry/source", "NXsource")
    tree.dataset(f"{source}/name", str(start.get("source_name") or "jfsim synthetic source"))
    _put_if(tree, f"{source}/type", start, "source_type")
    _put_if(tree, f"{source}/current", start, "ring_current", "mA")


def _write_beam(tree: H5Tree, start: Mapping[str, Any], plan: SeriesPlan) -> None:
    beam = tree.group("entry/instrument/beam", "NXbeam")
    wavelength_A = start.get("incident_wavelength")
    if not isinstance(wavelength_A, (int, float)):
        energy_eV = start.get("incident_energy")
        if isinstance(energy_eV, (int, float)) and energy_eV > 0:
            wavelength_A = kev_to_angstrom(ev_to_kev(energy_eV))
        else:
            wavelength_A = float("nan")
    tree.dataset(f"{beam}/incident_wavelength", float(wavelength_A), "angstrom")
    _put_if(tree, f"{beam}/total_flux", start, "total_flux", "Hz")
    polarization = start.get("polarization_factor")
    if isinstance(polarization, (int, float)):
        # pyFAI's factor is the horizontal degree of linear polarisation: Stokes (1, p, 0, 0).
        stokes = np.tile([1.0, float(polarization), 0.0, 0.0], (plan.n_images, 1))
        tree.dataset(f"{beam}/incident_polarization_stokes", stokes)
    if isinstance(start.get("beam_size_x"), (int, float)) and isinstance(
        start.get("beam_size_y"), (int, float)
    ):
        size = [float(start["beam_size_x"]), float(start["beam_size_y"])]
        tree.dataset(f"{beam}/incident_beam_size", np.asarray(size), "um")


def _write_detector(tree: H5Tree, start: Mapping[str, Any], plan: SeriesPlan) -> None:
    detector = DETECTOR[1:]

    def put(name: str, value: Any, units: str | None = None) -> None:
        tree.dataset(f"{detector}/{name}", value, units)

    def put_if(name: str, key: str, units: str | None = None) -> None:
        _put_if(tree, f"{detector}/{name}", start, key, units)

    put("depends_on", f"{DETECTOR_TRANSFORMATIONS}/{DETECTOR_CHAIN[0]}")
    put("description", str(start.get("detector_description") or "jfsim detector"))
    put_if("serial_number", "detector_serial_number")
    put_if("detector_number", "detector_number")
    put_if("beam_center_x", "beam_center_x", "pixel")
    put_if("beam_center_y", "beam_center_y", "pixel")
    put_if("distance", "detector_distance", "m")
    put("distance_derived", np.bool_(True))  # equals the transformation chain
    put_if("detector_distance", "detector_distance", "m")
    put_if("count_time", "count_time", "s")
    put_if("frame_time", "frame_time", "s")
    put_if("sensor_material", "sensor_material")
    put_if("sensor_thickness", "sensor_thickness", "m")
    put_if("x_pixel_size", "pixel_size_x", "m")
    put_if("y_pixel_size", "pixel_size_y", "m")
    threshold = start.get("threshold_energy")
    if isinstance(threshold, Mapping) and len(threshold) == 1:
        threshold = next(iter(threshold.values()))
    if isinstance(threshold, (int, float)):
        put("threshold_energy", float(threshold), "eV")
    bit_depth_image = plan.image_dtype.itemsize * 8
    readout = start.get("bit_depth_readout", bit_depth_image)
    put("bit_depth_readout", np.int32(readout if isinstance(readout, int) else 16))
    put("bit_depth_image", np.int32(bit_depth_image))
    put_if("saturation_value", "saturation_value")
    if plan.image_dtype.kind == "i":
        # Jungfraujoch writes the error value of signed images as underload_value: readers
        # that trust (underload, saturation) exclusive (DIALS, XDS via flag < underload + 1)
        # then drop gap and error pixels even without the mask. Unsigned images have none:
        # 0 is a valid count, and their error value lies above saturation.
        put("underload_value", np.int64(plan.error_value))
    put("error_value", np.int64(plan.error_value))
    put("flatfield_applied", np.bool_(bool(start.get("flatfield_enabled", False))))
    put("pixel_mask_applied", np.bool_(bool(start.get("pixel_mask_enabled", False))))
    put(
        "countrate_correction_applied",
        np.bool_(bool(start.get("countrate_correction_enabled", False))),
    )
    summation = start.get("summation")
    put("number_of_cycles", np.int64(summation if isinstance(summation, int) else 1))
    put("acquisition_type", "triggered")
    put("type", "pixel")
    for flag in ("jungfrau_conversion_applied", "geometry_transformation_applied"):
        put_if(flag, flag)
    if isinstance(start.get("virtual_pixel_interpolation_enabled"), bool):
        interpolated = np.bool_(start["virtual_pixel_interpolation_enabled"])
        put("virtual_pixel_interpolation_applied", interpolated)
    lookup = _as_array(start.get("countrate_correction_lookup_table"))
    if lookup is not None and lookup.ndim == 1:
        put("countrate_correction_lookup_table", lookup)
    put_if("jungfrau_conversion_factor", "jungfrau_conversion_factor", "eV")


def _write_detector_specific(
    tree: H5Tree,
    start: Mapping[str, Any],
    end: Mapping[str, Any] | None,
    plan: SeriesPlan,
    received: np.ndarray,
    state: str,
) -> None:
    specific = tree.group(f"{DETECTOR[1:]}/detectorSpecific", "NXcollection")
    height, width = plan.image_shape
    tree.dataset(f"{specific}/x_pixels_in_detector", np.int64(width))
    tree.dataset(f"{specific}/y_pixels_in_detector", np.int64(height))
    tree.dataset(f"{specific}/nimages", np.int64(plan.n_images))
    tree.dataset(f"{specific}/ntrigger", np.int64(1))
    collected = end.get("images_collected") if end else None
    if not isinstance(collected, int):
        collected = int(received.sum())
    tree.dataset(f"{specific}/nimages_collected", np.int64(collected))
    tree.dataset(f"{specific}/nimages_written", np.int64(received.sum()))
    tree.dataset(f"{specific}/image_received", received.astype("u1"))
    tree.dataset(f"{specific}/series_state", state)
    if end:
        _put_if(tree, f"{specific}/data_collection_efficiency", end, "data_collection_efficiency")
        _put_if(tree, f"{specific}/max_receiver_delay", end, "max_receiver_delay")
    for key in (
        "storage_cell_number",
        "software_git_commit",
        "software_git_date",
        "jfjoch_release",
        "detect_ice_rings",
        "gain_file_names",
        "data_reduction_factor_serialmx",
    ):
        _put_if(tree, f"{specific}/{key}", start, key)
    _put_if(tree, f"{specific}/storage_cell_delay", start, "storage_cell_delay", "ns")
    _put_if(tree, f"{specific}/summation_mode", start, "summation")
    tree.dataset(f"{specific}/jfjoch_writer_release", f"jfsim {__version__}")


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


def _write_detector_geometry(tree: H5Tree, start: Mapping[str, Any], plan: SeriesPlan) -> None:
    transformations = tree.group(DETECTOR_TRANSFORMATIONS[1:], "NXtransformations")
    angles_rad = {name: _poni_angle_rad(start, name) for name in ("rot1", "rot2", "rot3")}
    vectors = poni_chain_axes(angles_rad["rot1"], angles_rad["rot2"], angles_rad["rot3"])
    for name, outer in zip(DETECTOR_CHAIN, (*DETECTOR_CHAIN[1:], None), strict=True):
        depends_on = "." if outer is None else f"{DETECTOR_TRANSFORMATIONS}/{outer}"
        if name == "translation":
            value, kind, units = float(start.get("detector_distance", 0.0)), "translation", "m"
        else:
            value, kind, units = angles_rad[name], "rotation", "rad"
        _axis(
            tree,
            f"{transformations}/{name}",
            value,
            kind=kind,
            vector=vectors[name],
            units=units,
            depends_on=depends_on,
        )
    module = tree.group(MODULE[1:], "NXdetector_module")
    height, width = plan.image_shape
    tree.dataset(f"{module}/data_origin", np.array([0, 0], dtype="i4"))
    tree.dataset(f"{module}/data_size", np.array([height, width], dtype="i4"))
    tree.dataset(f"{module}/data_stride", np.array([1, 1], dtype="i4"))
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
        tree,
        f"{module}/module_offset",
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
            tree,
            f"{module}/{name}",
            size_m,
            kind="translation",
            vector=vector,
            units="m",
            depends_on=f"{MODULE}/module_offset",
        )


def _write_sample(tree: H5Tree, start: Mapping[str, Any], plan: SeriesPlan) -> None:
    sample = tree.group("entry/sample", "NXsample")
    tree.dataset(f"{sample}/name", str(start.get("sample_name") or ""))
    _put_if(tree, f"{sample}/temperature", start, "sample_temperature", "K")
    cell = start.get("unit_cell")
    if isinstance(cell, Mapping) and all(
        isinstance(cell.get(k), (int, float)) for k in ("a", "b", "c", "alpha", "beta", "gamma")
    ):
        values = [float(cell[k]) for k in ("a", "b", "c", "alpha", "beta", "gamma")]
        tree.dataset(f"{sample}/unit_cell", np.asarray(values))
    depends_on = "."
    goniometer = start.get("goniometer")
    grid = start.get("grid_scan")
    if isinstance(goniometer, Mapping) and goniometer:
        depends_on = _write_rotation(tree, goniometer, plan)
    elif isinstance(grid, Mapping):
        depends_on = _write_grid(tree, grid, plan)
    tree.dataset(f"{sample}/depends_on", depends_on)
    if f"{sample}/transformations" in tree:
        tree.hard_link(f"{sample}/goniometer", f"/{sample}/transformations")


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


def _write_rotation(tree: H5Tree, goniometer: Mapping[str, Any], plan: SeriesPlan) -> str:
    name, axis = scan_axis(goniometer)
    name = name if name.isidentifier() else "omega"
    start_deg = float(axis.get("start", 0.0))
    increment_deg = float(axis.get("increment", 0.0))
    vector = axis.get("vector", DEFAULT_ROTATION_VECTOR)
    if not (isinstance(vector, (list, tuple)) and len(vector) == 3):
        vector = DEFAULT_ROTATION_VECTOR
    angles_deg = start_deg + increment_deg * np.arange(plan.n_images, dtype="f8")
    transformations = tree.group("entry/sample/transformations", "NXtransformations")
    _axis(
        tree,
        f"{transformations}/{name}",
        angles_deg,
        kind="rotation",
        vector=tuple(float(v) for v in vector),
        units="deg",
        depends_on=".",
    )
    tree.dataset(f"{transformations}/{name}_end", angles_deg + increment_deg, "deg")
    tree.dataset(f"{transformations}/{name}_range_average", increment_deg, "deg")
    total_deg = increment_deg * plan.n_images
    tree.dataset(f"{transformations}/{name}_range_total", total_deg, "deg")
    return f"/{transformations}/{name}"


def _write_grid(tree: H5Tree, grid: Mapping[str, Any], plan: SeriesPlan) -> str:
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
    transformations = tree.group("entry/sample/transformations", "NXtransformations")
    base = f"/{transformations}"
    _axis(
        tree,
        f"{transformations}/grid_y",
        y_um.astype("f8"),
        kind="translation",
        vector=(0.0, 1.0, 0.0),
        units="um",
        depends_on=".",
    )
    _axis(
        tree,
        f"{transformations}/grid_x",
        x_um.astype("f8"),
        kind="translation",
        vector=(1.0, 0.0, 0.0),
        units="um",
        depends_on=f"{base}/grid_y",
    )
    return f"{base}/grid_x"


def _write_fluorescence(tree: H5Tree, start: Mapping[str, Any]) -> None:
    spectrum = start.get("fluorescence")
    if not isinstance(spectrum, Mapping):
        return
    energy_eV, counts = _as_array(spectrum.get("energy")), _as_array(spectrum.get("data"))
    if energy_eV is not None and counts is not None and energy_eV.shape == counts.shape:
        group = tree.group("entry/instrument/fluorescence", "NXcollection")
        tree.dataset(f"{group}/energy", energy_eV, "eV")
        tree.dataset(f"{group}/data", counts)


def _write_user(tree: H5Tree, start: Mapping[str, Any]) -> list[str]:
    user_data = start.get("user_data")
    user = user_data.get("user") if isinstance(user_data, Mapping) else None
    values = user.get("hdf5") if isinstance(user, Mapping) else None
    if not isinstance(values, Mapping):
        return []
    group = tree.group("entry/user", "NXcollection")
    problems = []
    for key, value in values.items():
        if not (isinstance(key, str) and key.isidentifier()):
            problems.append(f"user_data.user.hdf5[{key!r}]: not a valid HDF5 name, skipped")
        elif isinstance(value, bool):
            tree.dataset(f"{group}/{key}", np.bool_(value))
        elif isinstance(value, (int, float, str)):
            tree.dataset(f"{group}/{key}", value)
        else:
            problems.append(f"user_data.user.hdf5.{key}: not a scalar, skipped")
    return problems


def _write_run_summaries(
    tree: H5Tree, start: Mapping[str, Any], end: Mapping[str, Any] | None, plan: SeriesPlan
) -> None:
    mx = tree.group("entry/MX", "NXcollection")
    _put_if(tree, f"{mx}/indexing_algorithm", start, "indexing_algorithm")
    _put_if(tree, f"{mx}/geom_refinement_algorithm", start, "geom_refinement_algorithm")
    if end:
        _put_if(tree, f"{mx}/imageIndexedMean", end, "indexing_rate")
        _put_if(tree, f"{mx}/bkgEstimateMean", end, "bkg_estimate")
        lattice = end.get("rotation_lattice")
        if isinstance(lattice, list) and len(lattice) == 9:
            lattice_A = np.asarray(lattice, dtype="f4")
            tree.dataset(f"{mx}/rotationLatticeIndexed", lattice_A, "angstrom")
    bins = {k: start.get(f"az_int_bin_to_{k}") for k in ("q", "two_theta", "phi")}
    if isinstance(bins["q"], list) and bins["q"]:
        azint = tree.group("entry/azint", "NXcollection")
        shape = plan.azint_shape or (1, len(bins["q"]))
        units = {"q": "1/angstrom", "two_theta": "deg", "phi": "deg"}
        for key, values in bins.items():
            if isinstance(values, list) and len(values) == shape[0] * shape[1]:
                array = np.asarray(values, dtype="f4").reshape(shape)
                tree.dataset(f"{azint}/bin_to_{key}", array, units[key])
    rois = start.get("rois")
    if isinstance(rois, Mapping) and rois:
        defs = tree.group("entry/roi_defs", "NXcollection")
        for bit_index, (name, definition) in enumerate(rois.items()):
            if not (isinstance(name, str) and name.isidentifier()):
                continue
            roi = tree.group(f"{defs}/{name}", "NXcollection")
            tree.dataset(f"{roi}/bit_index", np.int32(bit_index))
            if isinstance(definition, Mapping):
                for key in definition:
                    if isinstance(key, str) and key.isidentifier() and key != "bit_index":
                        _put_if(tree, f"{roi}/{key}", definition, key)


def write_calibration(detector: h5py.Group, images: Mapping[str, PixelArray]) -> None:
    """Calibration images under ``detector/calibration/<name>`` (S1 §4.9), bitshuffle/LZ4;
    compressed arrays are stored as received (one direct chunk each)."""
    group = detector.require_group("calibration")
    group.attrs["NX_class"] = "NXcollection"
    for name, pixels in images.items():
        dataset = group.create_dataset(
            name, shape=pixels.shape, dtype=pixels.dtype, chunks=pixels.shape, **_bitshuffle()
        )
        if pixels.compression is Compression.BSLZ4:
            dataset.id.write_direct_chunk((0,) * len(pixels.shape), pixels.payload)
        else:
            dataset[...] = pixels.to_numpy()
