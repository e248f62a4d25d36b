"""Blocks reserved ahead of a data file's chunks: the file's size and bytes never change."""

from __future__ import annotations

import os

import h5py
import hdf5plugin  # noqa: F401 - registers the bitshuffle filter for reading
import numpy as np
import pytest
from writer_helpers import make_series, tiny_experiment

from jfsim.writer import SeriesState, SeriesWriter
from jfsim.writer.disk_space import DiskReservation

STEP_BYTES = 1 << 20


def allocated_bytes(path) -> int:
    return os.stat(path).st_blocks * 512


def reservation_supported(tmp_path) -> bool:
    probe = tmp_path / "probe.bin"
    probe.write_bytes(b"x")
    with open(probe, "r+b") as handle:
        reservation = DiskReservation(handle.fileno(), step_bytes=STEP_BYTES)
        reservation.ahead_of(1)
        supported = reservation.reserving and allocated_bytes(probe) >= STEP_BYTES
        reservation.release()
    probe.unlink()
    return supported


def test_reserved_blocks_leave_the_size_alone_and_are_given_back(tmp_path):
    if not reservation_supported(tmp_path):
        pytest.skip("this file system reserves no blocks (fallocate KEEP_SIZE unsupported)")
    path = tmp_path / "data.bin"
    payload = os.urandom(300_000)
    with open(path, "wb") as handle:
        reservation = DiskReservation(handle.fileno(), step_bytes=STEP_BYTES)
        for _ in range(3):
            reservation.ahead_of(len(payload))
            handle.write(payload)
            handle.flush()
            assert os.fstat(handle.fileno()).st_size < allocated_bytes(path)
        assert allocated_bytes(path) >= len(payload) + STEP_BYTES  # one step ahead
    size = path.stat().st_size
    reservation.release()
    assert path.stat().st_size == size == 3 * len(payload)
    assert allocated_bytes(path) < size + STEP_BYTES // 2  # the spare blocks are gone
    assert path.read_bytes() == payload * 3


def test_release_after_the_writer_closed_its_descriptor_keeps_the_file(tmp_path):
    path = tmp_path / "data.bin"
    with open(path, "wb") as handle:
        reservation = DiskReservation(handle.fileno(), step_bytes=STEP_BYTES)
        reservation.ahead_of(10)
        handle.write(b"0123456789")
    reservation.release()
    reservation.release()  # twice is harmless
    assert path.read_bytes() == b"0123456789"


def test_a_descriptor_that_cannot_be_duplicated_means_no_reservation_and_no_error():
    reservation = DiskReservation(-1)  # EBADF, as an exhausted descriptor table gives EMFILE
    assert not reservation.reserving
    reservation.ahead_of(1 << 20)
    reservation.release()


@pytest.mark.parametrize("file_format", ["legacy", "integrated"])
def test_written_files_hold_no_reserved_blocks_past_their_end(tmp_path, file_format):
    series = make_series(tiny_experiment(file_format=file_format))
    writer = SeriesWriter(series.start, tmp_path)
    for image in series.images:
        writer.add_image(image)
    summary = writer.finish(series.end, SeriesState.COMPLETED)
    assert summary.images_written == len(series.images)
    for name in summary.files:
        path = tmp_path / name
        # a file system block of slack at most (st_blocks counts 512-byte units)
        assert allocated_bytes(path) <= path.stat().st_size + 64 * 1024, name
        with h5py.File(path, "r") as h5:
            h5.visit(lambda _name: None)  # readable from end to end
    with h5py.File(tmp_path / "run/tiny_master.h5", "r") as master:
        first = master["/entry/data"]
        stack = first["data"] if "data" in first else first["data_000001"]
        assert np.array_equal(stack[0], series.pixels[0])
