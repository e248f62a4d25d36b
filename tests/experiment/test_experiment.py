"""The experiment model: detector presets, loaders and their error messages."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jfsim.config_values import KEY_UNITS, UNIT_WORDS
from jfsim.detectors import MASK_GAP, MASK_VIRTUAL
from jfsim.errors import ConfigError
from jfsim.experiment import (
    DETECTOR_PRESETS,
    GridScan,
    RotationScan,
    StillsScan,
    detector_preset,
    experiment_from_broker_settings,
    experiment_from_dict,
    experiment_preset,
    experiment_preset_names,
    experiment_to_dict,
    load_experiment,
)

JFSIM = Path(sys.executable).with_name("jfsim")

MINIMAL = {"crystal": {"unit_cell": [79.1, 79.1, 37.9, 90, 90, 90], "space_group_number": 96}}


@pytest.mark.parametrize(
    ("name", "width", "height", "modules"),
    [
        ("JF1M", 1030, 1064, 2),
        ("JF4M", 2068, 2164, 8),
        ("JF9M", 3106, 3264, 18),
        ("JF10M", 2068, 5464, 20),
        ("JF16M", 4144, 4364, 32),
        ("EIGER2_500K", 1028, 512, 1),
        ("EIGER2_4M", 2068, 2162, 8),
        ("EIGER2_16M", 4148, 4362, 32),
    ],
)
def test_detector_presets_follow_the_grid_rule(name: str, width: int, height: int, modules: int):
    detector = DETECTOR_PRESETS[name]
    assert (detector.width_pxl, detector.height_pxl) == (width, height)
    assert len(detector.modules) == modules
    assert detector.shape == (height, width)
    for module in detector.modules:
        assert module.fast_origin_pxl + module.fast_size_pxl <= width
        assert module.slow_origin_pxl + module.slow_size_pxl <= height


def test_jf4m_mask_marks_the_published_gap_strips():
    # CrystFEL's jf4m.geom masks fs 1030-1037 and ss 514-549, 1064-1099, 1614-1649.
    mask = detector_preset("jf4m").pixel_mask()
    gap = (mask & MASK_GAP) != 0
    assert gap[:, 1030:1038].all()
    assert not gap[:514, 1029].any() and not gap[:514, 1038].any()
    for start in (514, 1064, 1614):
        assert gap[start : start + 36, :].all()
        assert not gap[start - 1, :1030].any() and not gap[start + 36, :1030].any()
    sensor_pixels = (~gap).sum()
    assert sensor_pixels == 8 * 1030 * 514


def test_jungfrau_chip_border_pixels_are_virtual_not_gaps():
    mask = detector_preset("JF1M").pixel_mask()
    assert mask[10, 255] & MASK_VIRTUAL and not mask[10, 255] & MASK_GAP
    assert mask[10, 254] == 0 and mask[10, 259] == 0
    assert mask[256, 10] & MASK_VIRTUAL


def test_sentinels_follow_the_pixel_type():
    jf = detector_preset("JF4M")
    assert (jf.image_dtype, jf.saturation_value, jf.error_value) == (np.dtype("<i2"), 32767, -32768)
    eiger = detector_preset("EIGER2_4M").with_image_dtype("uint16")
    assert (eiger.saturation_value, eiger.error_value) == (65534, 65535)


def test_unknown_detector_names_the_choices():
    with pytest.raises(ConfigError, match=r"unknown detector 'JF5M'.*JF4M"):
        detector_preset("JF5M")


def test_toml_with_units_in_values(tmp_path: Path):
    path = tmp_path / "exp.toml"
    path.write_text(
        """
