"""Experiments from documents and files, and back: the one place that reads units.

A document is a parsed TOML or JSON file whose sections (``[beam]``, ``[position]``, …)
hold keys with their unit in the name. Each section is read by the key declarations on its
dataclass (``model.py``); ``experiment_to_dict`` writes the same keys back, so that
``experiment_from_dict(experiment_to_dict(e)) == e``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import tomllib

from jfsim.config_values import quantity, text
from jfsim.detectors import Detector, detector_preset
from jfsim.errors import ConfigError
from jfsim.experiment.file_prefix import file_prefix_problem
from jfsim.experiment.keys import parse_section, section_to_dict
from jfsim.experiment.model import SCANS, SECTIONS, Experiment, GridScan

__all__ = ["experiment_from_dict", "experiment_to_dict", "load_experiment"]

#: ``[detector]``: a preset, then what a file may change on it.
_DETECTOR_KEYS = ("preset", "image_dtype", "sensor_thickness_mm", "serial_number")
#: The document's top-level keys, in the order ``experiment_to_dict`` writes them.
_TOP_KEYS = (
    "name",
    "seed",
    "detector",
    "beam",
    "position",
    "crystal",
    "scan",
    "background",
    "dataset",
)


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


def _detector_to_dict(detector: Detector) -> dict[str, Any]:
    return {
        "preset": detector.name,
        "image_dtype": detector.image_dtype.name,
        "sensor_thickness_mm": detector.sensor_thickness_mm,
        "serial_number": detector.serial_number,
    }


def experiment_from_dict(document: Mapping[str, Any]) -> Experiment:
    """Build an Experiment from a parsed TOML/JSON document (sections as in the README).

    Raises:
        ConfigError: naming ``[section] key`` for an unknown key, a bad value or a missing
            cell or space group.
    """
    unknown = set(document) - set(_TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{sorted(unknown)[0]}: unknown section; "
            f"known sections are {', '.join(sorted(_TOP_KEYS))}"
        )
    detector = _detector_from_table(document.get("detector", {}))
    sections = {
        name: parse_section(name, cls, document.get(name, {})) for name, cls in SECTIONS.items()
    }
    position = sections["position"]
    position.setdefault("distance_mm", 100.0)
    position.setdefault("beam_x_pxl", detector.width_pxl / 2)
    position.setdefault("beam_y_pxl", detector.height_pxl / 2)
    if "unit_cell" not in sections["crystal"]:
        raise ConfigError(
            "[crystal] unit_cell: missing; give [a, b, c, alpha, beta, gamma] in Å and degrees"
        )
    if "space_group_number" not in sections["crystal"]:
        raise ConfigError("[crystal] space_group_number: missing")
    scan_table = dict(document.get("scan", {"type": "rotation"}))
    scan_type = scan_table.pop("type", "rotation")
    if scan_type not in SCANS:
        raise ConfigError(f"[scan] type: must be one of {', '.join(SCANS)}, got {scan_type!r}")
    scan_class = SCANS[scan_type]
    seed = document.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed: expected an integer within [0, 2^63), got {seed!r}")
    experiment = Experiment(
        detector=detector,
        scan=scan_class(**parse_section(scan_type, scan_class, scan_table)),
        seed=seed,
        name=text("name", document.get("name", "custom")),
        **{name: SECTIONS[name](**arguments) for name, arguments in sections.items()},
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
    problem = file_prefix_problem(prefix) if prefix else None  # empty: no files written
    if problem:
        raise ConfigError(
            f"[dataset] file_prefix: {prefix!r} {problem}; give a relative prefix such as "
            "'run1/lyso' that stays inside the writer root"
        )


def experiment_to_dict(experiment: Experiment) -> dict[str, Any]:
    """A JSON-able description that ``experiment_from_dict`` reads back to an equal value."""
    document: dict[str, Any] = {
        "name": experiment.name,
        "seed": experiment.seed,
        "detector": _detector_to_dict(experiment.detector),
    }
    for name in _TOP_KEYS[3:]:
        if name == "scan":
            document[name] = {"type": experiment.scan.kind, **section_to_dict(experiment.scan)}
        else:
            document[name] = section_to_dict(getattr(experiment, name))
    return document


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
