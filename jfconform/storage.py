"""How a run's frames are stored: image datasets, links and VDS mappings, filters, chunks.

The HDF5 mechanics that several rule families and the truth checksum share; the file
context (:mod:`jfconform.context`) finds the stores, these types and helpers describe them.
Every helper is bounded by what the file holds, never by what a header declares.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jfconform.model import Issue

#: Names Jungfraujoch gives its files (Jungfraujoch docs/HDF5.md §2).
MASTER_NAME = re.compile(r"^(?P<prefix>.+)_master\.h5$")
DATA_NAME = re.compile(r"^(?P<prefix>.+)_data_(?P<number>\d{6})\.h5$")
#: Reprocessing output (Jungfraujoch docs/HDF5.md §2): integrated layout, images by VDS from the
#: raw run's files.
PROCESS_NAME = re.compile(r"^(?P<prefix>.+)_process\.h5$")
LEGACY_LINK = re.compile(r"^data_(\d{6})$")

#: HDF5 filter IDs, and the compressor index bitshuffle keeps in cd_values[4].
BITSHUFFLE = 32008
LZ4 = 32004
LZ4_IN_BITSHUFFLE = 2
ZSTD_IN_BITSHUFFLE = 3

#: What h5py raises when a file's content cannot be read.
READ_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)
#: The most frames a VDS mapping or chunk map is enumerated for, one index each.
MAX_INDEXED_FRAMES = 2**24


def declared_nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes a whole read of this shape allocates (exact Python integers, no overflow)."""
    return math.prod(int(n) for n in shape) * max(1, int(dtype.itemsize))


@dataclass(frozen=True, slots=True)
class ImageStore:
    """A real (non-virtual) dataset holding frames, wherever it lives.

    Attributes:
        label: how findings name it, ``file.h5:/entry/data/data``.
        file_name: the data file's name as the master spells it (link/VDS target).
        dataset: the open dataset (read-only).
        first_frame: index of its first frame in the whole run (legacy: consecutive blocks).
    """

    label: str
    file_name: str
    dataset: h5py.Dataset
    first_frame: int

    def issue(self, message: str, hint: str | None = None, **details: Any) -> Issue:
        """A finding about this store's dataset, located in the file that holds it."""
        return Issue(self.dataset.name, message, hint, file=self.file_name, **details)


@dataclass(frozen=True, slots=True)
class Reference:
    """One external link or VDS mapping from the checked file to another file."""

    kind: str  # "external-link" | "vds"
    path: str  # HDF5 path in the checked file
    file_name: str  # as stored
    object_path: str  # dataset path inside the target file
    resolved: Path | None  # absolute path when relative resolution is possible


@dataclass(frozen=True, slots=True)
class VdsSource:
    """One mapping of a virtual dataset, with the source dataset when it can be opened."""

    file_name: str
    dset_name: str
    resolved: Path | None
    dataset: h5py.Dataset | None
    frames: np.ndarray | None  # virtual frame indices it covers; None: too many to list
    first_frame: int
    virtual_points: int
    source_points: int


def mapped_frames(
    vspace: h5py.h5s.SpaceID, src_space: h5py.h5s.SpaceID
) -> tuple[np.ndarray | None, int, int, int | None]:
    """(frames covered, first frame, virtual points, source points; ``None`` for "all")."""
    frames = _selected_frames(vspace)
    source_points = None if _is_select_all(src_space) else _npoints(src_space)
    return frames, _first_frame(vspace, frames), _npoints(vspace), source_points


def _first_frame(space: h5py.h5s.SpaceID, frames: np.ndarray | None) -> int:
    if frames is not None:
        return int(frames[0]) if frames.size else 0
    try:
        return int(space.get_select_bounds()[0][0])
    except READ_ERRORS:
        return 0


def _npoints(space: h5py.h5s.SpaceID) -> int:
    try:
        return int(space.get_select_npoints())
    except READ_ERRORS:
        return -1


def _is_select_all(space: h5py.h5s.SpaceID) -> bool:
    try:
        return bool(space.get_select_type() == h5py.h5s.SEL_ALL)
    except READ_ERRORS:
        return False


