"""What ``jfsim process`` computes, in the broker's own vocabulary.

The analysis settings are the pydantic models of Jungfraujoch's REST API (PyPI
``jfjoch-client``): ``SpotFindingSettings``, ``AzimIntSettings`` and ``RoiDefinitions``,
validated by those models, so a body that works for ``PUT /config/spot_finding`` works here
unchanged. One JSON document holds them all, plus the few run options that change results:

    {"spot_finding": {...SpotFindingSettings...},
     "azim_int": {...AzimIntSettings...},
     "roi": {"box": {"rois": [...]}, "circle": {"rois": [...]}, "azim": {"rois": [...]}},
     "max_spots": 250,
     "images": {"start": 0, "end": null, "stride": 1},
     "indexing": {...IndexingSettings...}, "unit_cell": {...} | null,
     "space_group_number": null, "rotation_indexing": {"images": 30, "lattice_A": null}}

(the indexing keys: :mod:`jfsim.analysis.indexing.settings`).

Every key is optional in a settings file (jfsim's defaults fill the rest); an explicit
``null`` means "no limit" where the broker allows it. The document written into
``_process.h5`` is complete, so feeding it back (``--settings-from``) reproduces the run.
Unknown keys are refused: pydantic ignores them, a typo must not.
"""

from __future__ import annotations

import json
import logging
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import gemmi
import pydantic
from jfjoch_client.models.azim_int_settings import AzimIntSettings
from jfjoch_client.models.bragg_integration_settings import BraggIntegrationSettings
from jfjoch_client.models.roi_azim_list import RoiAzimList
from jfjoch_client.models.roi_azimuthal import RoiAzimuthal
from jfjoch_client.models.roi_box import RoiBox
from jfjoch_client.models.roi_box_list import RoiBoxList
from jfjoch_client.models.roi_circle import RoiCircle
from jfjoch_client.models.roi_circle_list import RoiCircleList
from jfjoch_client.models.roi_definitions import RoiDefinitions
from jfjoch_client.models.spot_finding_settings import SpotFindingSettings

from jfsim.analysis.errors import SettingsError
from jfsim.analysis.indexing.settings import INDEXING_KEYS, IndexingConfig
from jfsim.analysis.reflection_settings import (
    IntegrationSettings,
    ScalingSettings,
    section_from_mapping,
)

__all__ = [
    "DEFAULT_AZIM_INT",
    "DEFAULT_SPOT_FINDING",
    "ImageSelection",
    "ProcessSettings",
    "load_settings_text",
    "roi_list",
    "settings_from_file",
]

#: jfsim's defaults for the broker's required spot-finding fields (seed 003's CLI defaults:
#: 3σ, 10 photons, 1.5 Å, 250 spots; pixel counts and bands as Jungfraujoch ships them).
DEFAULT_SPOT_FINDING: dict[str, Any] = {
    "enable": True,
    "indexing": True,  # the broker's switch; off, or indexing.algorithm "None", skips indexing
    "signal_to_noise_threshold": 3.0,
    "photon_count_threshold": 10,
    "min_pix_per_spot": 2,
    "max_pix_per_spot": 50,
    "high_resolution_limit": 1.5,
    "low_resolution_limit": None,
    "high_resolution_limit_for_spot_count_low_res": 5.0,
    "quick_integration": False,
    "ice_ring_width_q_recipA": 0.03,
    "high_res_gap_Q_recipA": None,
    "adaptive_threshold": False,
    "false_pixels_per_frame": 100.0,
}

#: jfsim's defaults for azimuthal integration: 1D, 0.01 Å⁻¹ bins from 0.1 Å⁻¹ to the
#: detector's corner, both corrections on.
DEFAULT_AZIM_INT: dict[str, Any] = {
    "polarization_corr": True,
    "solid_angle_corr": True,
    "high_q_recipA": None,
    "low_q_recipA": 0.1,
    "q_spacing": 0.01,
    "azimuthal_bins": 1,
    "force_cpu": False,
}

