"""One HDF5 file of images: direct chunk writes of the received compressed bytes.

Images arrive already compressed with bitshuffle/LZ4 in the HDF5 filter framing, so each is
stored as one chunk with a direct chunk write (on the ``jfsim.writer.chunks`` thread when one
is given): never decompressed, never recompressed. The file lives under
``<final>.<random>.tmp`` until ``close`` renames it.

A file is made in h5py's HDF5 instance, or in the private one
(``hdf5_library.private_library``) by its C functions: HDF5 serialises every call of an
instance, so the data files of a legacy or VDS series go there and their chunks keep being
written while h5py's instance writes the master.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from jfsim.writer import hdf5_library
from jfsim.writer.chunks import ChunkTarget, ChunkWriter
from jfsim.writer.disk_space import DiskReservation
from jfsim.writer.h5tree import H5Tree
from jfsim.writer.per_image import AnalysisBuffer
from jfsim.writer.safety import commit_file, temporary_path

#: HDF5 format bounds. Legacy files stay readable by HDF5 1.8 (Neggia, Durin builds on 1.8);
#: VDS needs 1.10; ``v110`` as the upper bound keeps files readable by every 1.10+ library.
LIBVER_HDF5_18 = ("earliest", "v108")
LIBVER_HDF5_110 = ("v110", "v110")
_BITSHUFFLE = hdf5plugin.Bitshuffle(cname="lz4")
#: The bitshuffle filter with LZ4 as (HDF5 filter id, options): 32008, (0 = automatic block
#: size, 2 = LZ4).
BITSHUFFLE_LZ4 = (_BITSHUFFLE.filter_id, tuple(_BITSHUFFLE.filter_options))
#: Where a data file is made: h5py's HDF5 instance, or the private one.
INSTANCES = ("shared", "private")


class PrivateHdf5File:
    """An HDF5 file of the private instance: its identifier, the image dataset's, and the
    file descriptor; every call under the instance's lock."""

    def __init__(self, path: Path, libver: tuple[str, str]) -> None:
        self.lib = lib = hdf5_library.private_library()
        # made (and refused, with the system's reason) here first: HDF5 says only "failed"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666))
        try:
            with lib.lock:
                access = lib.check(
                    lib.H5Pcreate(lib.global_id("H5P_CLS_FILE_ACCESS_ID_g")), "H5Pcreate", str(path)
                )
                try:
                    low, high = (hdf5_library.LIBVER[bound] for bound in libver)
                    status = lib.H5Pset_libver_bounds(access, low, high)
                    lib.check(status, "H5Pset_libver_bounds", str(path))
                    self.file_id = lib.check(
                        lib.H5Fcreate(
                            os.fsencode(path),
                            hdf5_library.H5F_ACC_TRUNC,
                            hdf5_library.H5P_DEFAULT,
                            access,
                        ),
                        "H5Fcreate",
                        str(path),
                    )
                finally:
                    lib.H5Pclose(access)
        except BaseException:
            os.unlink(path)  # nothing of it is HDF5's yet
            raise
        self.dataset_id = 0

    def write_tree(self, tree: H5Tree, below: str) -> None:
        """Create ``tree`` below the group ``below`` ("": the root group)."""
        tree.write_private(self.file_id, below)

    def open_dataset(self, path: str) -> int:
        with self.lib.lock:
            self.dataset_id = self.lib.check(
                self.lib.H5Dopen2(self.file_id, path.encode(), hdf5_library.H5P_DEFAULT),
                "H5Dopen2",
                path,
            )
        return self.dataset_id

    def descriptor(self) -> int:
        """The file's descriptor (the default ``sec2`` driver keeps one)."""
        handle = ctypes.c_void_p()
        with self.lib.lock:
            self.lib.check(
                self.lib.H5Fget_vfd_handle(
                    self.file_id, hdf5_library.H5P_DEFAULT, ctypes.byref(handle)
                ),
                "H5Fget_vfd_handle",
                "",
            )
        if not handle.value:
            raise hdf5_library.Hdf5Error("H5Fget_vfd_handle gave no descriptor")
        return ctypes.c_int.from_address(handle.value).value

    def close(self) -> None:
        """Close the dataset and the file (the file is flushed: an error is raised)."""
        lib = self.lib
        with lib.lock:
            if self.dataset_id:
                lib.H5Dclose(self.dataset_id)
                self.dataset_id = 0
            if self.file_id:
                file_id, self.file_id = self.file_id, 0
                lib.check(lib.H5Fclose(file_id), "H5Fclose", "data file")


