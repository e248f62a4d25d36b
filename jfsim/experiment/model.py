"""The experiment model: frozen dataclasses in canonical units (mm, Å, keV, radians, s).

Each field of a section (``Beam``, ``DetectorPosition``, ``Crystal``, the scans,
``Background``, ``Dataset``) declares the file keys that set it (``keys(Key(...))``, see
``jfsim.experiment.keys``): its unit, parser and range check live beside it, and the loader
and ``experiment_to_dict`` are derived from them. To add an experiment key, add a field here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jfsim.config_values import (
    any_value,
    between,
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
from jfsim.detectors import Detector
from jfsim.errors import ConfigError
from jfsim.experiment.keys import Key, keys
from jfsim.geometry.panel import Panel, panel_from_position
from jfsim.units import angstrom_to_kev, deg_to_rad, kev_to_angstrom, rad_to_deg

__all__ = [
    "MAX_IMAGES",
    "SCANS",
    "SECTIONS",
    "Background",
    "Beam",
    "Crystal",
    "Dataset",
    "DetectorPosition",
    "ENERGY_RANGE_keV",
    "Experiment",
    "GridScan",
    "RotationScan",
    "Scan",
    "StillsScan",
    "UnitCell",
    "detector_panel",
]

#: Photon energies jfsim simulates (keV), whichever key gives them.
ENERGY_RANGE_keV = (1.0, 100.0)
#: Images in one series (``jfsim write`` accepts no more in a start message). The master
#: holds ~60 bytes of per-image metadata (goniometer angles, polarisation, which images
#: arrived), written in one piece at the end: 10^7 images keep that below 1 GB. At 2 kHz,
#: 10^7 images are 83 minutes of collection.
MAX_IMAGES = 10_000_000


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


def _cell(where: str, value: Any) -> UnitCell:
    """``[a, b, c, alpha, beta, gamma]`` or ``{a = …, …}`` in Å and degrees."""
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


def _within(low: int, high: int) -> Any:
    return lambda v: None if low <= v <= high else f"must be within [{low}, {high}], got {v}"


def _degrees(name: str, **options: Any) -> Key:
    """A key in degrees for a field in radians (written back in degrees)."""
    return Key(name, quantity("deg"), to_field=deg_to_rad, from_field=rad_to_deg, **options)


def _as_list(value: Any) -> list[Any]:
    return list(value)


@dataclass(frozen=True, slots=True)
class Beam:
    """Incident beam. ``polarization_factor`` follows pyFAI: +1 = fully horizontal."""

    energy_keV: float = field(
        default=12.4,
        metadata=keys(
            Key("energy_keV", quantity("keV"), check=_energy_in_range),
            Key(
                "wavelength_A",
                quantity("A"),
                to_field=_wavelength_to_energy,
                check=_wavelength_in_range,
            ),
        ),
    )
    flux_photons_per_s: float = field(
        default=1e12, metadata=keys(Key("flux_photons_per_s", number, check=positive))
    )
    polarization_factor: float = field(
        default=0.99,
        metadata=keys(
            Key(
                "polarization_factor",
                number,
                check=lambda v: None if -1 <= v <= 1 else f"must be within [-1, 1], got {v}",
            )
        ),
    )
    divergence_rad: float = field(
        default=1e-4,
        metadata=keys(
            Key("divergence_rad", quantity("rad"), check=non_negative),
            _degrees("divergence_deg", check=non_negative),
        ),
    )
    bandwidth_fraction: float = field(
        default=2e-4, metadata=keys(Key("bandwidth_fraction", number, check=fraction))
    )
    transmission: float = field(
        default=1.0, metadata=keys(Key("transmission", number, check=fraction))
    )

    @property
    def wavelength_A(self) -> float:
        return kev_to_angstrom(self.energy_keV)


@dataclass(frozen=True, slots=True)
class DetectorPosition:
    """Where the detector sits: beam centre in continuous pixel coordinates (centre of
    pixel i at i + 0.5), sample-detector distance, optional PONI tilts (pyFAI convention).
    A file that leaves out the distance or beam centre gets 100 mm and the image centre."""

    distance_mm: float = field(metadata=keys(Key("distance_mm", quantity("mm"), check=positive)))
    beam_x_pxl: float = field(metadata=keys(Key("beam_x_pxl", number)))
    beam_y_pxl: float = field(metadata=keys(Key("beam_y_pxl", number)))
    poni_rot1_rad: float = field(
        default=0.0, metadata=keys(Key("poni_rot1_rad", quantity("rad")), _degrees("poni_rot1_deg"))
    )
    poni_rot2_rad: float = field(
        default=0.0, metadata=keys(Key("poni_rot2_rad", quantity("rad")), _degrees("poni_rot2_deg"))
    )
    poni_rot3_rad: float = field(
        default=0.0, metadata=keys(Key("poni_rot3_rad", quantity("rad")), _degrees("poni_rot3_deg"))
    )


@dataclass(frozen=True, slots=True)
class Crystal:
    """The sample crystal. ``orientation`` is a row-major 3×3 U matrix, or None for a
    random orientation drawn from the experiment seed. A file must give the cell and the
    space group."""

    unit_cell: UnitCell = field(
        metadata=keys(Key("unit_cell", _cell, from_field=lambda cell: list(cell.as_tuple())))
    )
    space_group_number: int = field(
        metadata=keys(Key("space_group_number", integer, check=_within(1, 230)))
    )
    mosaicity_rad: float = field(
        default=deg_to_rad(0.05), metadata=keys(_degrees("mosaicity_deg", check=non_negative))
    )
    domain_size_A: float = field(
        default=2000.0, metadata=keys(Key("domain_size_A", quantity("A"), check=positive))
    )
    b_factor_A2: float = field(default=20.0, metadata=keys(Key("b_factor_A2", quantity("A2"))))
    intensity_model: str = field(
        default="wilson",
        metadata=keys(Key("intensity_model", text, check=one_of("wilson", "flat"))),
    )
    intensity_scale_photons: float = field(
        default=2000.0, metadata=keys(Key("intensity_scale_photons", number, check=positive))
    )
    resolution_limit_A: float = field(
        default=1.6, metadata=keys(Key("resolution_limit_A", quantity("A"), check=positive))
    )
    orientation: tuple[tuple[float, float, float], ...] | None = field(
        default=None,
        metadata=keys(
            Key("orientation", matrix3, from_field=lambda rows: [list(row) for row in rows])
        ),
    )


@dataclass(frozen=True, slots=True)
class RotationScan:
    """A rotation sweep about ``axis_vector`` (McStas lab frame), one step per image."""

    start_rad: float = field(default=0.0, metadata=keys(_degrees("start_deg")))
    step_rad: float = field(
        default=deg_to_rad(0.1),
        metadata=keys(_degrees("step_deg", check=lambda v: None if v != 0 else "must not be 0")),
    )
    axis_name: str = field(default="omega", metadata=keys(Key("axis_name", text)))
    axis_vector: tuple[float, float, float] = field(
        default=(-1.0, 0.0, 0.0), metadata=keys(Key("axis_vector", vector3, from_field=_as_list))
    )

    kind = "rotation"


@dataclass(frozen=True, slots=True)
class StillsScan:
    """Serial crystallography: each image is a still of a randomly oriented crystal."""

    hit_rate: float = field(default=1.0, metadata=keys(Key("hit_rate", number, check=fraction)))
    lattices_per_hit: int = field(
        default=1, metadata=keys(Key("lattices_per_hit", integer, check=_within(1, 8)))
    )

    kind = "stills"


@dataclass(frozen=True, slots=True)
class GridScan:
    """A raster of stills: ``n_fast × n_slow`` positions, one image each."""

    n_fast: int = field(default=10, metadata=keys(Key("n_fast", integer, check=positive)))
    n_slow: int = field(default=10, metadata=keys(Key("n_slow", integer, check=positive)))
    step_x_um: float = field(
        default=10.0, metadata=keys(Key("step_x_um", quantity("um"), check=positive))
    )
    step_y_um: float = field(
        default=10.0, metadata=keys(Key("step_y_um", quantity("um"), check=positive))
    )
    snake: bool = field(default=False, metadata=keys(Key("snake", flag)))
    vertical: bool = field(default=False, metadata=keys(Key("vertical", flag)))
    hit_rate: float = field(default=0.5, metadata=keys(Key("hit_rate", number, check=fraction)))

    kind = "grid"


Scan = RotationScan | StillsScan | GridScan


@dataclass(frozen=True, slots=True)
class Background:
    """Diffuse scattering and noise, in photons per pixel at the detector centre."""

    constant_photons: float = field(
        default=0.5, metadata=keys(Key("constant_photons", number, check=non_negative))
    )
    water_ring_photons: float = field(
        default=3.0, metadata=keys(Key("water_ring_photons", number, check=non_negative))
    )
    air_scatter_photons: float = field(
        default=1.0, metadata=keys(Key("air_scatter_photons", number, check=non_negative))
    )
    ice_rings: bool = field(default=False, metadata=keys(Key("ice_rings", flag)))
    ice_ring_photons: float = field(
        default=5.0, metadata=keys(Key("ice_ring_photons", number, check=non_negative))
    )
    poisson_noise: bool = field(default=True, metadata=keys(Key("poisson_noise", flag)))


@dataclass(frozen=True, slots=True)
class Dataset:
    """Run-level settings carried in the start message (Jungfraujoch DatasetSettings)."""

    number_of_images: int = field(
        default=10,
        metadata=keys(Key("number_of_images", integer, check=between(1, MAX_IMAGES))),
    )
    images_per_trigger: int = field(
        default=1, metadata=keys(Key("images_per_trigger", integer, check=positive))
    )
    images_per_file: int = field(
        default=1000, metadata=keys(Key("images_per_file", integer, check=positive))
    )
    count_time_s: float = field(
        default=0.0005, metadata=keys(Key("count_time_s", quantity("s"), check=positive))
    )
    frame_time_s: float = field(
        default=0.0005, metadata=keys(Key("frame_time_s", quantity("s"), check=positive))
    )
    file_prefix: str = field(default="jfsim", metadata=keys(Key("file_prefix", text)))
    series_id: int = field(
        default=1, metadata=keys(Key("series_id", integer, check=between(0, 2**63 - 1)))
    )
    series_unique_id: str = field(default="", metadata=keys(Key("series_unique_id", text)))
    sample_name: str = field(default="sample", metadata=keys(Key("sample_name", text)))
    experiment_group: str = field(default="", metadata=keys(Key("experiment_group", text)))
    compression: str = field(
        default="bslz4", metadata=keys(Key("compression", text, check=one_of("bslz4", "none")))
    )
    file_format: str = field(
        default="vds",
        metadata=keys(Key("file_format", text, check=one_of("legacy", "vds", "integrated"))),
    )
    header_appendix: Any = field(default=None, metadata=keys(Key("header_appendix", any_value)))
    image_appendix: Any = field(default=None, metadata=keys(Key("image_appendix", any_value)))
    max_spot_count: int = field(
        default=250, metadata=keys(Key("max_spot_count", integer, check=positive))
    )
    source_name: str = field(default="Swiss Light Source", metadata=keys(Key("source_name", text)))
    source_type: str = field(
        default="Synchrotron X-ray Source", metadata=keys(Key("source_type", text))
    )
    instrument_name: str = field(default="jfsim", metadata=keys(Key("instrument_name", text)))

    @property
    def run_name(self) -> str:
        """Jungfraujoch's default run name: ``<run_number>:<file_prefix>``."""
        return self.series_unique_id or f"{self.series_id}:{self.file_prefix}"


@dataclass(frozen=True, slots=True)
class Experiment:
    """Everything jfsim pretends to measure; the file's sections, one field each."""

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


#: The file's sections made of key declarations → their dataclass.
SECTIONS: dict[str, type] = {
    "beam": Beam,
    "position": DetectorPosition,
    "crystal": Crystal,
    "background": Background,
    "dataset": Dataset,
}
#: ``[scan] type`` → its dataclass, whose keys sit beside ``type`` in ``[scan]``.
SCANS: dict[str, type[Scan]] = {scan.kind: scan for scan in (RotationScan, StillsScan, GridScan)}