#: jfsim's defaults for the broker's Bragg integration model: box summation (the only model
#: jfsim process implements), Miller indices up to 100 (the broker's default).
DEFAULT_BRAGG_INTEGRATION: dict[str, Any] = {"integration_model": "BoxSum", "max_hkl": 100}

DEFAULT_MAX_SPOTS = 250
#: Largest ``max_spots`` accepted (the CXI arrays are [n_images, max_spots]).
MAX_SPOTS_LIMIT = 100_000

_SECTIONS: dict[str, type[pydantic.BaseModel]] = {
    "spot_finding": SpotFindingSettings,
    "azim_int": AzimIntSettings,
    "roi": RoiDefinitions,
    "bragg_integration": BraggIntegrationSettings,
}
#: jfsim's own sections (:mod:`jfsim.analysis.reflection_settings`).
_OWN_SECTIONS: dict[str, type[IntegrationSettings] | type[ScalingSettings]] = {
    "integration": IntegrationSettings,
    "scaling": ScalingSettings,
}
_TOP_LEVEL = (
    *_SECTIONS, *_OWN_SECTIONS, "space_group_number", "max_spots", "images", *INDEXING_KEYS
)  # fmt: skip
_UNION_TAGS = {"float", "int", "str", "bool", "list", "dict"}
_log = logging.getLogger(__name__)
#: ``/entry/roi_defs/roi_map`` is uint16: one bit per ROI.
MAX_ROIS = 16
_IMAGE_KEYS = ("start", "end", "stride")


@dataclass(frozen=True, slots=True)
class ImageSelection:
    """Which images of the run to analyse: ``start`` … ``end`` (inclusive, ``None`` = the
    last image), every ``stride``-th; seed 003's ``-s``, ``-e``, ``-t``."""

    start: int = 0
    end: int | None = None
    stride: int = 1

    def __post_init__(self) -> None:
        if self.start < 0:
            raise SettingsError(f"images.start (-s): must be >= 0, got {self.start}")
        if self.end is not None and self.end < self.start:
            raise SettingsError(f"images.end (-e): must be >= start {self.start}, got {self.end}")
        if self.stride < 1:
            raise SettingsError(f"images.stride (-t): must be >= 1, got {self.stride}")

    def image_numbers(self, n_images: int) -> range:
        """The selected image numbers (0-based) of a run with ``n_images`` images."""
        if self.start >= n_images:
            raise SettingsError(
                f"images.start (-s) {self.start}: the run has only {n_images} images "
                f"(0..{n_images - 1})"
            )
        last = n_images - 1 if self.end is None else min(self.end, n_images - 1)
        if self.end is not None and self.end > last:
            _log.warning(
                "images.end (-e) %d: the run has only %d images; analysing up to image %d",
                self.end,
                n_images,
                last,
            )
        return range(self.start, last + 1, self.stride)

    def as_dict(self) -> dict[str, int | None]:
        return {"start": self.start, "end": self.end, "stride": self.stride}


def _empty_rois() -> RoiDefinitions:
    return RoiDefinitions(
        box=RoiBoxList(rois=[]), circle=RoiCircleList(rois=[]), azim=RoiAzimList(rois=[])
    )