class ImageFile:
    """An image stack ``/entry/data/data`` ``[n_images, height, width]`` plus per-image arrays.

    ``first_image_id`` is the global image number of row 0. Rows never written read as the
    fill value (the detector's error value) and stay ``False`` in ``received``. The
    ``detector/*`` diagnostics go to ``detector_group`` below ``/entry`` (S1 §4.7: the
    integrated format puts them in ``instrument/detector/detectorSpecific``).
    """

    def __init__(
        self,
        final_path: Path,
        *,
        n_images: int,
        first_image_id: int,
        image_shape: tuple[int, int],
        image_dtype: np.dtype,
        fill_value: int,
        max_spots: int,
        azint_shape: tuple[int, int] | None,
        libver: tuple[str, str],
        detector_group: str = "detector",
        chunks: ChunkWriter | None = None,
        instance: str = "shared",
    ) -> None:
        """``chunks`` writes the image chunks (on its own thread); None: write them here.
        ``instance``: the HDF5 instance that makes the file (``INSTANCES``)."""
        if instance not in INSTANCES:
            raise ValueError(f"HDF5 instance {instance!r}: use one of {', '.join(INSTANCES)}")
        self.final_path = final_path
        self._chunks = chunks
        self.tmp_path = temporary_path(final_path)
        self.n_images = n_images
        self.first_image_id = first_image_id
        self.image_shape = image_shape
        self.image_dtype = image_dtype
        self.detector_group = detector_group
        self.frame_bytes = image_shape[0] * image_shape[1] * image_dtype.itemsize
        self.received = np.zeros(n_images, dtype=bool)
        self.n_written = 0
        self.analysis = AnalysisBuffer(
            n_images, max_spots=max_spots, first_image_id=first_image_id, azint_shape=azint_shape
        )
        self.h5: h5py.File | None = None
        self._private: PrivateHdf5File | None = None
        if instance == "private":
            self._private = PrivateHdf5File(self.tmp_path, libver)
        else:
            self.h5 = h5py.File(self.tmp_path, "w", libver=libver)
        try:
            tree = H5Tree()
            tree.attrs("", file_name=final_path.name)
            tree.group("entry", "NXentry")
            tree.group("entry/data", "NXdata", signal="data")
            tree.chunked_dataset(
                "entry/data/data",
                (n_images, *image_shape),
                image_dtype,
                chunks=(1, *image_shape),
                maxshape=(None, *image_shape),
                fill_value=fill_value,
                filters=(BITSHUFFLE_LZ4,),
                image_nr_low=np.int64(first_image_id + 1),
                image_nr_high=np.int64(first_image_id + n_images),
            )
            self._write_tree(tree, "")
            if self._private is not None:
                # blocks reserved ahead of the chunks: appending page by page costs more
                self._disk = DiskReservation(self._private.descriptor())
                dataset_id = self._private.open_dataset("entry/data/data")
                self._target = ChunkTarget.private(dataset_id, self._private.lib)
            else:
                assert self.h5 is not None
                self._disk = DiskReservation(self.h5.id.get_vfd_handle())
                # looked up once: each h5py look-up takes HDF5's lock, which the chunk
                # thread holds
                self._target = ChunkTarget.of(self.h5["entry/data/data"])
        except BaseException:
            self._close_file()
            raise
        self._closed = False

    def _write_tree(self, tree: H5Tree, below: str) -> None:
        """Create ``tree`` below ``below`` ("" = the file's root group)."""
        if self._private is not None:
            self._private.write_tree(tree, below)
        else:
            assert self.h5 is not None
            tree.write(self.h5[below] if below else self.h5)

    def _close_file(self) -> None:
        if self._private is not None:
            self._private.close()
        elif self.h5 is not None:
            self.h5.close()

    @property
    def images_to_last(self) -> int:
        """Rows up to the last image written, gaps included: jfjoch_writer's ``nimages`` of a
        file ("number of images in the file, counting from 1"); 0 before any."""
        written = np.flatnonzero(self.received)
        return int(written[-1]) + 1 if written.size else 0

    @property
    def complete(self) -> bool:
        return self.n_written == self.n_images

    @property
    def chunks_in_flight(self) -> int:
        """Image chunks submitted and not yet in the file (0 without a chunk writer)."""
        return self._chunks.in_flight(self._target) if self._chunks is not None else 0

    def write_image(
        self, position: int, payload: bytes | memoryview, fields: Mapping[str, Any]
    ) -> list[str]:
        """Store one compressed frame at row ``position`` and record its analysis fields.

        ``payload`` is the bitshuffle/LZ4 chunk exactly as received (unchanged until the
        file is closed). Returns the problems found in the analysis fields (the frame
        itself is written regardless).
        """
        self._disk.ahead_of(payload.nbytes if isinstance(payload, memoryview) else len(payload))
        if self._chunks is not None:
            self._chunks.submit(self._target, position, payload)
        else:
            self._target.write_direct_chunk((position, 0, 0), payload)
        if not self.received[position]:
            self.received[position] = True
            self.n_written += 1
        return self.analysis.record(position, fields)

    def close(
        self, *, overwrite: bool, before_close: Callable[[ImageFile], None] | None = None
    ) -> Path:
        """Write the per-image arrays, close and rename to the final name; returns it.

        Raises:
            OSError: an image chunk could not be written (the file stays ``*.tmp``).
        """
        if self._closed:
            return self.final_path
        # The last chunks may still be on their way (the chunk thread and these calls take
        # turns on HDF5's lock): the arrays and the master's objects are written meanwhile.
        self._write_tree(self.analysis.tree(detector_group=self.detector_group), "entry")
        if before_close is not None:
            before_close(self)
        if self._chunks is not None:
            self._chunks.drain(self._target)
        try:
            self._close_file()
        finally:
            self._disk.release()
        self._closed = True
        commit_file(self.tmp_path, self.final_path, overwrite=overwrite)
        return self.final_path

    def abandon(self) -> None:
        """Close without renaming: the partial file stays as ``*.tmp`` (never a final name)."""
        if not self._closed:
            if self._chunks is not None:
                try:
                    self._chunks.drain(self._target)  # nothing may write into a closed file
                except OSError:
                    pass  # the file is abandoned anyway
            try:
                self._close_file()
            finally:
                self._disk.release()
            self._closed = True
