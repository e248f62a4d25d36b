"""Issue 9: start messages the decoder accepts but no file can hold, links out of the root,
missing directories, lost images and masters that cannot be finalised (SeriesWriter, no
sockets). Each case ends refused (nothing written) or written correctly, never with a
traceback, a fake "completed" or a file outside the root."""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone

import h5py
import hdf5plugin  # noqa: F401 - bitshuffle for reading images
import numpy as np
import pytest
from writer_helpers import make_series, tiny_experiment, tree

from jfsim.writer import (
    FileFormat,
    SeriesRefusedError,
    SeriesState,
    SeriesWriter,
    UnsafePrefixError,
)


def written_files(root):
    return [name for name in tree(root) if not name.endswith(".tmp")]


HOSTILE_STARTS = [
    # the cases reproduced in issue 9, then one per kind of bound
    ("frame_time", math.inf, "not a finite number"),
    ("frame_time", math.nan, "not a finite number"),
    ("frame_time", -0.001, "not > 0"),
    ("bit_depth_readout", 2**31, "outside 1..32"),
    ("bit_depth_image", 12, "expected one of 8, 16, 32"),
    ("summation", 2**63, "outside 1..65536"),
    ("image_size_x", 2**31, "outside 1.."),
    ("image_size_x", 2**21, "pixels exceeds"),
    ("sample_name", "lyso\x00zyme", "NUL"),
    ("instrument_name", "\x00", "NUL"),
    ("goniometer", {"omega": {"start": "ten", "increment": 0.1}}, "expected a number"),
    ("goniometer", {"omega": {"start": 0.0, "increment": math.inf}}, "not a finite"),
    ("goniometer", {"omega": {"start": 0.0, "increment": 0.1, "vector": [0, 0]}}, "3 numbers"),
    ("grid_scan", {"n_fast": "3"}, "expected an integer"),
    ("number_of_images", 10**8, "outside 1..10000000"),
    ("detector_distance", math.nan, "not a finite number"),
    ("pixel_size_x", 0.0, "not > 0"),
    ("beam_center_x", math.inf, "not a finite number"),
    ("saturation_value", 2**70, "does not fit a 64-bit integer"),
    ("arm_date", datetime(9999, 12, 31, tzinfo=timezone.utc), "outside 1900..9000"),
    ("user_data", {"user": {"hdf5": {"beamline": "X\x0006"}}}, "NUL"),
    ("rois", {"beamstop": {"x_min": 2**65}}, "64-bit"),
    ("gain_file_names", ["a.bin", 3], "expected text"),
    ("unit_cell", {"a": math.nan, "b": 1.0}, "not a finite"),
]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    HOSTILE_STARTS,
    ids=[f"{field}={value!r}"[:40] for field, value, _ in HOSTILE_STARTS],
)
def test_hostile_start_fields_are_refused_naming_the_field(tmp_path, field, value, problem):
    series = make_series(tiny_experiment(number_of_images=3), extras=False)
    series.start.fields[field] = value
    with pytest.raises(SeriesRefusedError, match=f"field '{field}'") as refused:
        SeriesWriter(series.start, tmp_path)
    assert problem in str(refused.value)
    assert "\n" not in str(refused.value)
    assert tree(tmp_path) == []


def test_frame_time_times_images_beyond_a_date_is_refused(tmp_path):
    series = make_series(tiny_experiment(number_of_images=3), extras=False)
    series.start.fields.update(number_of_images=10**7, frame_time=86_400.0)
    with pytest.raises(SeriesRefusedError, match=r"'frame_time'.*years"):
        SeriesWriter(series.start, tmp_path)


def test_ten_million_images_announced_allocate_nothing_up_front(tmp_path):
    """The documented maximum: 10^7 announced, 3 sent, the end says 3 were collected. The
    flags of received images grow with the ids that arrive, and the master describes the
    data file that exists instead of 10^7 images."""
    series = make_series(tiny_experiment(number_of_images=3, file_format="vds"), extras=False)
    series.start.fields.update(number_of_images=10**7, images_per_file=1000)
    writer = SeriesWriter(series.start, tmp_path)
    assert writer.received.as_array(10).size == 10  # no 10^7 array made at the start
    for image in series.images:
        writer.add_image(image)
    summary = writer.finish(series.end, SeriesState.COMPLETED)
    assert summary.state == "completed" and summary.images_written == 3
    assert summary.images_expected == 10**7 and summary.images_collected == 3
    assert summary.images_missing == 0
    with h5py.File(tmp_path / "run/tiny_master.h5", "r") as h5:
        assert h5["entry/data/data"].shape[0] == 1000
        assert np.array_equal(h5["entry/data/data"][:3], np.stack(series.pixels))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("end_date", "yesterday"),
        ("images_collected", -1),
        ("max_receiver_delay", 2**70),
        ("rotation_lattice", ["a"] * 9),
        ("indexing_rate", math.nan),
    ],
)
def test_a_bad_end_field_is_dropped_and_the_master_still_written(tmp_path, field, value):
    series = make_series(tiny_experiment(number_of_images=2), extras=False)
    writer = SeriesWriter(series.start, tmp_path)
    for image in series.images:
        writer.add_image(image)
    series.end.fields[field] = value
    summary = writer.finish(series.end, SeriesState.COMPLETED)
    assert summary.state == "completed" and summary.images_missing == 0
    assert any(f"end message: field '{field}'" in error for error in summary.errors)
    assert h5py.is_hdf5(tmp_path / "run/tiny_master.h5")
    assert not any(name.endswith(".tmp") for name in tree(tmp_path))