seed = 3
[detector]
preset = "JF1M"
[position]
distance_mm = "0.12 m"
beam_x_pxl = 500.5
beam_y_pxl = 520.0
[beam]
energy_keV = "12400 eV"
[crystal]
unit_cell = {a = 79.1, b = 79.1, c = 37.9, alpha = 90, beta = 90, gamma = 90}
space_group_number = 96
mosaicity_deg = "1 mrad"
[scan]
type = "rotation"
step_deg = 0.25
[dataset]
number_of_images = 20
count_time_s = "400 us"
frame_time_s = "0.5 ms"
""",
        encoding="utf-8",
    )
    experiment = load_experiment(path)
    assert experiment.position.distance_mm == pytest.approx(120.0)
    assert experiment.beam.energy_keV == pytest.approx(12.4)
    assert experiment.beam.wavelength_A == pytest.approx(0.99987, rel=1e-4)
    assert experiment.crystal.mosaicity_rad == pytest.approx(1e-3)
    assert isinstance(experiment.scan, RotationScan)
    assert experiment.scan.step_rad == pytest.approx(math.radians(0.25))
    assert experiment.dataset.count_time_s == pytest.approx(4e-4)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({**MINIMAL, "beam": {"energy_kev": 12.4}}, r"\[beam\] energy_kev: unknown key"),
        ({**MINIMAL, "beam": {"energy_keV": -1}}, r"\[beam\] energy_keV: must be within"),
        ({**MINIMAL, "position": {"distance_mm": "12 keV"}}, r"distance_mm: '12 keV' is an energy"),
        ({**MINIMAL, "position": {"distance_mm": "12 parsecs"}}, r"unknown unit 'parsecs'"),
        ({**MINIMAL, "position": {"distance_mm": True}}, r"distance_mm: expected a number"),
        ({**MINIMAL, "beam": {"energy_keV": 12, "wavelength_A": 1}}, r"a second time"),
        ({"crystal": {"space_group_number": 96}}, r"unit_cell: missing"),
        ({**MINIMAL, "scan": {"type": "helical"}}, r"\[scan\] type: must be one of"),
        ({**MINIMAL, "scan": {"type": "stills", "step_deg": 1}}, r"\[stills\] step_deg: unknown"),
        ({**MINIMAL, "dataset": {"file_prefix": "../escape"}}, r"file_prefix"),
        ({**MINIMAL, "dataset": {"count_time_s": 1.0, "frame_time_s": 0.5}}, r"exceeds frame_time"),
        ({**MINIMAL, "crystal": {**MINIMAL["crystal"], "space_group_number": 231}}, r"\[1, 230\]"),
        (
            {
                **MINIMAL,
                "crystal": {**MINIMAL["crystal"], "orientation": [[1, 0, 0], [0, 2, 0], [0, 0, 1]]},
            },
            r"not a rotation",
        ),
        (
            {
                **MINIMAL,
                "crystal": {
                    **MINIMAL["crystal"],
                    "orientation": [[1, 0, 0], [0, 1, 0], [0, 0, -1]],
                },
            },
            r"\[crystal\] orientation: has determinant -1, an improper rotation",
        ),
        ({**MINIMAL, "beam": {"wavelength_A": 50.0}}, r"\[beam\] wavelength_A: must be within"),
        ({**MINIMAL, "beam": {"wavelength_A": 0.01}}, r"\[beam\] wavelength_A: must be within"),
        ({**MINIMAL, "beam": {"wavelength_A": -1.0}}, r"wavelength_A: .* got a non-positive"),
        ({**MINIMAL, "beam": {"flux_photons_per_s": "5 ms"}}, r"flux_photons_per_s: expected a"),
        ({**MINIMAL, "detectors": {}}, r"detectors: unknown section"),
    ],
)
def test_bad_documents_name_the_key(document: dict, message: str):
    with pytest.raises(ConfigError, match=message) as refused:
        experiment_from_dict(document)
    assert "\n" not in str(refused.value)


def test_a_proper_orientation_is_kept():
    turn = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    crystal = {**MINIMAL["crystal"], "orientation": turn}
    assert experiment_from_dict({"crystal": crystal}).crystal.orientation == tuple(
        tuple(row) for row in turn
    )


#: Every key that names a unit, where it lives, and what kind of quantity that unit is.
UNIT_KEYS = {
    ("position", "distance_mm"): "length",
    ("position", "poni_rot1_rad"): "angle",
    ("position", "poni_rot2_deg"): "angle",
    ("beam", "energy_keV"): "energy",
    ("beam", "wavelength_A"): "length",
    ("beam", "divergence_deg"): "angle",
    ("crystal", "mosaicity_deg"): "angle",
    ("crystal", "domain_size_A"): "length",
    ("crystal", "b_factor_A2"): "area",
    ("crystal", "resolution_limit_A"): "length",
    ("dataset", "count_time_s"): "time",
    ("dataset", "frame_time_s"): "time",
}
#: Keys without a unit: a value string with any unit is refused.
PLAIN_KEYS = [
    ("beam", "flux_photons_per_s"),
    ("beam", "polarization_factor"),
    ("beam", "transmission"),
    ("position", "beam_x_pxl"),
    ("crystal", "intensity_scale_photons"),
    ("background", "constant_photons"),
]


def _document(section: str, key: str, value: object) -> dict:
    document = {**MINIMAL, section: {key: value}}
    if section == "crystal":
        document["crystal"] = {**MINIMAL["crystal"], key: value}
    return document


@settings(max_examples=150, deadline=None)
@given(
    target=st.sampled_from(sorted(UNIT_KEYS) + PLAIN_KEYS),
    unit=st.sampled_from(sorted(UNIT_WORDS)),
    magnitude=st.floats(min_value=1e-3, max_value=1e3, allow_nan=False),
)
def test_unit_strings_of_the_wrong_kind_are_refused_naming_the_key(target, unit, magnitude):
    """A value string is accepted only when its unit is of the key's kind, converted exactly;
    otherwise the one-line error names the key (as it does for an out-of-range value)."""
    section, key = target
    kind = UNIT_KEYS.get(target)
    text = f"{magnitude!r} {unit}"
    try:
        experiment = experiment_from_dict(_document(section, key, text))
    except ConfigError as refused:
        message = str(refused)
        assert key in message and "\n" not in message, message
        if kind != UNIT_WORDS[unit][0]:
            assert message.startswith(f"[{section}] {key}:"), message
            return  # refused for its kind: what this test is about
        assert "must be" in message or "exceeds" in message, message  # a range check
        return
    assert kind == UNIT_WORDS[unit][0], f"{text!r} accepted for {key}"
    if key == "distance_mm":
        expected_mm = magnitude * UNIT_WORDS[unit][1] / KEY_UNITS["mm"][1]
        assert experiment.position.distance_mm == pytest.approx(expected_mm)
    if key == "count_time_s":
        assert experiment.dataset.count_time_s == pytest.approx(magnitude * UNIT_WORDS[unit][1])


def test_invalid_toml_names_the_file(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text("[beam\nenergy_keV = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_experiment(path)


@pytest.mark.parametrize("name", experiment_preset_names())
def test_presets_round_trip_through_dict_and_json(name: str, tmp_path: Path):
    experiment = experiment_preset(name)
    document = experiment_to_dict(experiment)
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert load_experiment(path) == experiment


def test_required_presets_exist():
    names = set(experiment_preset_names())
    assert {
        "small-jf1m",
        "lysozyme-rotation-jf4m",
        "lysozyme-stills-jf4m",
        "insulin-rotation-eiger2-4m",
    } <= names
    assert experiment_preset("insulin-rotation-eiger2-4m").crystal.space_group_number == 199
    assert isinstance(experiment_preset("lysozyme-stills-jf4m").scan, StillsScan)


def test_broker_start_body_becomes_an_experiment():
    body = {
        "beam_x_pxl": 1090.0,
        "beam_y_pxl": 1100.0,
        "detector_distance_mm": 75.0,
        "incident_energy_keV": 12.4,
        "images_per_trigger": 100,
        "ntrigger": 2,
        "image_time_us": 500,
        "file_prefix": "run/lyso",
        "images_per_file": 50,
        "unit_cell": {"a": 78.0, "b": 78.0, "c": 78.0, "alpha": 90, "beta": 90, "gamma": 90},
        "space_group_number": 199,
        "header_appendix": {"hdf5": {"beamline": "X06DA"}},
        "image_appendix": [1, "x"],
        "goniometer": {"name": "omega", "start": 10.0, "step": 0.1, "vector": [-1, 0, 0]},
        "run_number": 5,
    }
    experiment = experiment_from_broker_settings(body, detector="JF4M")
    assert experiment.dataset.number_of_images == 200
    assert experiment.dataset.frame_time_s == pytest.approx(5e-4)
    assert experiment.position.distance_mm == 75.0
    assert experiment.crystal.unit_cell.a_A == 78.0
    assert experiment.dataset.series_id == 5
    assert experiment.dataset.run_name == "5:run/lyso"
    assert experiment.dataset.header_appendix == {"hdf5": {"beamline": "X06DA"}}
    assert isinstance(experiment.scan, RotationScan)
    assert experiment.scan.start_rad == pytest.approx(math.radians(10.0))
    grid = experiment_from_broker_settings(
        {"grid_scan": {"n_fast": 5, "n_slow": 2, "step_x_um": 20, "step_y_um": 20}, "ntrigger": 10}
    )
    assert isinstance(grid.scan, GridScan)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"beam_x": 1}, r"unknown key 'beam_x'"),
        ({"detector_distance_mm": -5}, r"distance_mm: must be > 0"),
        ({"incident_energy_keV": "fast"}, r"energy_keV: expected a number"),
        ({"image_time_us": 0}, r"image_time_us: must be > 0"),
        ({"goniometer": {"axis": "omega"}}, r"goniometer.axis: unknown key"),
    ],
)
def test_bad_broker_bodies_name_the_key(body: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        experiment_from_broker_settings(body)


def test_presets_command_lists_everything():
    result = subprocess.run(
        [str(JFSIM), "presets", "--json"], capture_output=True, text=True, check=True
    )
    listing = json.loads(result.stdout)
    assert {e["name"] for e in listing["experiments"]} == set(experiment_preset_names())
    assert {d["name"] for d in listing["detectors"]} == set(DETECTOR_PRESETS)


def test_presets_command_rejects_an_unknown_preset():
    result = subprocess.run(
        [str(JFSIM), "presets", "--show", "nope"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "preset 'nope' is not known" in result.stderr
    assert result.stderr.count("\n") == 1


def test_simulate_takes_a_broker_start_body_and_a_detector(tmp_path: Path):
    body = {
        "beam_x_pxl": 515.5,
        "beam_y_pxl": 530.5,
        "detector_distance_mm": 80.0,
        "incident_energy_keV": 12.4,
        "ntrigger": 2,
        "file_prefix": "broker/run",
        "goniometer": {"name": "omega", "start": 0.0, "step": 0.5},
    }
    settings = tmp_path / "start.json"
    settings.write_text(json.dumps(body), encoding="utf-8")
    result = subprocess.run(
        [str(JFSIM), "simulate", "--broker-settings", str(settings), "--detector", "JF1M",
         "-o", str(tmp_path / "run"), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"] == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**body, "beam_x": 1}), encoding="utf-8")
    refused = subprocess.run(
        [str(JFSIM), "simulate", "--broker-settings", str(bad), "-o", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "bad.json: dataset settings: unknown key 'beam_x'" in refused.stderr