def _selected_frames(space: h5py.h5s.SpaceID) -> np.ndarray | None:
    """Indices along the first axis touched by a (regular) hyperslab selection; ``None`` when
    there are more than ``MAX_INDEXED_FRAMES`` of them (not enumerated: bounded memory)."""
    try:
        if space.get_select_type() == h5py.h5s.SEL_ALL:
            return _bounded_range(0, int(space.shape[0]))
        start, stride, count, block = space.get_regular_hyperslab()
    except READ_ERRORS:
        try:
            low, high = space.get_select_bounds()
            return _bounded_range(int(low[0]), int(high[0]) + 1)
        except READ_ERRORS:
            return np.empty(0, dtype=np.int64)
    if int(count[0]) * int(block[0]) > MAX_INDEXED_FRAMES:
        return None
    base = start[0] + stride[0] * np.arange(count[0])
    return np.asarray((base[:, None] + np.arange(block[0])[None, :]).reshape(-1))


def _bounded_range(low: int, high: int) -> np.ndarray | None:
    return None if high - low > MAX_INDEXED_FRAMES else np.arange(low, high)


def filters_of(dataset: h5py.Dataset) -> list[tuple[int, tuple[int, ...]]]:
    """(filter id, cd_values) of a dataset's pipeline, in order; [] when unreadable."""
    try:
        plist = dataset.id.get_create_plist()
        found = []
        for index in range(plist.get_nfilters()):
            code, _flags, values, _name = plist.get_filter(index)
            found.append((int(code), tuple(int(v) for v in values)))
        return found
    except READ_ERRORS:
        return []


def expected_fill(dtype: np.dtype) -> int | None:
    """The Jungfraujoch no-data fill: INTx_MIN for signed, UINTx_MAX for unsigned."""
    if dtype.kind == "i":
        return int(np.iinfo(dtype).min)
    if dtype.kind == "u":
        return int(np.iinfo(dtype).max)
    return None


def single_chunk_index(dataset: h5py.Dataset) -> bool:
    """True when libhdf5 (≥1.10 bounds) would use a single-chunk index: fixed size, one chunk."""
    chunks, maxshape = dataset.chunks, dataset.maxshape
    return chunks is not None and None not in maxshape and tuple(chunks) == dataset.shape


@dataclass(frozen=True, slots=True)
class WrittenFrames:
    """Which frames of a chunked image dataset have allocated chunks, kept as the sorted
    first frames of those chunks (never one flag per declared frame: a damaged header may
    declare 2³² frames of which four were written)."""

    n_frames: int
    frames_per_chunk: int
    chunk_starts: np.ndarray  # sorted first frame of each allocated chunk row

    def count(self) -> int:
        """Frames with an allocated chunk."""
        ends = np.minimum(self.chunk_starts + self.frames_per_chunk, self.n_frames)
        return int(np.sum(ends - self.chunk_starts))

    def all_written(self) -> bool:
        return self.count() == self.n_frames

    def first_missing(self, limit: int) -> np.ndarray:
        """Up to ``limit`` frames without an allocated chunk, in order."""
        missing: list[int] = []
        expected = 0
        for start in (*self.chunk_starts.tolist(), self.n_frames):
            while expected < min(start, self.n_frames) and len(missing) < limit:
                missing.append(expected)
                expected += 1
            if len(missing) >= limit:
                break
            expected = max(expected, start + self.frames_per_chunk)
        return np.asarray(missing, dtype=np.int64)


def written_frames(dataset: h5py.Dataset) -> WrittenFrames | None:
    """The frames whose chunks are allocated; ``None`` when that cannot be told.

    A writer that misses images leaves their chunks unallocated: they read as the fill value
    (the documented Jungfraujoch behaviour), which is not a storage fault. The work is
    bounded by the chunks in the file, not by the frames the header declares.
    """
    if dataset.ndim != 3 or dataset.chunks is None or dataset.is_virtual:
        return None
    n_frames = int(dataset.shape[0])
    frames_per_chunk = int(dataset.chunks[0])
    grid = [-(-int(n) // int(c)) for n, c in zip(dataset.shape, dataset.chunks, strict=True)]
    try:
        allocated = dataset.id.get_num_chunks()
        if allocated == 0:
            return WrittenFrames(n_frames, frames_per_chunk, np.empty(0, dtype=np.int64))
        if allocated == math.prod(grid):  # the usual case: every chunk written
            starts = np.arange(0, n_frames, frames_per_chunk, dtype=np.int64)
            return WrittenFrames(n_frames, frames_per_chunk, starts)
        offsets: list[int] = []
        dataset.id.chunk_iter(lambda info: offsets.append(int(info.chunk_offset[0])))
    except (*READ_ERRORS, NotImplementedError, MemoryError):
        return None
    return WrittenFrames(n_frames, frames_per_chunk, np.unique(np.asarray(offsets, np.int64)))
