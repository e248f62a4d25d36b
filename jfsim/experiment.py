"""The experiment description: what jfsim pretends to measure.

An ``Experiment`` is a tree of frozen dataclasses in canonical units (mm, Å, keV, radians,
seconds). It comes from three places, all converted here and nowhere else:

* a TOML (or JSON) file whose keys carry their unit in the name (``distance_mm``,
  ``energy_keV``, ``mosaicity_deg``); a value may also be a string with an explicit unit of
  the same kind (``distance_mm = "0.12 m"``);
* the JSON body a user sends to jfjoch_broker's ``/start`` (DatasetSettings names such as
  ``beam_x_pxl``, ``detector_distance_mm``, ``incident_energy_keV``) plus a detector preset;
* the named experiment presets bundled in ``jfsim/data/presets``.

Unknown keys, out-of-range values and values of the wrong kind of unit are rejected with a
``ConfigError`` that names the section and key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from jfsim.config_values import (
    KeySpec,
    any_value,
    flag,
    fraction,
    integer,
    matrix3,
    non_negative,
    number,
    one_of,
    positive,
    quantity,
    text,
    vector3,
)
from jfsim.detectors import DETECTOR_PRESETS, Detector, Module, detector_preset
from jfsim.errors import ConfigError
from jfsim.geometry.panel import Panel, panel_from_position
from jfsim.units import angstrom_to_kev, deg_to_rad, kev_to_angstrom, rad_to_deg, us_to_s

__all__ = [
    "DETECTOR_PRESETS",
    "Background",
    "Beam",
    "Crystal",
    "Dataset",
    "Detector",
    "DetectorPosition",
    "Experiment",
    "GridScan",
    "Module",
    "RotationScan",
    "StillsScan",
    "UnitCell",
    "detector_panel",
    "detector_preset",
    "experiment_from_broker_settings",
    "experiment_from_dict",
    "experiment_preset",
    "experiment_preset_names",
    "experiment_to_dict",
    "load_broker_settings",
    "load_experiment",
]


@dataclass(frozen=True, slots=True)
class UnitCell:
    a_A: float
    b_A: float
    c_A: float
    alpha_deg: float
    beta_deg: float
    gamma_deg: float

    def as_tuple(self) -> tuple[float, float, float, float, float, float]:
        return (self.a_A, self.b_A, self.c_A, self.alpha_deg, self.beta_deg, self.gamma_deg)


@dataclass(frozen=True, slots=True)
class Beam:
    """Incident beam. ``polarization_factor`` follows pyFAI: +1 = fully horizontal."""

    energy_keV: float = 12.4
    flux_photons_per_s: float = 1e12
    polarization_factor: float = 0.99
    divergence_rad: float = 1e-4
    bandwidth_fraction: float = 2e-4
    transmission: float = 1.0

    @property
    def wavelength_A(self) -> float:
        return kev_to_angstrom(self.energy_keV)


@dataclass(frozen=True, slots=True)
class DetectorPosition:
    """Where the detector sits: beam centre in continuous pixel coordinates (centre of
    pixel i at i + 0.5), sample-detector distance, optional PONI tilts (pyFAI convention)."""

    distance_mm: float
    beam_x_pxl: float
    beam_y_pxl: float
    poni_rot1_rad: float = 0.0
    poni_rot2_rad: float = 0.0
    poni_rot3_rad: float = 0.0


@dataclass(frozen=True, slots=True)
class Crystal:
    """The sample crystal. ``orientation`` is a row-major 3×3 U matrix, or None for a
    random orientation drawn from the experiment seed."""

    unit_cell: UnitCell
    space_group_number: int
    mosaicity_rad: float = deg_to_rad(0.05)
    domain_size_A: float = 2000.0
    b_factor_A2: float = 20.0
    orientation: tuple[tuple[float, float, float], ...] | None = None
    intensity_model: str = "wilson"
    intensity_scale_photons: float = 2000.0
    resolution_limit_A: float = 1.6


@dataclass(frozen=True, slots=True)
class RotationScan:
    """A rotation sweep about ``axis_vector`` (McStas lab frame), one step per image."""

    start_rad: float = 0.0
    step_rad: float = deg_to_rad(0.1)
    axis_name: str = "omega"
    axis_vector: tuple[float, float, float] = (-1.0, 0.0, 0.0)

    kind = "rotation"


@dataclass(frozen=True, slots=True)
class StillsScan:
    """Serial crystallography: each image is a still of a randomly oriented crystal."""

    hit_rate: float = 1.0
    lattices_per_hit: int = 1

    kind = "stills"


@dataclass(frozen=True, slots=True)
class GridScan:
    """A raster of stills: ``n_fast × n_slow`` positions, one image each."""

    n_fast: int = 10
    n_slow: int = 10
    step_x_um: float = 10.0
    step_y_um: float = 10.0
    snake: bool = False
    vertical: bool = False
    hit_rate: float = 0.5

    kind = "grid"


Scan = RotationScan | StillsScan | GridScan


@dataclass(frozen=True, slots=True)
class Background:
    """Diffuse scattering and noise, in photons per pixel at the detector centre."""

    constant_photons: float = 0.5
    water_ring_photons: float = 3.0
    air_scatter_photons: float = 1.0
    ice_rings: bool = False
    ice_ring_photons: float = 5.0
    poisson_noise: bool = True


@dataclass(frozen=True, slots=True)
class Dataset:
    """Run-level settings carried in the start message (Jungfraujoch DatasetSettings)."""

    number_of_images: int = 10
    images_per_trigger: int = 1
    images_per_file: int = 1000
    count_time_s: float = 0.0005
    frame_time_s: float = 0.0005
    file_prefix: str = "jfsim"
    series_id: int = 1
    series_unique_id: str = ""
    sample_name: str = "sample"
    experiment_group: str = ""
    compression: str = "bslz4"
    file_format: str = "vds"
    header_appendix: Any = None
    image_appendix: Any = None
    max_spot_count: int = 250
    source_name: str = "Swiss Light Source"
    source_type: str = "Synchrotron X-ray Source"
    instrument_name: str = "jfsim"

    @property
    def run_name(self) -> str:
        """Jungfraujoch's default run name: ``<run_number>:<file_prefix>``."""
        return self.series_unique_id or f"{self.series_id}:{self.file_prefix}"