@dataclass(frozen=True, eq=False)
class ProcessSettings:
    """The whole configuration of one ``jfsim process`` run (see the module docstring).

    Build with :meth:`from_mapping` or :meth:`from_json` (validated, unknown keys refused);
    :meth:`with_overrides` applies command-line options; :meth:`to_json` writes the
    complete document that :meth:`from_json` reads back to an equal object.
    """

    spot_finding: SpotFindingSettings = field(
        default_factory=lambda: SpotFindingSettings.model_validate(DEFAULT_SPOT_FINDING)
    )
    azim_int: AzimIntSettings = field(
        default_factory=lambda: AzimIntSettings.model_validate(DEFAULT_AZIM_INT)
    )
    roi: RoiDefinitions = field(default_factory=_empty_rois)
    bragg_integration: BraggIntegrationSettings = field(
        default_factory=lambda: BraggIntegrationSettings.model_validate(DEFAULT_BRAGG_INTEGRATION)
    )
    integration: IntegrationSettings = field(default_factory=IntegrationSettings)
    scaling: ScalingSettings = field(default_factory=ScalingSettings)
    space_group_number: int | None = None
    max_spots: int = DEFAULT_MAX_SPOTS
    images: ImageSelection = field(default_factory=ImageSelection)
    indexing: IndexingConfig = field(default_factory=IndexingConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.max_spots <= MAX_SPOTS_LIMIT:
            raise SettingsError(
                f"max_spots (--max-spots): must be in 1..{MAX_SPOTS_LIMIT}, got {self.max_spots}"
            )
        spot = self.spot_finding
        if spot.min_pix_per_spot > spot.max_pix_per_spot:
            raise SettingsError(
                f"spot_finding.min_pix_per_spot {spot.min_pix_per_spot} exceeds "
                f"max_pix_per_spot {spot.max_pix_per_spot}"
            )
        if spot.adaptive_threshold:
            raise SettingsError(
                "spot_finding.adaptive_threshold: not implemented by jfsim process; "
                "set it to false and choose photon_count_threshold"
            )
        names = [roi.name for roi in roi_list(self.roi)]
        if len(names) > MAX_ROIS:
            raise SettingsError(
                f"roi: at most {MAX_ROIS} ROIs (roi_map is uint16), got {len(names)}"
            )
        for name in names:
            if not name.isidentifier():
                raise SettingsError(
                    f"roi: name {name!r} must be a valid identifier (it names an HDF5 group)"
                )
        if len(set(names)) != len(names):
            raise SettingsError(f"roi: names must be unique, got {names}")
        model = self.bragg_integration.integration_model.value
        if model != "BoxSum":
            raise SettingsError(
                f"bragg_integration.integration_model: {model!r} is not implemented by jfsim "
                "process; use 'BoxSum' (summation in a disc, background from an annulus)"
            )
        if self.space_group_number is not None and not 1 <= self.space_group_number <= 230:
            raise SettingsError(
                f"space_group_number (-S): must be in 1..230, got {self.space_group_number}"
            )
        self.indexing.check_cell(self.space_group_number)
        azim = self.azim_int
        if azim.high_q_recip_a is not None and azim.high_q_recip_a <= azim.low_q_recip_a:
            raise SettingsError(
                f"azim_int.high_q_recipA {azim.high_q_recip_a} must exceed low_q_recipA "
                f"{azim.low_q_recip_a}"
            )

    # -- reading -----------------------------------------------------------------------------
    @classmethod
    def from_mapping(
        cls, document: Mapping[str, Any], *, source: str = "settings"
    ) -> ProcessSettings:
        """Validate a settings document (missing keys take jfsim's defaults)."""
        if not isinstance(document, Mapping):
            raise SettingsError(f"{source}: expected a JSON object, got {type(document).__name__}")
        unknown = sorted(set(document) - set(_TOP_LEVEL))
        if unknown:
            raise SettingsError(
                f"{source}: unknown key {unknown[0]!r} (known: {', '.join(_TOP_LEVEL)})"
            )
        defaults = cls()
        sections: dict[str, Any] = {}
        for name, model in _SECTIONS.items():
            current = _dump(getattr(defaults, name))
            given = document.get(name, {})
            if not isinstance(given, Mapping):
                raise SettingsError(f"{source}: {name}: expected an object")
            _refuse_unknown_keys(model, given, f"{source}: {name}")
            sections[name] = _validate(model, {**current, **given}, f"{source}: {name}")
        for name, section in _OWN_SECTIONS.items():
            sections[name] = section_from_mapping(section, document.get(name), f"{source}: {name}")
        space_group = document.get("space_group_number")
        if space_group is not None and (
            not isinstance(space_group, int) or isinstance(space_group, bool)
        ):
            raise SettingsError(
                f"{source}: space_group_number: expected an integer or null, got {space_group!r}"
            )
        max_spots = document.get("max_spots", DEFAULT_MAX_SPOTS)
        if not isinstance(max_spots, int) or isinstance(max_spots, bool):
            raise SettingsError(f"{source}: max_spots: expected an integer, got {max_spots!r}")
        return cls(
            **sections,
            space_group_number=space_group,
            max_spots=max_spots,
            images=_images(document.get("images"), source),
            indexing=IndexingConfig.from_document(document, source),
        )

    @classmethod
    def from_json(cls, text: str, *, source: str = "settings") -> ProcessSettings:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise SettingsError(f"{source}: not valid JSON ({error})") from error
        return cls.from_mapping(document, source=source)

    # -- changing ----------------------------------------------------------------------------
    def with_overrides(
        self,
        *,
        spot_sigma: float | None = None,
        spot_threshold: int | None = None,
        spot_high_resolution_A: float | None = None,
        max_spots: int | None = None,
        start: int | None = None,
        end: int | None = None,
        stride: int | None = None,
    ) -> ProcessSettings:
        """Seed 003's options on top of these settings (``None`` = keep)."""
        spot_changes = {
            key: value
            for key, value in (
                ("signal_to_noise_threshold", spot_sigma),
                ("photon_count_threshold", spot_threshold),
                ("high_resolution_limit", spot_high_resolution_A),
            )
            if value is not None
        }
        spot = self.spot_finding
        if spot_changes:
            spot = _validate(
                SpotFindingSettings, {**_dump(spot), **spot_changes}, "command line: spot finding"
            )
        images = ImageSelection(
            start=self.images.start if start is None else start,
            end=self.images.end if end is None else end,
            stride=self.images.stride if stride is None else stride,
        )
        return replace(
            self,
            spot_finding=spot,
            max_spots=self.max_spots if max_spots is None else max_spots,
            images=images,
        )

    def with_reflection_overrides(
        self,
        *,
        integration_radii_pxl: tuple[float, float, float] | None = None,
        space_group_number: int | None = None,
        merge: bool | None = None,
        partiality_model: str | None = None,
        anomalous: bool | None = None,
        iterations: int | None = None,
        scaling_high_resolution_A: float | None = None,
        min_partiality: float | None = None,
        reject_outliers_sigma: float | None = None,
        output_format: str | None = None,
    ) -> ProcessSettings:
        """Seed 003's integration and scaling options on top of these settings (``None`` =
        keep)."""
        integration = self.integration
        if integration_radii_pxl is not None:
            r1, r2, r3 = integration_radii_pxl
            integration = replace(
                integration,
                signal_radius_pxl=r1,
                background_inner_radius_pxl=r2,
                background_outer_radius_pxl=r3,
            )
        scaling_changes: dict[str, Any] = {
            key: value
            for key, value in (
                ("merge", merge),
                ("partiality_model", partiality_model),
                ("anomalous", anomalous),
                ("iterations", iterations),
                ("high_resolution_limit_A", scaling_high_resolution_A),
                ("min_partiality", min_partiality),
                ("reject_outliers_sigma", reject_outliers_sigma),
                ("output_format", output_format),
            )
            if value is not None
        }
        return replace(
            self,
            integration=integration,
            scaling=replace(self.scaling, **scaling_changes),
            space_group_number=(
                self.space_group_number if space_group_number is None else space_group_number
            ),
        )

    def space_group(self) -> gemmi.SpaceGroup | None:
        """gemmi's space group of ``space_group_number`` (-S), None when not given."""
        if self.space_group_number is None:
            return None
        return gemmi.find_spacegroup_by_number(self.space_group_number)

    # -- writing -----------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """The complete document (broker field names, ``null`` for absent limits)."""
        return {
            **{name: _dump(getattr(self, name)) for name in _SECTIONS},
            **{name: asdict(getattr(self, name)) for name in _OWN_SECTIONS},
            "space_group_number": self.space_group_number,
            "max_spots": self.max_spots,
            "images": self.images.as_dict(),
            **self.indexing.as_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcessSettings) and self.as_dict() == other.as_dict()


def roi_list(definitions: RoiDefinitions) -> list[RoiBox | RoiCircle | RoiAzimuthal]:
    """Every ROI in bit order: boxes, then circles, then azimuthal ROIs."""
    found: list[RoiBox | RoiCircle | RoiAzimuthal] = []
    for group in (definitions.box, definitions.circle, definitions.azim):
        found.extend(group.rois or [])
    return found


def _dump(model: pydantic.BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, mode="json")


def _validate(model: type[pydantic.BaseModel], values: Mapping[str, Any], where: str) -> Any:
    try:
        return model.model_validate(dict(values))
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        # drop pydantic's union-member tags ("constrained-float", "int") from the location
        location = ".".join(
            str(part)
            for part in first["loc"]
            if str(part) not in _UNION_TAGS and "-" not in str(part)
        )
        raise SettingsError(
            f"{where}.{location}: {first['msg']} (got {first.get('input')!r})"
        ) from error


def _model_keys(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """Accepted keys (field names and aliases) → the field's annotation."""
    keys: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        keys[name] = info.annotation
        if info.alias:
            keys[info.alias] = info.annotation
    return keys


def _nested_models(annotation: Any) -> list[type[pydantic.BaseModel]]:
    """The pydantic models inside an annotation (``Optional[List[RoiBox]]`` → [RoiBox])."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    found: list[type[pydantic.BaseModel]] = []
    for argument in typing.get_args(annotation):
        if argument is not types.NoneType:
            found.extend(_nested_models(argument))
    return found


def _refuse_unknown_keys(model: type[pydantic.BaseModel], given: Any, where: str) -> None:
    if isinstance(given, list):
        for index, item in enumerate(given):
            _refuse_unknown_keys(model, item, f"{where}[{index}]")
        return
    if not isinstance(given, Mapping):
        return
    keys = _model_keys(model)
    for key, value in given.items():
        if key not in keys:
            known = ", ".join(
                sorted(info.alias or name for name, info in model.model_fields.items())
            )
            raise SettingsError(f"{where}: unknown key {key!r} (known: {known})")
        for nested in _nested_models(keys[key]):
            _refuse_unknown_keys(nested, value, f"{where}.{key}")


def _images(given: Any, source: str) -> ImageSelection:
    if given is None:
        return ImageSelection()
    if not isinstance(given, Mapping):
        raise SettingsError(f"{source}: images: expected an object with start, end, stride")
    unknown = sorted(set(given) - set(_IMAGE_KEYS))
    if unknown:
        raise SettingsError(
            f"{source}: images: unknown key {unknown[0]!r} (known: {', '.join(_IMAGE_KEYS)})"
        )
    values = {**ImageSelection().as_dict(), **given}
    for key, value in values.items():
        allowed_none = key == "end"
        if (value is None and not allowed_none) or (
            value is not None and (not isinstance(value, int) or isinstance(value, bool))
        ):
            raise SettingsError(f"{source}: images.{key}: expected an integer, got {value!r}")
    return ImageSelection(**values)


def load_settings_text(path: Path) -> str:
    """The text of a settings file, with a one-line error when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"--settings {path}: cannot read ({error})") from error


def settings_from_file(path: Path) -> ProcessSettings:
    """``--settings FILE.json``."""
    return ProcessSettings.from_json(load_settings_text(path), source=str(path))
