"""Settings: the broker's models validate, unknown keys are refused, JSON round-trips."""

from __future__ import annotations

import json

import pytest

from jfsim.analysis.errors import SettingsError
from jfsim.analysis.settings import ImageSelection, ProcessSettings


def test_defaults_round_trip_through_json() -> None:
    settings = ProcessSettings()
    document = json.loads(settings.to_json())
    assert {"spot_finding", "azim_int", "roi", "max_spots", "images"} <= set(document)
    assert document["spot_finding"]["signal_to_noise_threshold"] == 3.0
    assert document["spot_finding"]["photon_count_threshold"] == 10
    assert document["spot_finding"]["high_resolution_limit"] == 1.5
    assert document["azim_int"]["high_q_recipA"] is None  # explicit: "to the corner"
    assert ProcessSettings.from_json(settings.to_json()) == settings


def test_a_partial_document_keeps_the_other_defaults_and_broker_aliases_work() -> None:
    settings = ProcessSettings.from_mapping(
        {"spot_finding": {"ice_ring_width_q_recipA": 0.05}, "azim_int": {"q_spacing": 0.02}}
    )
    assert settings.spot_finding.ice_ring_width_q_recip_a == 0.05
    assert settings.spot_finding.photon_count_threshold == 10
    assert settings.azim_int.q_spacing == 0.02
    assert settings.azim_int.low_q_recip_a == 0.1


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"spot_finding": {"signal_to_noise": 3}}, "'signal_to_noise'"),
        ({"spotfinding": {}}, "'spotfinding'"),
        (
            {
                "roi": {
                    "box": {
                        "rois": [
                            {
                                "name": "a",
                                "min_x_pxl": 0,
                                "max_x_pxl": 3,
                                "min_y_pxl": 0,
                                "max_y_pxl": 2,
                                "colour": 1,
                            }
                        ]
                    },
                    "circle": {"rois": []},
                    "azim": {"rois": []},
                }
            },
            "roi.box.rois[0]: unknown key 'colour'",
        ),
        ({"images": {"first": 3}}, "'first'"),
    ],
    ids=["section-key", "top-level", "nested-roi", "images"],
)
def test_unknown_keys_are_refused_by_name(document: dict, named: str) -> None:
    with pytest.raises(SettingsError, match="unknown key") as caught:
        ProcessSettings.from_mapping(document, source="s.json")
    assert named in str(caught.value)
    assert str(caught.value).startswith("s.json")


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"spot_finding": {"signal_to_noise_threshold": -1.0}}, "signal_to_noise_threshold"),
        ({"spot_finding": {"photon_count_threshold": 2.5}}, "photon_count_threshold"),
        ({"azim_int": {"azimuthal_bins": 1000}}, "azimuthal_bins"),
        ({"max_spots": 0}, "max_spots"),
        ({"spot_finding": {"min_pix_per_spot": 9, "max_pix_per_spot": 3}}, "min_pix_per_spot"),
        ({"spot_finding": {"adaptive_threshold": True}}, "adaptive_threshold"),
        ({"images": {"stride": 0}}, "stride"),
    ],
)
def test_out_of_range_values_name_the_key(document: dict, named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        ProcessSettings.from_mapping(document)


def test_command_line_options_override_the_file() -> None:
    base = ProcessSettings.from_mapping(
        {"spot_finding": {"signal_to_noise_threshold": 5.0}, "images": {"start": 2}}
    )
    changed = base.with_overrides(spot_sigma=4.0, spot_threshold=3, max_spots=99, stride=2)
    assert changed.spot_finding.signal_to_noise_threshold == 4.0
    assert changed.spot_finding.photon_count_threshold == 3
    assert changed.max_spots == 99
    assert changed.images == ImageSelection(start=2, end=None, stride=2)
    with pytest.raises(SettingsError, match="photon_count_threshold"):
        base.with_overrides(spot_threshold=-1)


def test_image_selection_is_inclusive_and_bounded(caplog: pytest.LogCaptureFixture) -> None:
    assert list(ImageSelection(1, 7, 3).image_numbers(10)) == [1, 4, 7]
    assert not caplog.records
    assert list(ImageSelection(8, 100, 1).image_numbers(10)) == [8, 9]
    assert "images.end (-e) 100: the run has only 10 images; analysing up to image 9" in caplog.text
    with pytest.raises(SettingsError, match="only 10 images"):
        ImageSelection(10).image_numbers(10)
    with pytest.raises(SettingsError, match="must be >= start"):
        ImageSelection(5, 4)


def test_roi_names_must_be_unique_identifiers() -> None:
    def rois(*names: str) -> dict:
        circles = [
            {"name": n, "center_x_pxl": 1, "center_y_pxl": 1, "radius_pxl": 2} for n in names
        ]
        return {"roi": {"box": {"rois": []}, "circle": {"rois": circles}, "azim": {"rois": []}}}

    assert len(ProcessSettings.from_mapping(rois("a", "b")).roi.circle.rois) == 2
    with pytest.raises(SettingsError, match="unique"):
        ProcessSettings.from_mapping(rois("a", "a"))
    with pytest.raises(SettingsError, match="identifier"):
        ProcessSettings.from_mapping(rois("not a name"))