@dataclass(frozen=True, slots=True)
class Experiment:
    detector: Detector
    beam: Beam
    position: DetectorPosition
    crystal: Crystal
    scan: Scan
    background: Background = field(default_factory=Background)
    dataset: Dataset = field(default_factory=Dataset)
    seed: int = 1
    name: str = "custom"


def detector_panel(experiment: Experiment) -> Panel:
    """The assembled detector as one flat panel in the lab frame, from the experiment's
    detector and position (beam centre, distance, PONI tilts). The renderer places its
    pixels with it, and so do the CrystFEL geometry files."""
    detector, position = experiment.detector, experiment.position
    return panel_from_position(
        distance_mm=position.distance_mm,
        beam_x_pxl=position.beam_x_pxl,
        beam_y_pxl=position.beam_y_pxl,
        pixel_size_mm=detector.pixel_size_mm,
        width_pxl=detector.width_pxl,
        height_pxl=detector.height_pxl,
        poni_rot1_rad=position.poni_rot1_rad,
        poni_rot2_rad=position.poni_rot2_rad,
        poni_rot3_rad=position.poni_rot3_rad,
    )


def _cell(where: str, value: Any) -> UnitCell:
    if isinstance(value, Mapping):
        names = ("a", "b", "c", "alpha", "beta", "gamma")
        unknown = set(value) - set(names)
        if unknown:
            raise ConfigError(
                f"{where}: unknown keys {sorted(unknown)}; use a, b, c, alpha, beta, gamma"
            )
        missing = [n for n in names if n not in value]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)}")
        value = [value[n] for n in names]
    if not isinstance(value, list | tuple) or len(value) != 6:
        raise ConfigError(f"{where}: expected [a, b, c, alpha, beta, gamma] in Å and degrees")
    numbers = [number(f"{where}[{i}]", v) for i, v in enumerate(value)]
    if any(n <= 0 for n in numbers[:3]) or any(not 0 < n < 180 for n in numbers[3:]):
        raise ConfigError(f"{where}: lengths must be > 0 Å and angles within (0, 180) deg")
    return UnitCell(*numbers)


