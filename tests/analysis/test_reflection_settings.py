"""The integration and scaling sections of the settings document and their options."""

from __future__ import annotations

import pytest

from jfsim.analysis.errors import SettingsError
from jfsim.analysis.reflection_settings import (
    IntegrationSettings,
    ScalingSettings,
    parse_integration_radii,
)
from jfsim.analysis.settings import ProcessSettings


def test_sections_round_trip_through_the_document() -> None:
    document = {
        "integration": {"signal_radius_pxl": 2.5, "background_outer_radius_pxl": 9},
        "scaling": {"merge": True, "partiality_model": "rot", "reject_outliers_sigma": 6},
        "space_group_number": 96,
    }
    settings = ProcessSettings.from_mapping(document)
    assert settings.integration == IntegrationSettings(
        signal_radius_pxl=2.5, background_outer_radius_pxl=9.0
    )
    assert settings.scaling.partiality_model == "rot" and settings.scaling.merge
    assert settings.scaling.reject_outliers_sigma == 6.0
    again = ProcessSettings.from_json(settings.to_json())
    assert again.integration == settings.integration and again.scaling == settings.scaling
    assert again.space_group() is not None and again.space_group().number == 96


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"integration": {"radius": 3}}, "unknown key 'radius'"),
        ({"integration": {"signal_radius_pxl": "3"}}, "expected a number"),
        ({"integration": {"signal_radius_pxl": 8}}, "r1 <= r2 < r3"),
        ({"scaling": {"merge": 1}}, "expected true or false"),
        ({"scaling": {"partiality_model": "xds"}}, "-P"),
        ({"scaling": {"iterations": 2.5}}, "expected an integer"),
        ({"scaling": {"min_partiality": 1.0}}, "--min-partiality"),
        ({"scaling": {"output_format": "sca"}}, "--scaling-output"),
        ({"scaling": {"reject_outliers_sigma": -1}}, "--reject-outliers"),
    ],
)
def test_bad_values_name_the_key(document: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        ProcessSettings.from_mapping(document, source="run.json")


def test_options_override_the_document() -> None:
    base = ProcessSettings.from_mapping({"scaling": {"partiality_model": "unity"}})
    settings = base.with_reflection_overrides(
        integration_radii_pxl=parse_integration_radii("4"),
        merge=True,
        partiality_model="rot",
        anomalous=True,
        output_format="cif",
    )
    assert settings.integration.signal_radius_pxl == 4.0
    assert settings.integration.background_inner_radius_pxl == 6.0
    assert settings.integration.background_outer_radius_pxl == 8.0
    assert settings.scaling == ScalingSettings(
        merge=True, partiality_model="rot", anomalous=True, output_format="cif"
    )
    assert parse_integration_radii("3,5,7") == (3.0, 5.0, 7.0)
    with pytest.raises(SettingsError, match="one radius or three"):
        parse_integration_radii("3,5")
