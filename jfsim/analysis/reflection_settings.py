"""Settings of the reflection steps: summation integration, and scaling and merging.

The broker has no model for these (its ``BraggIntegrationSettings`` only chooses the
integration model and ``max_hkl``), so they are jfsim's own sections of the settings
document, named after seed 003's options:

    "integration": {"signal_radius_pxl": 3.0, "background_inner_radius_pxl": 5.0,
                    "background_outer_radius_pxl": 7.0, "mosaicity_deg": 0.1,
                    "profile_radius_invA": 0.001, "high_resolution_limit_A": null},
    "scaling": {"merge": false, "partiality_model": "fixed", "anomalous": false,
                "iterations": 3, "high_resolution_limit_A": null, "min_partiality": 0.02,
                "reject_outliers_sigma": null, "output_format": "mtz"}

``--integration-radius r1[,r2,r3]`` sets the three radii (one value: r2 = r1 + 2,
r3 = r1 + 4); ``-M``, ``-P``, ``-A``, ``--scaling-iterations``,
``--scaling-high-resolution``, ``--min-partiality``, ``--reject-outliers`` and
``--scaling-output`` set the scaling fields. Values are checked here, with one-line errors
naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

from jfsim.analysis.errors import SettingsError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "OUTPUT_FORMATS",
    "PARTIALITY_MODELS",
    "IntegrationSettings",
    "ScalingSettings",
    "parse_integration_radii",
    "section_from_mapping",
]

#: ``-P``: how scaling treats partial reflections (docs/process.md, "Scaling and merging").
PARTIALITY_MODELS = ("fixed", "rot", "unity")
#: ``--scaling-output``: the merged reflection file's format.
OUTPUT_FORMATS = ("mtz", "cif", "txt")
#: Largest integration radius accepted (pixels).
MAX_RADIUS_PXL = 50.0


@dataclass(frozen=True, slots=True)
class IntegrationSettings:
    """Summation integration (analysis.md §4).

    Attributes:
        signal_radius_pxl: r1, the signal disc around the predicted centre.
        background_inner_radius_pxl, background_outer_radius_pxl: r2 < r3, the annulus
            whose mean (and variance) estimate the background under the disc.
        mosaicity_deg: rms mosaic spread used for a lattice whose indexing gave none.
        profile_radius_invA: reciprocal-lattice-point radius (stills) likewise.
        high_resolution_limit_A: no reflection beyond it is predicted (None: the
            detector's corners).
    """

    signal_radius_pxl: float = 3.0
    background_inner_radius_pxl: float = 5.0
    background_outer_radius_pxl: float = 7.0
    mosaicity_deg: float = 0.1
    profile_radius_invA: float = 1e-3
    high_resolution_limit_A: float | None = None

    def __post_init__(self) -> None:
        r1 = self.signal_radius_pxl
        r2 = self.background_inner_radius_pxl
        r3 = self.background_outer_radius_pxl
        if not (0 < r1 <= r2 < r3 <= MAX_RADIUS_PXL):
            raise SettingsError(
                f"integration radii (--integration-radius): need 0 < r1 <= r2 < r3 <= "
                f"{MAX_RADIUS_PXL:g} pixels, got {r1:g}, {r2:g}, {r3:g}"
            )
        _positive("integration.mosaicity_deg", self.mosaicity_deg, allow_zero=True)
        _positive("integration.profile_radius_invA", self.profile_radius_invA, allow_zero=True)
        if self.high_resolution_limit_A is not None:
            _positive("integration.high_resolution_limit_A", self.high_resolution_limit_A)


@dataclass(frozen=True, slots=True)
class ScalingSettings:
    """Scaling and merging (analysis.md §4; seed 003's options).

    Attributes:
        merge: scale and merge after integration (``-M``).
        partiality_model: ``fixed`` (each observation corrected by its predicted
            partiality), ``rot`` (partials of one crossing on consecutive rotation images
            summed into one full observation; crossings recorded to less than 95 % are
            dropped) or ``unity`` (every observation taken as full) (``-P``).
        anomalous: keep Friedel mates apart (``-A``).
        iterations: scale-factor refinement cycles (``--scaling-iterations``).
        high_resolution_limit_A: observations beyond it are neither scaled nor merged
            (``--scaling-high-resolution``; None: no limit).
        min_partiality: observations recording less of their reflection are dropped
            (``--min-partiality``).
        reject_outliers_sigma: drop observations this many σ from their reflection's
            median (``--reject-outliers``; None: off).
        output_format: ``mtz``, ``cif`` or ``txt`` (``--scaling-output``).
    """

    merge: bool = False
    partiality_model: str = "fixed"
    anomalous: bool = False
    iterations: int = 3
    high_resolution_limit_A: float | None = None
    min_partiality: float = 0.02
    reject_outliers_sigma: float | None = None
    output_format: str = "mtz"

    def __post_init__(self) -> None:
        if self.partiality_model not in PARTIALITY_MODELS:
            raise SettingsError(
                f"scaling.partiality_model (-P): {self.partiality_model!r} is not one of "
                f"{', '.join(PARTIALITY_MODELS)}"
            )
        if self.output_format not in OUTPUT_FORMATS:
            raise SettingsError(
                f"scaling.output_format (--scaling-output): {self.output_format!r} is not one "
                f"of {', '.join(OUTPUT_FORMATS)}"
            )
        if not 0 <= self.iterations <= 100:
            raise SettingsError(
                f"scaling.iterations (--scaling-iterations): must be in 0..100, "
                f"got {self.iterations}"
            )
        if not 0 <= self.min_partiality < 1:
            raise SettingsError(
                f"scaling.min_partiality (--min-partiality): must be in [0, 1), "
                f"got {self.min_partiality}"
            )
        if self.high_resolution_limit_A is not None:
            _positive(
                "scaling.high_resolution_limit_A (--scaling-high-resolution)",
                self.high_resolution_limit_A,
            )
        if self.reject_outliers_sigma is not None:
            _positive(
                "scaling.reject_outliers_sigma (--reject-outliers)", self.reject_outliers_sigma
            )


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise SettingsError(f"{name}: must be a finite number {bound}, got {value!r}")


def parse_integration_radii(text: str) -> tuple[float, float, float]:
    """``--integration-radius r1[,r2,r3]`` → (r1, r2, r3); one value: r2 = r1 + 2,
    r3 = r1 + 4 (seed 003)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError as error:
        raise SettingsError(
            f"--integration-radius {text!r}: expected r1 or r1,r2,r3 in pixels, e.g. 3 or 3,5,7"
        ) from error
    if len(values) == 1:
        return values[0], values[0] + 2.0, values[0] + 4.0
    if len(values) == 3:
        return values[0], values[1], values[2]
    raise SettingsError(
        f"--integration-radius {text!r}: give one radius or three (r1,r2,r3), not {len(values)}"
    )


Section = TypeVar("Section", bound="DataclassInstance")


def section_from_mapping(cls: type[Section], given: Any, where: str) -> Section:
    """A section from its JSON object: unknown keys refused, types checked, missing keys
    take the defaults."""
    if given is None:
        return cls()
    if not isinstance(given, Mapping):
        raise SettingsError(f"{where}: expected an object")
    known = {field.name: field for field in fields(cls)}
    for key in given:
        if key not in known:
            raise SettingsError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
    values: dict[str, Any] = {}
    defaults = asdict(cls())
    for name, value in given.items():
        values[name] = _checked(f"{where}.{name}", value, defaults[name], known[name].type)
    return cls(**values)


def _checked(where: str, value: Any, default: Any, annotation: Any) -> Any:
    optional = "None" in str(annotation)
    if value is None:
        if optional:
            return None
        raise SettingsError(f"{where}: may not be null")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SettingsError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int) and "float" not in str(annotation):
        if not isinstance(value, int) or isinstance(value, bool):
            raise SettingsError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise SettingsError(f"{where}: expected a string, got {value!r}")
        return value
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise SettingsError(f"{where}: expected a number, got {value!r}")
    return float(value)