#: Photon energies jfsim simulates (keV), whichever key gives them.
ENERGY_RANGE_keV = (1.0, 100.0)


def _energy_in_range(energy_keV: float) -> str | None:
    low, high = ENERGY_RANGE_keV
    if low <= energy_keV <= high:
        return None
    return f"must be within [{low:g}, {high:g}] keV, got {energy_keV:g}"


def _wavelength_to_energy(wavelength_A: float) -> float:
    """keV of a wavelength; NaN for a non-positive one (refused by the range check)."""
    return angstrom_to_kev(wavelength_A) if wavelength_A > 0 else math.nan


def _wavelength_in_range(energy_keV: float) -> str | None:
    """The energy range, said in Å (the check sees the converted energy)."""
    low, high = ENERGY_RANGE_keV
    if low <= energy_keV <= high:
        return None
    shortest_A, longest_A = kev_to_angstrom(high), kev_to_angstrom(low)
    given = "a non-positive value" if math.isnan(energy_keV) else f"{kev_to_angstrom(energy_keV):g}"
    return (
        f"must be within [{shortest_A:.4g}, {longest_A:.4g}] Å ({low:g}–{high:g} keV), got {given}"
    )


_SECTIONS: dict[str, dict[str, KeySpec]] = {
    "beam": {
        "energy_keV": KeySpec("energy_keV", quantity("keV"), check=_energy_in_range),
        "wavelength_A": KeySpec(
            "energy_keV", quantity("A"), convert=_wavelength_to_energy, check=_wavelength_in_range
        ),
        "flux_photons_per_s": KeySpec("flux_photons_per_s", number, check=positive),
        "polarization_factor": KeySpec(
            "polarization_factor",
            number,
            check=lambda v: None if -1 <= v <= 1 else f"must be within [-1, 1], got {v}",
        ),
        "divergence_deg": KeySpec(
            "divergence_rad", quantity("deg"), convert=deg_to_rad, check=non_negative
        ),
        "divergence_rad": KeySpec("divergence_rad", quantity("rad"), check=non_negative),
        "bandwidth_fraction": KeySpec("bandwidth_fraction", number, check=fraction),
        "transmission": KeySpec("transmission", number, check=fraction),
    },
    "position": {
        "distance_mm": KeySpec("distance_mm", quantity("mm"), check=positive),
        "beam_x_pxl": KeySpec("beam_x_pxl", number),
        "beam_y_pxl": KeySpec("beam_y_pxl", number),
        "poni_rot1_rad": KeySpec("poni_rot1_rad", quantity("rad")),
        "poni_rot2_rad": KeySpec("poni_rot2_rad", quantity("rad")),
        "poni_rot3_rad": KeySpec("poni_rot3_rad", quantity("rad")),
        "poni_rot1_deg": KeySpec("poni_rot1_rad", quantity("deg"), convert=deg_to_rad),
        "poni_rot2_deg": KeySpec("poni_rot2_rad", quantity("deg"), convert=deg_to_rad),
        "poni_rot3_deg": KeySpec("poni_rot3_rad", quantity("deg"), convert=deg_to_rad),
    },
    "crystal": {
        "unit_cell": KeySpec("unit_cell", _cell),
        "space_group_number": KeySpec(
            "space_group_number",
            integer,
            check=lambda v: None if 1 <= v <= 230 else f"must be within [1, 230], got {v}",
        ),
        "mosaicity_deg": KeySpec(
            "mosaicity_rad", quantity("deg"), convert=deg_to_rad, check=non_negative
        ),
        "domain_size_A": KeySpec("domain_size_A", quantity("A"), check=positive),
        "b_factor_A2": KeySpec("b_factor_A2", quantity("A2")),
        "orientation": KeySpec("orientation", matrix3),
        "intensity_model": KeySpec("intensity_model", text, check=one_of("wilson", "flat")),
        "intensity_scale_photons": KeySpec("intensity_scale_photons", number, check=positive),
        "resolution_limit_A": KeySpec("resolution_limit_A", quantity("A"), check=positive),
    },
    "rotation": {
        "start_deg": KeySpec("start_rad", quantity("deg"), convert=deg_to_rad),
        "step_deg": KeySpec(
            "step_rad",
            quantity("deg"),
            convert=deg_to_rad,
            check=lambda v: None if v != 0 else "must not be 0",
        ),
        "axis_name": KeySpec("axis_name", text),
        "axis_vector": KeySpec("axis_vector", vector3),
    },
    "stills": {
        "hit_rate": KeySpec("hit_rate", number, check=fraction),
        "lattices_per_hit": KeySpec(
            "lattices_per_hit",
            integer,
            check=lambda v: None if 1 <= v <= 8 else f"must be within [1, 8], got {v}",
        ),
    },
    "grid": {
        "n_fast": KeySpec("n_fast", integer, check=positive),
        "n_slow": KeySpec("n_slow", integer, check=positive),
        "step_x_um": KeySpec("step_x_um", quantity("um"), check=positive),
        "step_y_um": KeySpec("step_y_um", quantity("um"), check=positive),
        "snake": KeySpec("snake", flag),
        "vertical": KeySpec("vertical", flag),
        "hit_rate": KeySpec("hit_rate", number, check=fraction),
    },
    "background": {
        "constant_photons": KeySpec("constant_photons", number, check=non_negative),
        "water_ring_photons": KeySpec("water_ring_photons", number, check=non_negative),
        "air_scatter_photons": KeySpec("air_scatter_photons", number, check=non_negative),
        "ice_rings": KeySpec("ice_rings", flag),
        "ice_ring_photons": KeySpec("ice_ring_photons", number, check=non_negative),
        "poisson_noise": KeySpec("poisson_noise", flag),
    },
    "dataset": {
        "number_of_images": KeySpec("number_of_images", integer, check=positive),
        "images_per_trigger": KeySpec("images_per_trigger", integer, check=positive),
        "images_per_file": KeySpec("images_per_file", integer, check=positive),
        "count_time_s": KeySpec("count_time_s", quantity("s"), check=positive),
        "frame_time_s": KeySpec("frame_time_s", quantity("s"), check=positive),
        "file_prefix": KeySpec("file_prefix", text),
        "series_id": KeySpec("series_id", integer, check=non_negative),
        "series_unique_id": KeySpec("series_unique_id", text),
        "sample_name": KeySpec("sample_name", text),
        "experiment_group": KeySpec("experiment_group", text),
        "compression": KeySpec("compression", text, check=one_of("bslz4", "none")),
        "file_format": KeySpec("file_format", text, check=one_of("legacy", "vds", "integrated")),
        "header_appendix": KeySpec("header_appendix", any_value),
        "image_appendix": KeySpec("image_appendix", any_value),
        "max_spot_count": KeySpec("max_spot_count", integer, check=positive),
        "source_name": KeySpec("source_name", text),
        "source_type": KeySpec("source_type", text),
        "instrument_name": KeySpec("instrument_name", text),
    },
}
_SCAN_CLASSES: dict[str, type] = {"rotation": RotationScan, "stills": StillsScan, "grid": GridScan}
_DETECTOR_KEYS = ("preset", "image_dtype", "sensor_thickness_mm", "serial_number")


