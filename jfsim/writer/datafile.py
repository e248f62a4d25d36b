"""One HDF5 file of images: direct chunk writes of the received compressed bytes.

Images arrive already compressed with bitshuffle/LZ4 in the HDF5 filter framing, so each is
stored as one chunk with a direct chunk write (on the ``jfsim.writer.chunks`` thread when one
is given): never decompressed, never recompressed. The file lives under
``<final>.<random>.tmp`` until ``close`` renames it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

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
    ) -> None:
        """``chunks`` writes the image chunks (on its own thread); None: write them here."""
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
        self.h5 = h5py.File(self.tmp_path, "w", libver=libver)
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
        tree.write(self.h5)
        # blocks reserved ahead of the chunks: appending page by page costs the writes more
        self._disk = DiskReservation(self.h5.id.get_vfd_handle())
        # looked up once: each h5py look-up takes HDF5's lock, which the chunk thread holds
        self._target = ChunkTarget.of(self.h5["entry/data/data"])
        self._closed = False

    @property
    def entry(self) -> h5py.Group:
        return self.h5["entry"]

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
        self.analysis.write(self.entry, detector_group=self.detector_group)
        if before_close is not None:
            before_close(self)
        if self._chunks is not None:
            self._chunks.drain(self._target)
        try:
            self.h5.close()
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
                self.h5.close()
            finally:
                self._disk.release()
            self._closed = True