def test_a_link_out_of_the_root_refuses_the_series(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "link").symlink_to(elsewhere)
    series = make_series(tiny_experiment(file_prefix="link/x", number_of_images=2), extras=False)
    with pytest.raises(UnsafePrefixError, match="outside the root"):
        SeriesWriter(series.start, root)
    assert list(elsewhere.iterdir()) == []


def test_a_link_replaced_during_the_series_refuses_the_next_file(tmp_path):
    """Checked again before every file: a directory swapped for a link out of the root
    after the start gets no file; the images are counted as rejected, and the master
    cannot be finalised: the series fails, nothing lands outside the root."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    series = make_series(tiny_experiment(file_prefix="run/x", file_format="legacy"))
    writer = SeriesWriter(series.start, root)
    os.rename(root / "run", tmp_path / "moved")  # with the master, open since the start
    (root / "run").symlink_to(elsewhere)
    for image in series.images:
        writer.add_image(image)
    summary = writer.finish(series.end, SeriesState.COMPLETED)
    assert summary.state == "failed" and summary.images_written == 0
    assert list(elsewhere.iterdir()) == []
    assert [path.suffix for path in (tmp_path / "moved").iterdir()] == [".tmp"]


def test_a_link_inside_the_root_is_followed(tmp_path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real")
    series = make_series(tiny_experiment(file_prefix="alias/x", number_of_images=2), extras=False)
    writer = SeriesWriter(series.start, root)
    for image in series.images:
        writer.add_image(image)
    assert writer.finish(series.end, SeriesState.COMPLETED).state == "completed"
    assert h5py.is_hdf5(root / "real/x_master.h5")


@pytest.mark.parametrize("file_format", ["legacy", "vds", "integrated"])
def test_missing_subdirectories_are_created_even_without_images(tmp_path, file_format):
    series = make_series(
        tiny_experiment(file_prefix="new/deeper/x", file_format=file_format, number_of_images=2),
        extras=False,
    )
    writer = SeriesWriter(series.start, tmp_path)
    summary = writer.finish(series.end, SeriesState.COMPLETED)
    assert summary.state == "completed"
    assert summary.images_missing == 2 and summary.missing == ((0, 1),)
    assert "new/deeper/x_master.h5" in written_files(tmp_path)


def test_a_master_that_cannot_be_written_is_a_failure_not_completed(tmp_path):
    series = make_series(tiny_experiment(file_prefix="run/x", number_of_images=2), extras=False)
    writer = SeriesWriter(series.start, tmp_path)
    os.rename(tmp_path / "run", tmp_path / "moved")  # with the master, open since the start
    (tmp_path / "run").write_bytes(b"a file where the directory was")
    summary = writer.finish(series.end, SeriesState.COMPLETED)
    assert summary.state == "failed"
    assert any("not finalised" in error for error in summary.errors)


def test_lost_images_are_counted_and_listed_as_ranges(tmp_path):
    series = make_series(tiny_experiment(number_of_images=7), extras=False)
    writer = SeriesWriter(series.start, tmp_path)
    for image_id in (0, 3, 4):
        writer.add_image(series.images[image_id])
    summary = writer.finish(series.end, SeriesState.COMPLETED)
    assert summary.state == "completed" and not summary.complete
    assert summary.images_missing == 4
    assert summary.missing == ((1, 2), (5, 6))
    assert summary.as_dict()["missing"] == [[1, 2], [5, 6]]
    assert "4 MISSING (image ids 1-2, 5-6)" in summary.log_line()


def test_format_override_wins_over_the_start_message(tmp_path):
    series = make_series(tiny_experiment(file_format="vds", number_of_images=2), extras=False)
    writer = SeriesWriter(series.start, tmp_path, format_override=FileFormat.INTEGRATED)
    assert writer.format_choice == "integrated (--format; the start message asked for vds)"
    for image in series.images:
        writer.add_image(image)
    assert writer.finish(series.end, SeriesState.COMPLETED).file_format == "integrated"
    assert written_files(tmp_path) == ["run/tiny_master.h5"]


@pytest.mark.parametrize(
    ("image_dtype", "underload"), [("int16", -32768), ("int32", -(2**31)), ("uint16", None)]
)
def test_underload_value_is_the_error_value_of_signed_images(tmp_path, image_dtype, underload):
    series = make_series(tiny_experiment(image_dtype=image_dtype, number_of_images=1), extras=False)
    writer = SeriesWriter(series.start, tmp_path)
    writer.add_image(series.images[0])
    writer.finish(series.end, SeriesState.COMPLETED)
    with h5py.File(tmp_path / "run/tiny_master.h5", "r") as h5:
        detector = h5["entry/instrument/detector"]
        if underload is None:
            assert "underload_value" not in detector
        else:
            assert detector["underload_value"][()] == underload == detector["error_value"][()]


def test_issue_9_percent_in_a_prefix_reads_back_through_the_vds(tmp_path):
    """Found by the fuzz test: HDF5 reads ``%`` in a VDS source name as a format specifier."""
    series = make_series(tiny_experiment(file_prefix="run%b/100%", file_format="vds"), extras=False)
    writer = SeriesWriter(series.start, tmp_path)
    for image in series.images:
        writer.add_image(image)
    assert writer.finish(series.end, SeriesState.COMPLETED).state == "completed"
    with h5py.File(tmp_path / "run%b/100%_master.h5", "r") as h5:
        assert np.array_equal(h5["entry/data/data"][()], np.stack(series.pixels))
