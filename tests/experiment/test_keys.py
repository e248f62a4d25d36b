"""The experiment's keys are declared once, on the model's fields, and everything that reads
or writes a file (the loader, ``experiment_to_dict``, the broker translation) follows them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pytest

from jfsim.config_values import number, positive, quantity
from jfsim.errors import ConfigError
from jfsim.experiment import experiment_from_dict, experiment_to_dict
from jfsim.experiment.broker import BROKER_KEYS
from jfsim.experiment.keys import Key, keys, parse_section, section_keys, section_to_dict
from jfsim.experiment.model import SCANS, SECTIONS
from jfsim.units import deg_to_rad, rad_to_deg

MINIMAL = {"crystal": {"unit_cell": [79.1, 79.1, 37.9, 90, 90, 90], "space_group_number": 96}}
ALL_SECTIONS = {**SECTIONS, **SCANS}


@pytest.mark.parametrize("cls", ALL_SECTIONS.values(), ids=lambda cls: cls.__name__)
def test_every_field_declares_its_keys_and_is_written_under_its_first_one(cls: type):
    table = section_keys(cls)
    for item in fields(cls):
        declared = [name for name, (field_name, _) in table.items() if field_name == item.name]
        assert declared, f"{cls.__name__}.{item.name} has no key"
        first = item.metadata["experiment_keys"][0].name
        # the written key is the field's name, or the field's name in another unit
        assert first.rsplit("_", 1)[0] == item.name.rsplit("_", 1)[0], (item.name, first)


def test_a_new_field_with_keys_is_read_and_written_with_nothing_else_to_edit():
    @dataclass(frozen=True)
    class Toy:
        tilt_rad: float = field(
            default=0.0,
            metadata=keys(
                Key("tilt_deg", quantity("deg"), to_field=deg_to_rad, from_field=rad_to_deg),
                Key("tilt_rad", quantity("rad")),
            ),
        )
        gain: float = field(default=1.0, metadata=keys(Key("gain", number, check=positive)))

    toy = Toy(**parse_section("toy", Toy, {"tilt_deg": "90 deg", "gain": 2}))
    assert toy.tilt_rad == pytest.approx(deg_to_rad(90.0))
    assert section_to_dict(toy) == pytest.approx({"tilt_deg": 90.0, "gain": 2.0})
    assert Toy(**parse_section("toy", Toy, {"tilt_rad": 0.5})).tilt_rad == 0.5
    with pytest.raises(ConfigError, match=r"^\[toy\] gain: must be > 0, got -1"):
        parse_section("toy", Toy, {"gain": -1})
    with pytest.raises(ConfigError, match=r"^\[toy\] tilt_rad: sets tilt_rad a second time"):
        parse_section("toy", Toy, {"tilt_deg": 1, "tilt_rad": 1})
    with pytest.raises(ConfigError, match=r"^\[toy\] tilt: unknown key; known keys are gain, "):
        parse_section("toy", Toy, {"tilt": 1})


def test_a_field_without_keys_is_a_programming_error_named_at_first_use():
    @dataclass(frozen=True)
    class Forgotten:
        gain: float = 1.0

    with pytest.raises(TypeError, match=r"Forgotten\.gain declares no experiment keys"):
        section_keys(Forgotten)


@pytest.mark.parametrize(("broker_key", "target"), sorted(BROKER_KEYS.items()))
def test_every_broker_key_lands_on_a_declared_key(broker_key: str, target: tuple[str, str]):
    section, key = target
    assert key in section_keys(SECTIONS[section]), f"{broker_key} → [{section}] {key}"


def test_alternative_units_are_read_but_the_fields_own_key_is_written():
    document = {
        **MINIMAL,
        "beam": {"wavelength_A": 1.0, "divergence_deg": 0.01},
        "position": {"poni_rot2_deg": 1.0},
    }
    written = experiment_to_dict(experiment_from_dict(document))
    assert "wavelength_A" not in written["beam"] and "divergence_deg" not in written["beam"]
    assert written["beam"]["divergence_rad"] == pytest.approx(deg_to_rad(0.01))
    assert written["position"]["poni_rot2_rad"] == pytest.approx(deg_to_rad(1.0))
    assert "orientation" not in written["crystal"]  # None: left out, as a file leaves it out
    assert experiment_from_dict(written) == experiment_from_dict(document)


def test_the_document_lists_every_section():
    written = experiment_to_dict(experiment_from_dict(MINIMAL))
    assert set(written) == {"name", "seed", "detector", "scan", *SECTIONS}
