"""One series from start to end: images into data files, then the master file.

``SeriesWriter`` is the file-writing core without sockets: feed it the decoded start
message, then image messages in any order, then ``finish``. It is what the receiver drives
and what tests and notebooks can use directly.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jfsim.protocol import Compression, Message, PixelArray, ProtocolError, bslz4
from jfsim.writer import hdf5_library
from jfsim.writer.chunks import ChunkWriter
from jfsim.writer.datafile import INSTANCES, LIBVER_HDF5_18, LIBVER_HDF5_110, ImageFile
from jfsim.writer.disk_space import DiskReservation
from jfsim.writer.errors import WriterError
from jfsim.writer.layout import DataFileRecord, link_data_files, link_detector_data
from jfsim.writer.mask import PixelMask
from jfsim.writer.nxmx import store_pixel_mask, write_calibration, write_nxmx_metadata
from jfsim.writer.plan import IMAGE_ROW_BYTES, SPOT_SLOT_BYTES, FileFormat, SeriesPlan
from jfsim.writer.received import ReceivedImages, format_ranges
from jfsim.writer.safety import (
    commit_file,
    contained_directory,
    refuse_existing,
    temporary_path,
)
from jfsim.writer.start_fields import usable_end_fields

log = logging.getLogger(__name__)

#: Problems logged (and kept in the summary) per series; later ones are only counted.
MAX_LOGGED_PROBLEMS = 50
#: Calibration images kept per series (JUNGFRAU: pedestals and RMS per gain and cell).
MAX_CALIBRATION_IMAGES = 256
#: Missing-image ranges kept in a summary (the count covers all of them).
MAX_LISTED_RANGES = 100
#: What can go wrong while closing files and writing the master: h5py reports I/O failures
#: as OSError or RuntimeError, values it cannot store as ValueError, TypeError or
#: OverflowError, and a master too large for memory as MemoryError.
FINISH_ERRORS = (
    OSError,
    RuntimeError,
    WriterError,
    ValueError,
    TypeError,
    KeyError,
    OverflowError,
    MemoryError,
)


class ImageOutcome(str, Enum):
    """What happened to one image message."""

    WRITTEN = "written"
    DUPLICATE = "duplicate"  # this image_id was written already: ignored
    OUT_OF_RANGE = "out_of_range"  # image_id >= number_of_images or negative
    REJECTED = "rejected"  # wrong shape/type/framing, or not an image of this series
    NOT_WRITTEN = "not_written"  # accepted, but the series writes no files


class SeriesState(str, Enum):
    COMPLETED = "completed"  # end message received, master written
    CANCELLED = "cancelled"  # closed on request (HTTP /cancel, shutdown)
    INTERRUPTED = "interrupted"  # a new start arrived before the end
    FAILED = "failed"  # the files could not be finished (they stay *.tmp)


@dataclass(frozen=True, slots=True)
class ClosedFile:
    """A data file (or integrated master) that was closed and renamed to its final name."""

    path: Path
    relative_name: str  # relative to the writer root, as the notification reports it
    file_number: int  # 0-based index within the series
    nimages: int
    start_fields: Mapping[str, Any]


@dataclass(slots=True)
class SeriesCounters:
    received: int = 0
    written: int = 0
    duplicates: int = 0
    out_of_range: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    """The result of one series, as logged and as ``--json`` prints it.

    ``images_expected`` is what the start message announced; ``images_collected`` what the
    end message says the detector collected (None without one); ``images_missing`` counts the
    images below the smaller of the two that were never written, ``missing`` lists them as
    inclusive ``[first, last]`` ranges (the first ``MAX_LISTED_RANGES``).
    """

    file_prefix: str
    series_id: int | None
    series_unique_id: str | None
    file_format: str
    state: str
    images_expected: int
    images_received: int
    images_written: int
    duplicates: int
    out_of_range: int
    rejected: int
    files: tuple[str, ...]
    elapsed_s: float
    rate_hz: float
    errors: tuple[str, ...] = field(default=())  # the first MAX_LOGGED_PROBLEMS problems
    problems: int = 0  # every problem, logged or not
    images_collected: int | None = None
    images_missing: int = 0
    missing: tuple[tuple[int, int], ...] = ()
    format_choice: str = ""  # which layout was used and why

    def as_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.__slots__}
        values["missing"] = [list(pair) for pair in self.missing]
        return values

    @property
    def complete(self) -> bool:
        """Completed with every collected image written."""
        return self.state == SeriesState.COMPLETED.value and self.images_missing == 0

    def log_line(self) -> str:
        missing = ""
        if self.images_missing:
            missing = (
                f"; {self.images_missing} MISSING (image ids {format_ranges(list(self.missing))})"
            )
        return (
            f"series {self.series_id} '{self.file_prefix}' {self.state}: "
            f"{self.images_written}/{self.images_expected} images written "
            f"({self.images_received} received, {self.duplicates} duplicates, "
            f"{self.rejected} rejected, {self.out_of_range} out of range{missing}), "
            f"{len(self.files)} files, {self.rate_hz:.1f} images/s ({self.file_format})"
        )


class SeriesWriter:
    """Writes one series under ``root_dir`` according to its start message.

    Raises ``WriterError`` subclasses at construction when the series must be refused
    (unsafe prefix, existing files without ``overwrite``, unusable start fields); nothing
    is written then. ``format_override`` (the writer's ``--format``) wins over the layout
    the start message names; ``default_format`` applies when it names none.
    """

    def __init__(
        self,
        start: Message,
        root_dir: Path,
        *,
        default_format: FileFormat = FileFormat.LEGACY,
        format_override: FileFormat | None = None,
        overwrite: bool = False,
        on_file_closed: Callable[[ClosedFile], None] | None = None,
        chunk_engine: str = "auto",
        data_file_instance: str = "auto",
    ) -> None:
        self.start = start
        self.root_dir = Path(os.path.realpath(root_dir))
        self.overwrite = overwrite
        self.plan = SeriesPlan.from_start(start.fields, default_format, format_override)
        self.format_choice = self.plan.format_choice(format_override)
        self.images_expected = self.plan.n_images  # the plan shrinks if the series is cut short
        self.images_collected: int | None = None
        self.on_file_closed = on_file_closed
        self.counters = SeriesCounters()
        self.received = ReceivedImages()
        sockets = start.get("image_sockets")
        self._image_sockets = sockets if isinstance(sockets, int) and sockets > 1 else 1
        # With several image sockets a writer receives only its socket's data files: socket
        # 0 for the master writer, else the socket of the first image that arrives.
        self._socket_index: int | None = 0 if self.plan.write_master_file else None
        self.errors: list[str] = []
        self.problem_count = 0
        self.closed_files: list[str] = []
        self._records: dict[int, DataFileRecord] = {}
        self._open: dict[int, ImageFile] = {}
        self._complete: list[int] = []  # open data files holding all their images, in order
        self._integrated: ImageFile | None = None
        self._master: h5py.File | None = None  # open from the series' start (legacy, VDS)
        self._master_disk: DiskReservation | None = None  # blocks reserved for the master
        self._calibration: dict[str, PixelArray] = {}
        self._pixel_mask = PixelMask(start.get("pixel_mask"), self.plan.image_shape)
        self._chunks = ChunkWriter(chunk_engine)
        self.chunk_engine = self._chunks.engine  # which engine writes the image chunks
        # which HDF5 instance makes the data files of a legacy or VDS series
        self.data_file_instance = _data_file_instance(data_file_instance)
        self._keeps_analysis = (
            self.plan.file_format is FileFormat.LEGACY and self.plan.write_master_file
        )
        height, width = self.plan.image_shape
        self._frame_bytes = height * width * self.plan.image_dtype.itemsize
        self._started_s = time.monotonic()
        self._first_image_s: float | None = None
        self._last_image_s: float | None = None
        self._master_tmp_path: Path | None = None  # None: no files (an empty prefix, nofile)
        if not self.plan.writes_files:
            return
        master_path = self.plan.master_path(self.root_dir)
        contained_directory(self.root_dir, master_path.parent)
        if not overwrite:
            refuse_existing(self.plan.final_paths(self.root_dir))
        self._master_tmp_path = temporary_path(master_path)
        if self.plan.file_format is FileFormat.INTEGRATED:
            self._integrated = self._new_image_file(
                master_path,
                0,
                self.plan.n_images,
                LIBVER_HDF5_110,
                detector_group="instrument/detector/detectorSpecific",
            )
        elif self.plan.write_master_file:
            self._open_master()

    def _new_image_file(
        self,
        path: Path,
        first_image_id: int,
        n_images: int,
        libver: tuple[str, str],
        detector_group: str = "detector",
        instance: str = "shared",
    ) -> ImageFile:
        contained_directory(self.root_dir, path.parent)
        return ImageFile(
            path,
            n_images=n_images,
            first_image_id=first_image_id,
            image_shape=self.plan.image_shape,
            image_dtype=self.plan.image_dtype,
            fill_value=self.plan.error_value,
            max_spots=self.plan.max_spots,
            azint_shape=self.plan.azint_shape,
            libver=libver,
            detector_group=detector_group,
            chunks=self._chunks,
            instance=instance,
        )

    @property
    def libver(self) -> tuple[str, str]:
        return LIBVER_HDF5_18 if self.plan.file_format is FileFormat.LEGACY else LIBVER_HDF5_110

    def _image_file_for(self, image_id: int) -> tuple[ImageFile, int]:
        if self._integrated is not None:
            return self._integrated, image_id
        file_index, position = divmod(image_id, self.plan.images_per_file)
        image_file = self._open.get(file_index)
        if image_file is None:
            path = self.plan.data_file_path(self.root_dir, file_index)
            if not self.overwrite:
                refuse_existing([path])
            image_file = self._new_image_file(
                path,
                file_index * self.plan.images_per_file,
                self.plan.images_in_file(file_index),
                self.libver,
                instance=self.data_file_instance,
            )
            self._open[file_index] = image_file
        return image_file, position

    def _payload(self, image: Message) -> bytes | memoryview:
        """The bitshuffle/LZ4 chunk of the image, checked against the series' frame.

        The block framing is trusted: ``jfsim.protocol.decode`` validates it, and
        ``PixelArray.from_numpy`` builds it; only the declared size is re-checked here.
        """
        channels = image.get("data")
        pixels = channels.get("default") if isinstance(channels, Mapping) else None
        if pixels is None and isinstance(channels, Mapping) and len(channels) == 1:
            pixels = next(iter(channels.values()))
        if not isinstance(pixels, PixelArray):
            raise WriterError("field 'data': no pixel channel 'default'")
        if tuple(pixels.shape) != self.plan.image_shape:
            raise WriterError(
                f"field 'data': shape {tuple(pixels.shape)}, series has {self.plan.image_shape}"
            )
        if pixels.dtype != self.plan.image_dtype:
            raise WriterError(
                f"field 'data': pixel type {np.dtype(pixels.dtype).name}, series has "
                f"{self.plan.image_dtype.name}"
            )
        frame_bytes = self._frame_bytes
        if pixels.compression is Compression.BSLZ4:
            # decode() validated the block framing already; the header's size must match the
            # frame, or the chunk would be unreadable (cheap: 12 bytes).
            try:
                declared_bytes = bslz4.read_header(pixels.payload)[0]
            except ProtocolError as error:
                raise WriterError(f"field 'data': {error}") from None
            if declared_bytes != frame_bytes:
                raise WriterError(
                    f"field 'data': bslz4 header declares {declared_bytes} bytes, "
                    f"the frame has {frame_bytes}"
                )
            return pixels.payload  # a received frame's buffer is written as it is, uncopied
        # Uncompressed or plain-LZ4 images: the file format is bitshuffle/LZ4 only.
        try:
            return bslz4.compress(pixels.to_numpy())
        except ProtocolError as error:
            raise WriterError(f"field 'data': {error}") from None

    def add_image(self, image: Message) -> ImageOutcome:
        """File one image message; problems are counted and logged, never raised."""
        self.counters.received += 1
        now = time.monotonic()
        self._first_image_s = self._first_image_s or now
        image_id = image.get("image_id")
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            return self._reject(f"image message: field 'image_id': got {image_id!r}")
        if not 0 <= image_id < self.plan.n_images:
            self.counters.out_of_range += 1
            self._error(f"image {image_id}: outside 0..{self.plan.n_images - 1} (number_of_images)")
            return ImageOutcome.OUT_OF_RANGE
        series_id = image.get("series_id")
        if (
            self.plan.series_id is not None
            and isinstance(series_id, int)
            and (series_id != self.plan.series_id)
        ):
            return self._reject(
                f"image {image_id}: belongs to series {series_id}, series "
                f"{self.plan.series_id} is open"
            )
        if image_id in self.received:
            self.counters.duplicates += 1
            return ImageOutcome.DUPLICATE
        try:
            payload = self._payload(image)
        except WriterError as error:
            return self._reject(f"image {image_id}: {error}")
        self.received.add(image_id)
        self._last_image_s = now
        if self._socket_index is None:
            self._socket_index = (image_id // self.plan.images_per_file) % self._image_sockets
        if not self.plan.writes_files:
            return ImageOutcome.NOT_WRITTEN
        try:
            image_file, position = self._image_file_for(image_id)
            problems = image_file.write_image(position, payload, image.fields)
        except (WriterError, OSError, RuntimeError) as error:  # h5py: OSError/RuntimeError
            self.received.discard(image_id)
            return self._reject(f"image {image_id}: not written: {error}")
        self.counters.written += 1
        if problems:
            self._error(f"image {image_id}: analysis fields skipped: {'; '.join(problems)}")
        if image_file is not self._integrated and image_file.complete:
            self._complete.append(image_id // self.plan.images_per_file)
        if self._complete:
            self.close_complete_files(wait=False)
        return ImageOutcome.WRITTEN

    def close_complete_files(self, *, wait: bool = True) -> None:
        """Close the data files that hold all their images, in the order they completed.

        A complete file is closed once the chunk thread has written its last images:
        waiting for them at once would leave the chunk thread idle while the file is closed
        and the next images are handled, twice per file. With ``wait`` its chunks are
        waited for (the writer is idle, or the series ends; the last files of a series
        are closed by ``finish`` while the master is written)."""
        while self._complete:
            file_index = self._complete[0]
            image_file = self._open.get(file_index)
            if image_file is not None and image_file.chunks_in_flight and not wait:
                return
            self._complete.pop(0)
            if image_file is not None:
                self._close_data_file(file_index)

    def add_calibration(self, calibration: Message) -> None:
        """Keep one calibration image (pedestal, RMS, …) for the master file."""
        name, data = calibration.get("name"), calibration.get("data")
        if isinstance(data, Mapping) and len(data) == 1:
            data = next(iter(data.values()))
        if not (isinstance(name, str) and name.isidentifier() and isinstance(data, PixelArray)):
            self._error("calibration message: needs a 'name' and a 'data' array; skipped")
        elif len(self._calibration) < MAX_CALIBRATION_IMAGES:
            self._calibration[name] = data

    def _reject(self, problem: str) -> ImageOutcome:
        self.counters.rejected += 1
        self._error(problem)
        return ImageOutcome.REJECTED

    def _error(self, problem: str) -> None:
        """Log and keep a problem; past MAX_LOGGED_PROBLEMS only count (no log flood)."""
        self.problem_count += 1
        if self.problem_count <= MAX_LOGGED_PROBLEMS:
            log.warning("%s", problem)
            self.errors.append(problem)
        elif self.problem_count == MAX_LOGGED_PROBLEMS + 1:
            log.warning("more problems in this series: counted, no longer logged")

    def _close_data_file(self, file_index: int) -> None:
        image_file = self._open.pop(file_index)
        try:
            path = image_file.close(overwrite=self.overwrite)
        except FINISH_ERRORS as error:
            # Not under its final name: its images are not written (counted as missing).
            image_file.abandon()
            lost = np.flatnonzero(image_file.received) + image_file.first_image_id
            for image_id in lost:
                self.received.discard(int(image_id))
            self.counters.written -= lost.size
            self._error(
                f"{image_file.final_path.name}: not finalised ({error}); "
                f"its {lost.size} images are lost"
            )
            return
        self._records[file_index] = DataFileRecord(
            file_index=file_index,
            file_name=path.name,
            first_image_id=image_file.first_image_id,
            n_images=image_file.n_images,
            n_written=image_file.n_written,
            datasets=image_file.analysis.dataset_specs(),
            reflection_groups=tuple(image_file.analysis.reflection_groups()),
            # legacy masters copy the arrays; keeping them saves reading the files back
            arrays=image_file.analysis.arrays() if self._keeps_analysis else {},
        )
        self._notify(path, file_index, image_file.images_to_last)

    def _notify(self, path: Path, file_number: int, nimages: int) -> None:
        self.closed_files.append(str(path.relative_to(self.root_dir)))
        if self.on_file_closed is not None:
            self.on_file_closed(
                ClosedFile(
                    path=path,
                    relative_name=str(path.relative_to(self.root_dir)),
                    file_number=file_number,
                    nimages=nimages,
                    start_fields=self.start.fields,
                )
            )

    def finish(self, end: Message | None, state: SeriesState) -> SeriesSummary:
        """Close every file, write the master, rename everything to final names and return
        the summary. Data files of which no image arrived are linked, never created: with
        several image sockets another writer writes them.

        A master that cannot be written is a failure: the state becomes ``failed``, the
        reason is logged and kept, and the unfinished files stay ``*.tmp``."""
        end_fields = None
        if end is not None:
            end_fields, problems = usable_end_fields(end.fields)
            for problem in problems:
                self._error(problem)
            collected = end_fields.get("images_collected")
            self.images_collected = collected if isinstance(collected, int) else None
        if self.plan.writes_files:
            try:
                self._finish_files(end_fields, state)
            except FINISH_ERRORS as error:
                reason = str(error) or type(error).__name__
                self._error(f"finishing series: {reason}; its files stay *.tmp (not finalised)")
                self.abandon()
                state = SeriesState.FAILED
        self._chunks.close()
        return self._summary(state)

    def _finish_files(self, end_fields: Mapping[str, Any] | None, state: SeriesState) -> None:
        self.close_complete_files(wait=False)
        if self._integrated is not None:
            integrated = self._integrated

            def add_master(image_file: ImageFile) -> None:
                self._write_master_content(image_file.h5, end_fields, state)
                link_detector_data(image_file.h5)
                self._finish_mask()

            path = integrated.close(overwrite=self.overwrite, before_close=add_master)
            self._notify(path, 0, integrated.images_to_last)
            return
        if not self.plan.write_master_file:
            # A secondary writer: its data files only; the master writer links them all.
            self._close_open_data_files()
            return
        master_path = self.plan.master_path(self.root_dir)
        # The master's content is written while the chunk thread finishes the last data
        # files (they take turns on HDF5's lock); it is written again, into a fresh file, in
        # the rare case that closing a data file loses its images, which the master must
        # then not claim.
        received_before = self.received.count
        try:
            master = self._write_master_file(end_fields, state)
        except FINISH_ERRORS:
            self._close_open_data_files()
            raise
        try:
            self._close_open_data_files()
            if self.received.count != received_before:
                self._close_master()
                master = self._write_master_file(end_fields, state)
            link_data_files(master, self.plan, list(self._all_records().values()))
            self._finish_mask()
        finally:
            self._close_master()
        commit_file(self._master_temporary_path(), master_path, overwrite=self.overwrite)
        self.closed_files.insert(0, str(master_path.relative_to(self.root_dir)))

    def _close_open_data_files(self) -> None:
        self.close_complete_files(wait=True)
        for file_index in sorted(self._open):
            self._close_data_file(file_index)

    def _master_temporary_path(self) -> Path:
        if self._master_tmp_path is None:
            raise WriterError("this series writes no files (empty file_prefix or nofile)")
        return self._master_tmp_path

    def _open_master(self) -> h5py.File:
        """The master under its temporary name, holding only its pixel mask so far.

        Opened as the series starts, so that the job thread writes the mask (18 MB for a
        JUNGFRAU 4M) while the images arrive. Stored at the end, the mask was still being
        written while the master's other objects were: a buffered write holds its file's
        lock, so their writes waited for it (4-13 ms of a legacy master's per-image copies).
        """
        tmp_path = self._master_temporary_path()
        contained_directory(self.root_dir, tmp_path.parent)
        master = h5py.File(tmp_path, "w", libver=self.libver)
        self._master = master
        try:
            # the mask and the legacy copies are most of its bytes: blocks reserved for them
            self._master_disk = DiskReservation(master.id.get_vfd_handle())
            self._master_disk.ahead_of(self._master_bytes())
            master.attrs["file_name"] = self.plan.master_path(self.root_dir).name
            store_pixel_mask(master, self._pixel_mask)
        except BaseException:
            self._close_master()
            raise
        return master

    def _write_master_file(
        self, end_fields: Mapping[str, Any] | None, state: SeriesState
    ) -> h5py.File:
        """The master (opened now unless it is open) with its NXmx content, but not yet
        the links to the data files; a series that stopped early is first shortened to its
        data files."""
        if state is not SeriesState.COMPLETED:
            self._end_at_last_received_file(0)
        elif self.images_collected is not None and self.images_collected < self.plan.n_images:
            self._end_at_last_received_file(self.images_collected)
        master = self._master if self._master is not None else self._open_master()
        try:
            self._write_master_content(master, end_fields, state)
        except BaseException:
            self._close_master()
            raise
        return master

    def _master_bytes(self) -> int:
        """About the size of the master: the pixel mask, and a legacy master's copies of
        the per-image arrays."""
        height, width = self.plan.image_shape
        copies = 0
        if self._keeps_analysis:
            copies = self.plan.n_images * (self.plan.max_spots * SPOT_SLOT_BYTES + IMAGE_ROW_BYTES)
        return height * width * 4 + copies

    def _close_master(self) -> None:
        """Close the master once no thread writes into it, and give back spare blocks."""
        self._pixel_mask.wait()
        master, self._master = self._master, None
        try:
            if master is not None:
                master.close()
        finally:
            if self._master_disk is not None:
                self._master_disk.release()
                self._master_disk = None

    def _all_records(self) -> dict[int, DataFileRecord]:
        """Every data file of the plan: those written here, and the others as remote."""
        records = dict(self._records)
        for file_index in range(self.plan.n_data_files):
            if file_index not in records:
                # No image of this file arrived here: another writer (one per image socket)
                # writes it, or nobody; the master links it either way, never creates it.
                records[file_index] = DataFileRecord(
                    file_index=file_index,
                    file_name=self.plan.data_file_path(self.root_dir, file_index).name,
                    first_image_id=file_index * self.plan.images_per_file,
                    n_images=self.plan.images_in_file(file_index),
                    n_written=0,
                    remote=True,
                )
        return records

    def _end_at_last_received_file(self, images_collected: int) -> None:
        """Shorten a series that stopped early to the data files that can exist.

        Cancelled, interrupted, or ended with fewer images collected than announced: the
        master then describes the images up to the end of the last data file that received
        any (or that holds the last collected image), instead of linking files nobody
        will write.
        """
        last_image = max(self.received.highest + 1, images_collected)
        files = -(-last_image // self.plan.images_per_file)
        n_images = min(self.plan.n_images, files * self.plan.images_per_file)
        if n_images < self.plan.n_images:
            self.plan = replace(self.plan, n_images=n_images)

    def _write_master_content(
        self, h5: h5py.File, end_fields: Mapping[str, Any] | None, state: SeriesState
    ) -> None:
        problems = write_nxmx_metadata(
            h5,
            self.start.fields,
            end_fields,
            self.plan,
            self.received.as_array(self.plan.n_images),
            state.value,
            self._pixel_mask,
        )
        for problem in problems:
            self._error(problem)
        if self._calibration:
            write_calibration(h5["/entry/instrument/detector"], self._calibration)

    def _finish_mask(self) -> None:
        self._pixel_mask.finish()
        for problem in self._pixel_mask.problems:
            self._error(problem)

    def abandon(self) -> None:
        """The crash-safe exit: data files holding all their images are renamed to their final
        names; every other open file is closed as it is (it stays ``*.tmp``)."""
        self._pixel_mask.wait()
        try:
            self._chunks.drain()  # no chunk may be written into a closed file
            self.close_complete_files()  # a data file holding all its images is final
        except OSError as error:
            self._error(str(error))
        for image_file in self._open.values():
            image_file.abandon()
        self._open.clear()
        self._complete.clear()
        if self._integrated is not None:
            self._integrated.abandon()
        self._close_master()  # stays *.tmp

    def current_rate_hz(self) -> float:
        """Images written per second between the first and the latest image (N images span
        N − 1 intervals). Images queued before the writer got to them make it run ahead."""
        if self._first_image_s is None or self._last_image_s is None:
            return 0.0
        span_s = self._last_image_s - self._first_image_s
        intervals = self.counters.written - 1
        return round(intervals / span_s if span_s > 0 and intervals > 0 else 0.0, 2)

    def images_to_expect(self) -> int:
        """How many images should have arrived: the announced number, or fewer when the end
        message says the detector collected fewer (never below the highest id received)."""
        if self.images_collected is None:
            return self.images_expected
        return min(self.images_expected, max(self.images_collected, self.received.highest + 1))

    def _summary(self, state: SeriesState) -> SeriesSummary:
        counters = self.counters
        elapsed_s = time.monotonic() - self._started_s
        expected = self.images_to_expect()
        mine = None
        if self._image_sockets > 1:
            files = np.arange(expected) // self.plan.images_per_file
            mine = files % self._image_sockets == self._socket_index
        missing_ids = self.received.missing(expected, mine)
        missing = self.received.missing_ranges(expected, mine)
        return SeriesSummary(
            file_prefix=str(self.plan.file_prefix or ""),
            series_id=self.plan.series_id,
            series_unique_id=self.plan.series_unique_id,
            file_format=self.plan.file_format.value,
            state=state.value,
            images_expected=self.images_expected,
            images_received=counters.received,
            images_written=counters.written,
            duplicates=counters.duplicates,
            out_of_range=counters.out_of_range,
            rejected=counters.rejected,
            files=tuple(self.closed_files),
            elapsed_s=round(elapsed_s, 3),
            rate_hz=self.current_rate_hz(),
            errors=tuple(self.errors),
            problems=self.problem_count,
            images_collected=self.images_collected,
            images_missing=int(np.count_nonzero(missing_ids)),
            missing=tuple(missing[:MAX_LISTED_RANGES]),
            format_choice=self.format_choice,
        )


def _data_file_instance(choice: str) -> str:
    """The HDF5 instance for data files: ``auto`` takes the private one where it loads."""
    if choice not in ("auto", *INSTANCES):
        raise ValueError(f"data file instance {choice!r}: use auto, {', '.join(INSTANCES)}")
    if choice == "auto":
        return "private" if hdf5_library.probe_private() is None else "shared"
    if choice == "private" and (reason := hdf5_library.probe_private()) is not None:
        raise RuntimeError(f"data file instance 'private' unavailable: {reason}")
    return choice