def _parse_section(section: str, table: Mapping[str, Any]) -> dict[str, Any]:
    """Parse one section into dataclass keyword arguments, rejecting unknown keys."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{section}]: expected a table of keys, got {type(table).__name__}")
    keys = _SECTIONS[section]
    parsed: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in keys:
            raise ConfigError(
                f"[{section}] {key}: unknown key; known keys are {', '.join(sorted(keys))}"
            )
        spec = keys[key]
        where = f"[{section}] {key}"
        value = spec.convert(spec.parse(where, raw))
        problem = spec.check(value) if spec.check else None
        if problem:
            raise ConfigError(f"{where}: {problem}")
        if spec.field in parsed:
            raise ConfigError(f"{where}: sets {spec.field} a second time (give only one unit)")
        parsed[spec.field] = value
    return parsed


def _detector_from_table(table: Mapping[str, Any]) -> Detector:
    unknown = set(table) - set(_DETECTOR_KEYS)
    if unknown:
        raise ConfigError(
            f"[detector] {sorted(unknown)[0]}: unknown key; "
            f"known keys are {', '.join(_DETECTOR_KEYS)}"
        )
    detector = detector_preset(text("[detector] preset", table.get("preset", "JF4M")))
    if "image_dtype" in table:
        detector = detector.with_image_dtype(text("[detector] image_dtype", table["image_dtype"]))
    if "sensor_thickness_mm" in table:
        thickness = quantity("mm")("[detector] sensor_thickness_mm", table["sensor_thickness_mm"])
        if thickness <= 0:
            raise ConfigError(f"[detector] sensor_thickness_mm: must be > 0, got {thickness}")
        detector = replace(detector, sensor_thickness_mm=thickness)
    if "serial_number" in table:
        detector = replace(
            detector, serial_number=text("[detector] serial_number", table["serial_number"])
        )
    return detector


def experiment_from_dict(document: Mapping[str, Any]) -> Experiment:
    """Build an Experiment from a parsed TOML/JSON document (sections as in the README)."""
    top_keys = {
        "name",
        "seed",
        "detector",
        "beam",
        "position",
        "crystal",
        "scan",
        "background",
        "dataset",
    }
    unknown = set(document) - top_keys
    if unknown:
        raise ConfigError(
            f"{sorted(unknown)[0]}: unknown section; "
            f"known sections are {', '.join(sorted(top_keys))}"
        )
    detector = _detector_from_table(document.get("detector", {}))
    position_args = _parse_section("position", document.get("position", {}))
    position_args.setdefault("distance_mm", 100.0)
    position_args.setdefault("beam_x_pxl", detector.width_pxl / 2)
    position_args.setdefault("beam_y_pxl", detector.height_pxl / 2)
    if "crystal" not in document or "unit_cell" not in document["crystal"]:
        raise ConfigError(
            "[crystal] unit_cell: missing; give [a, b, c, alpha, beta, gamma] in Å and degrees"
        )
    crystal_args = _parse_section("crystal", document["crystal"])
    if "space_group_number" not in crystal_args:
        raise ConfigError("[crystal] space_group_number: missing")
    scan_table = dict(document.get("scan", {"type": "rotation"}))
    scan_type = scan_table.pop("type", "rotation")
    if scan_type not in _SCAN_CLASSES:
        raise ConfigError(
            f"[scan] type: must be one of {', '.join(_SCAN_CLASSES)}, got {scan_type!r}"
        )
    scan = _SCAN_CLASSES[scan_type](**_parse_section(scan_type, scan_table))
    seed = document.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed: expected an integer within [0, 2^63), got {seed!r}")
    experiment = Experiment(
        detector=detector,
        beam=Beam(**_parse_section("beam", document.get("beam", {}))),
        position=DetectorPosition(**position_args),
        crystal=Crystal(**crystal_args),
        scan=scan,
        background=Background(**_parse_section("background", document.get("background", {}))),
        dataset=Dataset(**_parse_section("dataset", document.get("dataset", {}))),
        seed=seed,
        name=text("name", document.get("name", "custom")),
    )
    _check_consistency(experiment)
    return experiment


def _check_consistency(experiment: Experiment) -> None:
    dataset = experiment.dataset
    if dataset.count_time_s > dataset.frame_time_s:
        raise ConfigError(
            f"[dataset] count_time_s: {dataset.count_time_s} s exceeds frame_time_s "
            f"{dataset.frame_time_s} s"
        )
    if isinstance(experiment.scan, GridScan):
        positions = experiment.scan.n_fast * experiment.scan.n_slow
        if dataset.number_of_images > positions:
            raise ConfigError(
                f"[dataset] number_of_images: {dataset.number_of_images} exceeds the "
                f"{positions} grid positions"
            )
    prefix = dataset.file_prefix
    if prefix.startswith("/") or prefix == ".." or prefix.startswith("../") or "/../" in prefix:
        raise ConfigError(f"[dataset] file_prefix: {prefix!r} must be a relative path without '..'")


def experiment_to_dict(experiment: Experiment) -> dict[str, Any]:
    """A JSON-able description that ``experiment_from_dict`` reads back to an equal value."""
    scan = experiment.scan
    scan_table: dict[str, Any] = {"type": scan.kind}
    if isinstance(scan, RotationScan):
        scan_table |= {
            "start_deg": rad_to_deg(scan.start_rad),
            "step_deg": rad_to_deg(scan.step_rad),
            "axis_name": scan.axis_name,
            "axis_vector": list(scan.axis_vector),
        }
    else:
        scan_table |= asdict(scan)
    crystal = experiment.crystal
    crystal_table: dict[str, Any] = {
        "unit_cell": list(crystal.unit_cell.as_tuple()),
        "space_group_number": crystal.space_group_number,
        "mosaicity_deg": rad_to_deg(crystal.mosaicity_rad),
        "domain_size_A": crystal.domain_size_A,
        "b_factor_A2": crystal.b_factor_A2,
        "intensity_model": crystal.intensity_model,
        "intensity_scale_photons": crystal.intensity_scale_photons,
        "resolution_limit_A": crystal.resolution_limit_A,
    }
    if crystal.orientation is not None:
        crystal_table["orientation"] = [list(row) for row in crystal.orientation]
    beam = experiment.beam
    dataset = {f.name: getattr(experiment.dataset, f.name) for f in fields(Dataset)}
    for optional in ("header_appendix", "image_appendix"):
        if dataset[optional] is None:
            del dataset[optional]
    return {
        "name": experiment.name,
        "seed": experiment.seed,
        "detector": {
            "preset": experiment.detector.name,
            "image_dtype": experiment.detector.image_dtype.name,
            "sensor_thickness_mm": experiment.detector.sensor_thickness_mm,
            "serial_number": experiment.detector.serial_number,
        },
        "beam": {
            "energy_keV": beam.energy_keV,
            "flux_photons_per_s": beam.flux_photons_per_s,
            "polarization_factor": beam.polarization_factor,
            "divergence_rad": beam.divergence_rad,
            "bandwidth_fraction": beam.bandwidth_fraction,
            "transmission": beam.transmission,
        },
        "position": asdict(experiment.position),
        "crystal": crystal_table,
        "scan": scan_table,
        "background": asdict(experiment.background),
        "dataset": dataset,
    }


def load_experiment(path: str | Path) -> Experiment:
    """Read an experiment from a ``.toml`` or ``.json`` file."""
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read experiment file ({error.strerror})") from error
    try:
        if path.suffix == ".json":
            document = json.loads(content)
        else:
            document = tomllib.loads(content)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(
            f"{path}: not valid {path.suffix.lstrip('.').upper() or 'TOML'}: {error}"
        ) from error
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the top level must be a table of sections")
    try:
        return experiment_from_dict(document)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


# ------------------------------------------------------------------------------- presets


def experiment_preset_names() -> list[str]:
    """Names of the bundled experiment presets (``jfsim presets`` lists them)."""
    folder = resources.files("jfsim") / "data" / "presets"
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def experiment_preset(name: str) -> Experiment:
    """A bundled experiment by name (see ``jfsim presets``)."""
    names = experiment_preset_names()
    if name not in names:
        raise ConfigError(
            f"preset {name!r} is not known; choose one of {', '.join(names)} (see 'jfsim presets')"
        )
    content = (resources.files("jfsim") / "data" / "presets" / f"{name}.toml").read_text(
        encoding="utf-8"
    )
    return experiment_from_dict(tomllib.loads(content))


def experiment_preset_summary(name: str) -> str:
    """The one-line description a preset file carries in its leading comment."""
    content = (resources.files("jfsim") / "data" / "presets" / f"{name}.toml").read_text(
        encoding="utf-8"
    )
    first = content.splitlines()[0] if content else ""
    return first.lstrip("# ").strip()


# ------------------------------------------------------------------- broker /start bodies

#: jfjoch_broker DatasetSettings keys jfsim understands → (section, key in our schema).
_BROKER_KEYS: dict[str, tuple[str, str]] = {
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
        set(_BROKER_KEYS)
        | _BROKER_KEYS_IGNORED
        | {"ntrigger", "image_time_us", "goniometer", "grid_scan"}
    )
    for key, value in body.items():
        if key not in handled:
            raise ConfigError(
                f"dataset settings: unknown key {key!r}; "
                f"known keys are {', '.join(sorted(handled))}"
            )
        if key in _BROKER_KEYS:
            section, our_key = _BROKER_KEYS[key]
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
    for broker_key, (section, our_key) in _BROKER_KEYS.items():
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
