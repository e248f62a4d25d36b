"""Many image chunks written by one compiled call that holds no GIL.

The chunk thread (``jfsim.writer.chunks``) used to call ``H5Dwrite_chunk`` through ctypes
once per image. ctypes gives up the GIL for the call and must take it back on return, and
the writer's main thread is meanwhile running Python (checking and filing the next images,
~50 µs each, 16 of them in a row between two waits): the chunk thread then waited for the
GIL until the main thread blocked again. In a timeline of 300 JF4M images, one chunk in 16
took 0.8-1.0 ms instead of 0.2 ms that way (12-17 ms per series), and the thread's own
Python between two calls took another ~20 µs per chunk.

Here every chunk that is queued is written by one call of a numba function compiled
``nogil``, which calls ``H5Dwrite_chunk`` through its address: one GIL hand-over per batch
instead of one per image. The address is an argument, not a constant, so the compiled code
is cached on disk and serves every later process; ``probe`` compiles (or loads) it once
and says why it cannot be used.
"""

from __future__ import annotations

import ctypes
from functools import cache
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from jfsim.writer import hdf5_library

__all__ = ["ChunkBatch", "probe", "write_chunk_address"]


@intrinsic
def _call_write_chunk(
    typing_context: Any,
    function_address: Any,
    dataset_id: Any,
    offset_address: Any,
    length: Any,
    data_address: Any,
) -> tuple[Any, Any]:
    """``H5Dwrite_chunk(dataset_id, H5P_DEFAULT, 0, offset, length, data)`` at the address
    of the function: ``herr_t (hid_t, hid_t, uint32_t, const hsize_t *, size_t, const
    void *)``, hid_t being 64 bits since HDF5 1.10."""
    signature = types.int32(types.intp, types.int64, types.intp, types.intp, types.intp)

    def codegen(context: Any, builder: Any, _signature: Any, arguments: Any) -> Any:
        address, dataset, offset, size, data = arguments
        int64, int32, byte = ir.IntType(64), ir.IntType(32), ir.IntType(8)
        function_type = ir.FunctionType(
            int32, [int64, int64, int32, int64.as_pointer(), int64, byte.as_pointer()]
        )
        function = builder.inttoptr(address, function_type.as_pointer())
        return builder.call(
            function,
            [
                dataset,
                ir.Constant(int64, hdf5_library.H5P_DEFAULT),
                ir.Constant(int32, 0),  # no filter skipped: the chunk is compressed as declared
                builder.inttoptr(offset, int64.as_pointer()),
                size,
                builder.inttoptr(data, byte.as_pointer()),
            ],
        )

    return signature, codegen


@numba.njit(nogil=True, cache=True)
def _write_chunks(
    function_address: int,
    dataset_ids: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    data_addresses: np.ndarray,
    statuses: np.ndarray,
    count: int,
) -> None:
    first_offset = offsets.ctypes.data
    row_bytes = offsets.strides[0]
    for i in range(count):
        statuses[i] = _call_write_chunk(
            function_address,
            dataset_ids[i],
            first_offset + i * row_bytes,
            lengths[i],
            data_addresses[i],
        )


class ChunkBatch:
    """Room for up to ``capacity`` chunks, written by one compiled call.

    The caller holds the lock of the HDF5 instance whose ``H5Dwrite_chunk`` it passes
    around ``write`` and keeps every chunk's bytes alive until it returns.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.dataset_ids = np.zeros(capacity, dtype=np.int64)
        self.offsets = np.zeros((capacity, 3), dtype=np.uint64)  # hsize_t[3] per chunk
        self.lengths = np.zeros(capacity, dtype=np.intp)
        self.data_addresses = np.zeros(capacity, dtype=np.intp)
        self.statuses = np.zeros(capacity, dtype=np.int32)

    def put(self, index: int, dataset_id: int, row: int, data: np.ndarray) -> None:
        """Describe chunk ``index`` of the batch: ``data`` (bytes, uint8) as image ``row``
        of ``dataset_id``."""
        self.dataset_ids[index] = dataset_id
        self.offsets[index, 0] = row
        self.lengths[index] = data.nbytes
        self.data_addresses[index] = data.ctypes.data

    def write(self, count: int, function_address: int) -> np.ndarray:
        """Write the first ``count`` chunks with the ``H5Dwrite_chunk`` at
        ``function_address`` (``write_chunk_address``); returns their HDF5 status (< 0:
        failed)."""
        _write_chunks(
            function_address,
            self.dataset_ids,
            self.offsets,
            self.lengths,
            self.data_addresses,
            self.statuses,
            count,
        )
        return self.statuses[:count]


def write_chunk_address(library: hdf5_library.Hdf5Library) -> int:
    """Where ``library``'s ``H5Dwrite_chunk`` is."""
    address = library.address("H5Dwrite_chunk")
    if not address:
        raise RuntimeError("H5Dwrite_chunk has no address")
    return address


@cache
def probe() -> str | None:
    """None when batches can be written here (the function is compiled, or loaded from the
    cache, on the first call), else why not."""
    reason = hdf5_library.probe()
    if reason is not None:
        return reason
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        return "the compiled chunk loop needs a 64-bit platform"
    try:
        ChunkBatch(1).write(0, write_chunk_address(hdf5_library.library()))
    except Exception as error:  # numba reports a failed compilation in many types
        return f"the compiled chunk loop cannot be built: {type(error).__name__}: {error}"
    return None
