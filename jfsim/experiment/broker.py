"""jfjoch_broker's ``/start`` body (DatasetSettings) as an Experiment on a detector preset.

The broker's names (``detector_distance_mm``, ``incident_energy_keV``, ``ntrigger``…) are
translated into the experiment's keys and read by the same loader as an experiment file,
so every range check applies, and errors name the broker's key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jfsim.config_values import integer, quantity
from jfsim.errors import ConfigError
from jfsim.experiment.loading import experiment_from_dict
from jfsim.experiment.model import Experiment
from jfsim.units import us_to_s

__all__ = ["BROKER_KEYS", "experiment_from_broker_settings", "load_broker_settings"]


#: jfjoch_broker DatasetSettings keys jfsim understands → (section, key in our schema).
BROKER_KEYS: dict[str, tuple[str, str]] = {
    "beam_x_pxl": ("position", "beam_x_pxl"),
    "beam_y_pxl": ("position", "beam_y_pxl"),
    "detector_distance_mm": ("position", "distance_mm"),
    "poni_rot1_rad": ("position", "poni_rot1_rad"),
    "poni_rot2_rad": ("position", "poni_rot2_rad"),
    "poni_rot3_rad": ("position", "poni_rot3_rad"),
    "incident_energy_keV": ("beam", "energy_keV"),
    "transmission": ("beam", "transmission"),
    "total_flux": ("beam", "flux_photons_per_s"),
    "polarization_factor": ("beam", "polarization_factor"),
    "unit_cell": ("crystal", "unit_cell"),
    "space_group_number": ("crystal", "space_group_number"),
    "images_per_trigger": ("dataset", "images_per_trigger"),
    "images_per_file": ("dataset", "images_per_file"),
    "file_prefix": ("dataset", "file_prefix"),
    "sample_name": ("dataset", "sample_name"),
    "run_number": ("dataset", "series_id"),
    "run_name": ("dataset", "series_unique_id"),
    "experiment_group": ("dataset", "experiment_group"),
    "header_appendix": ("dataset", "header_appendix"),
    "image_appendix": ("dataset", "image_appendix"),
    "compression": ("dataset", "compression"),
    "max_spot_count": ("dataset", "max_spot_count"),
}
#: Broker keys that are valid but do not change what jfsim simulates (accepted, ignored).
_BROKER_KEYS_IGNORED = frozenset(
    {
        "data_reduction_factor_serialmx",
        "poisson_compression",
        "write_nxmx_hdf5_master",
        "save_calibration",
        "detect_ice_rings",
        "spot_finding",
        "fpga_summation",
        "summation",
        "async_start",
        "tokens",
        "beam_size_x_um",
        "beam_size_y_um",
        "ring_current_mA",
        "sample_temperature_K",
        "pixel_value_low_threshold",
        "smargon",
        "xray_fluorescence_spectrum",
    }
)
_BROKER_AXIS_KEYS_IGNORED = frozenset({"helical_step_um", "screening_wedge_deg"})
#: jfjoch_broker's data-file size when ``images_per_file`` is omitted (DatasetSettings).
_BROKER_IMAGES_PER_FILE = 1000
#: A rotation sweep of at most this many images goes into one data file.
_BROKER_SINGLE_FILE_SWEEP = 20000
_BROKER_DEFAULT_CELL = {"a": 79.1, "b": 79.1, "c": 37.9, "alpha": 90.0, "beta": 90.0, "gamma": 90.0}


def experiment_from_broker_settings(
    body: Mapping[str, Any], *, detector: str = "JF4M", seed: int = 1
) -> Experiment:
    """Translate a jfjoch_broker ``/start`` JSON body (DatasetSettings) into an Experiment.

    ``ntrigger × images_per_trigger`` gives the number of images; ``image_time_us`` sets
    count and frame time; ``goniometer`` {name, start, step, vector} makes a rotation scan
    (without it the run is serial stills); ``grid_scan`` {n_fast, step_x_um, step_y_um,
    snake, vertical} a grid scan with as many rows (``n_slow``) as the images fill, whether
    or not a ``goniometer`` states the spindle angle beside it. Without
    ``unit_cell`` jfsim simulates tetragonal lysozyme. Without ``images_per_file`` the
    broker's choice applies: one file for a sweep of up to 20000 images, whole fast-axis
    rows per file for a grid, 1000 images otherwise.
    """
    if not isinstance(body, Mapping):
        raise ConfigError("dataset settings: expected a JSON object")
    document: dict[str, Any] = {"name": "broker", "seed": seed, "detector": {"preset": detector}}
    sections: dict[str, dict[str, Any]] = {
        s: {} for s in ("position", "beam", "crystal", "dataset")
    }
    handled = (
        set(BROKER_KEYS)
        | _BROKER_KEYS_IGNORED
        | {"ntrigger", "image_time_us", "goniometer", "grid_scan"}
    )
    for key, value in body.items():
        if key not in handled:
            raise ConfigError(
                f"dataset settings: unknown key {key!r}; "
                f"known keys are {', '.join(sorted(handled))}"
            )
        if key in BROKER_KEYS:
            section, our_key = BROKER_KEYS[key]
            sections[section][our_key] = value
    ntrigger = integer("dataset settings: ntrigger", body.get("ntrigger", 1))
    per_trigger = integer("dataset settings: images_per_trigger", body.get("images_per_trigger", 1))
    if ntrigger < 1 or per_trigger < 1:
        raise ConfigError("dataset settings: ntrigger and images_per_trigger must be >= 1")
    sections["dataset"]["number_of_images"] = ntrigger * per_trigger
    if "image_time_us" in body:
        image_time_us = quantity("us")("dataset settings: image_time_us", body["image_time_us"])
        if image_time_us <= 0:
            raise ConfigError(f"dataset settings: image_time_us: must be > 0, got {image_time_us}")
        sections["dataset"]["count_time_s"] = us_to_s(image_time_us)
        sections["dataset"]["frame_time_s"] = us_to_s(image_time_us)
    sections["crystal"].setdefault("unit_cell", _BROKER_DEFAULT_CELL)
    sections["crystal"].setdefault("space_group_number", 96)
    document |= sections
    if "grid_scan" in body:  # a goniometer beside it only states the spindle angle
        grid = body["grid_scan"]
        if not isinstance(grid, Mapping):
            raise ConfigError("dataset settings: grid_scan: expected an object")
        document["scan"] = {"type": "grid", **grid}
        if "n_slow" not in grid:
            n_fast = integer("dataset settings: grid_scan.n_fast", grid.get("n_fast", 10))
            if n_fast < 1:
                raise ConfigError("dataset settings: grid_scan.n_fast: must be >= 1")
            document["scan"]["n_slow"] = -(-ntrigger * per_trigger // n_fast)
    elif "goniometer" in body:
        axis = body["goniometer"]
        if not isinstance(axis, Mapping):
            raise ConfigError(
                "dataset settings: goniometer: expected an object {name, start, step, vector}"
            )
        # helical_step_um and screening_wedge_deg are valid but not simulated (ignored)
        unknown = set(axis) - {"name", "start", "step", "vector"} - _BROKER_AXIS_KEYS_IGNORED
        if unknown:
            raise ConfigError(f"dataset settings: goniometer.{sorted(unknown)[0]}: unknown key")
        scan: dict[str, Any] = {
            "type": "rotation",
            "start_deg": axis.get("start", 0.0),
            "step_deg": axis.get("step", 0.1),
        }
        if "name" in axis:
            scan["axis_name"] = axis["name"]
        if "vector" in axis:
            scan["axis_vector"] = axis["vector"]
        document["scan"] = scan
    else:
        document["scan"] = {"type": "stills"}
    sections["dataset"].setdefault(
        "images_per_file", _broker_images_per_file(document["scan"], ntrigger * per_trigger)
    )
    try:
        return experiment_from_dict(document)
    except ConfigError as error:
        raise ConfigError(_in_broker_names(str(error))) from None


def _in_broker_names(message: str) -> str:
    """A message about ``[section] key`` restated with the DatasetSettings key it came from."""
    for broker_key, (section, our_key) in BROKER_KEYS.items():
        ours = f"[{section}] {our_key}"
        if message.startswith(ours + ":") or message.startswith(ours + "["):
            return f"dataset settings: {broker_key}{message[len(ours) :]}"
    return f"dataset settings: {message}"


def _broker_images_per_file(scan: Mapping[str, Any], number_of_images: int) -> int:
    """jfjoch_broker's data-file size for a ``/start`` body without ``images_per_file``."""
    if scan["type"] == "rotation" and number_of_images <= _BROKER_SINGLE_FILE_SWEEP:
        return number_of_images
    if scan["type"] == "grid":
        n_fast = scan.get("n_fast", 10)
        if isinstance(n_fast, int) and n_fast > 0:
            return n_fast * max(1, _BROKER_IMAGES_PER_FILE // n_fast)
    return _BROKER_IMAGES_PER_FILE


def load_broker_settings(path: str | Path, *, detector: str = "JF4M", seed: int = 1) -> Experiment:
    """Read a jfjoch_broker ``/start`` JSON body from a file (see
    ``experiment_from_broker_settings``)."""
    path = Path(path)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read dataset settings ({error.strerror})") from error
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON: {error}") from error
    try:
        return experiment_from_broker_settings(body, detector=detector, seed=seed)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error
