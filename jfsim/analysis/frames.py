"""Read frames of a run: bitshuffle/LZ4 chunks decoded by jfsim's codec, else through h5py.

Jungfraujoch stores one frame per chunk, bitshuffle + LZ4. Reading such a chunk with
``read_direct_chunk`` and decoding it with :mod:`jfsim.protocol.bslz4` (the filter's own
compiled code, called without h5py's filter pipeline and outside its lock) is faster than
h5py's read and lets several threads decompress at once. Any other storage (no
compression, Zstd, several frames per chunk) goes through h5py.

A frame that cannot be read — a corrupt chunk, a chunk never written, a frame of the wrong
size — raises :class:`FrameError` naming the image; the caller skips and counts it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 - registers the filters for the h5py fallback
import numpy as np
import numpy.typing as npt

from jfsim.analysis.errors import AnalysisInputError, FrameError
from jfsim.analysis.nxmx_run import ImageBlock, NxmxRun
from jfsim.protocol import ProtocolError, bslz4

__all__ = ["FrameReader", "ReadFrame"]

#: HDF5 filter id of bitshuffle and its ``cd_values[4]`` code for LZ4.
BITSHUFFLE_FILTER_ID = 32008
BITSHUFFLE_LZ4 = 2


@dataclass(frozen=True, slots=True)
class ReadFrame:
    """One frame as stored: ``pixels`` ``[height, width]`` of the run's pixel type, and the
    seconds spent reading (I/O) and decoding it."""

    image: int
    pixels: npt.NDArray[np.integer]
    read_s: float
    decode_s: float


class _OpenDataset:
    """A data file's image dataset, opened once, with how its chunks are stored."""

    def __init__(self, block: ImageBlock, shape: tuple[int, int], dtype: np.dtype) -> None:
        try:
            self.file = h5py.File(block.file_path, "r")
        except OSError as error:
            raise AnalysisInputError(
                f"{block.file_path}: cannot open the data file ({error})"
            ) from error
        dataset = self.file.get(block.dataset_path)
        if not isinstance(dataset, h5py.Dataset):
            self.file.close()
            raise AnalysisInputError(f"{block.file_path}: no dataset {block.dataset_path}")
        if dataset.ndim != 3 or tuple(dataset.shape[1:]) != shape or dataset.dtype != dtype:
            problem = (
                f"{block.file_path}:{block.dataset_path}: frames are {dataset.dtype} "
                f"{tuple(dataset.shape[1:])}, the run says {dtype} {shape}"
            )
            self.file.close()
            raise AnalysisInputError(problem)
        self.dataset = dataset
        self.n_frames = int(dataset.shape[0])
        self.direct = _one_frame_bslz4_chunks(dataset)

    def close(self) -> None:
        self.file.close()


def _one_frame_bslz4_chunks(dataset: h5py.Dataset) -> bool:
    """True when every chunk is one whole frame compressed by bitshuffle + LZ4 alone."""
    if dataset.chunks is None or dataset.chunks != (1, *dataset.shape[1:]):
        return False
    plist = dataset.id.get_create_plist()
    if plist.get_nfilters() != 1:
        return False
    filter_id, _flags, values, _name = plist.get_filter(0)
    return filter_id == BITSHUFFLE_FILTER_ID and len(values) > 4 and values[4] == BITSHUFFLE_LZ4


class FrameReader:
    """Frames of one run by image number; safe to share between threads.

    HDF5 calls are serialised (h5py holds one lock), decoding is not: with ``-N`` threads
    the bitshuffle/LZ4 work runs in parallel.
    """

    def __init__(self, run: NxmxRun) -> None:
        self.run = run
        self._open: dict[tuple[Path, str], _OpenDataset] = {}
        self._lock = threading.Lock()
        self.direct_chunk_reads = 0
        self.pipeline_reads = 0

    def _dataset(self, block: ImageBlock) -> _OpenDataset:
        key = (block.file_path, block.dataset_path)
        with self._lock:
            opened = self._open.get(key)
            if opened is None:
                opened = _OpenDataset(block, self.run.image_shape, self.run.image_dtype)
                self._open[key] = opened
            return opened

    def check(self) -> None:
        """Open every data file now: a missing file or frames of the wrong size or type fail
        here, with a one-line :class:`AnalysisInputError`, before any work is done."""
        for block in self.run.blocks:
            self._dataset(block)

    def read(self, image: int) -> ReadFrame:
        """Frame ``image`` (0-based position in the run); :class:`FrameError` if unreadable."""
        block, index = self.run.block_of(image)
        opened = self._dataset(block)
        if index >= opened.n_frames:
            raise FrameError(
                f"image {image}: {block.file_path.name} holds {opened.n_frames} frames, "
                f"frame {index} is missing"
            )
        height, width = self.run.image_shape
        started = time.perf_counter()
        if opened.direct:
            try:
                _mask, payload = opened.dataset.id.read_direct_chunk((index, 0, 0))
            except (OSError, KeyError, ValueError, RuntimeError) as error:
                raise FrameError(
                    f"image {image}: {block.file_path.name} frame {index} cannot be read "
                    f"(never written?): {_first_line(error)}"
                ) from error
            read_s = time.perf_counter() - started
            try:
                flat = bslz4.decompress(payload, self.run.image_dtype, height * width)
            except ProtocolError as error:
                raise FrameError(
                    f"image {image}: corrupt chunk in {block.file_path.name} frame {index}: {error}"
                ) from error
            self.direct_chunk_reads += 1
            pixels = flat.reshape(height, width)
            return ReadFrame(image, pixels, read_s, time.perf_counter() - started - read_s)
        try:
            pixels = opened.dataset[index]
        except (OSError, ValueError, RuntimeError) as error:
            raise FrameError(
                f"image {image}: {block.file_path.name} frame {index} cannot be decoded: "
                f"{_first_line(error)}"
            ) from error
        self.pipeline_reads += 1
        return ReadFrame(image, pixels, time.perf_counter() - started, 0.0)

    def close(self) -> None:
        with self._lock:
            for opened in self._open.values():
                opened.close()
            self._open.clear()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]
