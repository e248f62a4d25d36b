"""The writer's table of where each message field lands names only fields the wire knows."""

from __future__ import annotations

import pytest

from jfsim.protocol.schema import MEMBERS, SCHEMA, WireType
from jfsim.writer.field_homes import FIELD_HOMES, PROFILING_DATASETS
from jfsim.writer.per_image import PROFILING_FIELDS


@pytest.mark.parametrize("table", sorted(FIELD_HOMES))
def test_every_field_with_a_home_is_a_wire_field(table: str) -> None:
    wire = MEMBERS[table] if "." in table else SCHEMA[table]
    unknown = set(FIELD_HOMES[table]) - set(wire)
    assert not unknown, f"{table}: {sorted(unknown)} are not in jfsim.protocol.schema"


@pytest.mark.parametrize(
    ("name", "destination"),
    [
        ("spot_finding_time", "/entry/profiling/spotFindingTime"),
        ("indexing_time", "/entry/profiling/indexingTime"),
        ("image_scale_time", "/entry/profiling/imageScaleTime"),
        ("timestamp", "/entry/instrument/detector/timestamp"),
        ("exptime", "/entry/instrument/detector/exptime"),
        ("jf_info", "/entry/instrument/detector/det_info"),
        ("receiver_aq_dev_delay", "/entry/instrument/detector/rcv_delay"),
        ("receiver_free_send_buf", "/entry/instrument/detector/rcv_free_send_buffers"),
        ("image_scale_factor", "/entry/MX/imageScaleFactor"),
    ],
)
def test_image_fields_have_their_hdf5_home(name: str, destination: str) -> None:
    assert FIELD_HOMES["image"][name] == destination


def test_every_profiling_time_is_a_float_on_the_wire_and_a_dataset_in_the_file() -> None:
    assert len(PROFILING_DATASETS) == 11
    assert all(SCHEMA["image"][wire].wire_type is WireType.FLOAT for wire in PROFILING_DATASETS)
    assert {field.wire_name for field in PROFILING_FIELDS} == set(PROFILING_DATASETS)
    assert all(field.path.startswith("profiling/") for field in PROFILING_FIELDS)
