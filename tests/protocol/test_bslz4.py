"""bslz4 / lz4 framing against the real HDF5 filters of hdf5plugin (through h5py)."""

from __future__ import annotations

import io
import struct

import h5py
import hdf5plugin
import numpy as np
import pytest

from jfsim.protocol import ProtocolError, bslz4, hdf5_lz4

DTYPES = ["u1", "<u2", "<u4", "<i2", "<i4"]
SIZES = [1, 7, 8, 13, 1031, 4096 * 3 + 17, 2068 * 11 + 3]


def _filter_chunk(array: np.ndarray, compression: dict) -> bytes:
    """Write ``array`` as one chunk through an HDF5 filter; return the stored chunk bytes."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        dataset = handle.create_dataset("d", data=array, chunks=array.shape, **compression)
        _, chunk = dataset.id.read_direct_chunk((0,) * array.ndim)
    return chunk


def _read_direct(array_like: np.ndarray, chunk: bytes, compression: dict) -> np.ndarray:
    """Store ``chunk`` with write_direct_chunk in a filtered dataset and read it with h5py."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        dataset = handle.create_dataset(
            "d",
            shape=array_like.shape,
            dtype=array_like.dtype,
            chunks=array_like.shape,
            **compression,
        )
        dataset.id.write_direct_chunk((0,) * array_like.ndim, chunk)
        return dataset[...]


@pytest.mark.parametrize("engine", bslz4.ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES)
def test_bslz4_chunk_is_byte_identical_to_hdf5plugin(dtype: str, size: int, engine: str) -> None:
    array = np.random.default_rng(size).poisson(3.0, size).astype(dtype)
    expected = _filter_chunk(array, hdf5plugin.Bitshuffle(cname="lz4"))
    assert bslz4.compress(array, engine=engine) == expected


def test_bslz4_2d_frame_is_byte_identical_and_readable_by_h5py() -> None:
    frame = np.random.default_rng(4).poisson(0.5, (514, 1030)).astype("<i2")
    frame[0, :5] = np.iinfo(np.int16).min
    ours = bslz4.compress(frame)
    assert ours == _filter_chunk(frame, hdf5plugin.Bitshuffle(cname="lz4"))
    back = _read_direct(frame, ours, hdf5plugin.Bitshuffle(cname="lz4"))
    np.testing.assert_array_equal(back, frame)


@pytest.mark.parametrize("engine", bslz4.ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bslz4_decompresses_the_filter_output(dtype: str, engine: str) -> None:
    array = np.random.default_rng(1).integers(0, 100, 5003).astype(dtype)
    chunk = _filter_chunk(array, hdf5plugin.Bitshuffle(cname="lz4"))
    got = bslz4.decompress(chunk, np.dtype(dtype), array.size, engine=engine)
    np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize("block_size_bytes", [256, 1024, 8192, 65536])
@pytest.mark.parametrize("size", [0, 5, 8, 4099, 70001])
def test_bslz4_engines_are_twins_for_any_block_size(block_size_bytes: int, size: int) -> None:
    array = np.random.default_rng(size).poisson(1.0, size).astype("<u4")
    native = bslz4.compress(array, block_size_bytes, engine="native")
    assert native == bslz4.compress(array, block_size_bytes, engine="numba")
    for engine in bslz4.ENGINES:
        got = bslz4.decompress(native, array.dtype, array.size, engine=engine)
        np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize("engine", bslz4.ENGINES)
def test_bslz4_corrupt_block_is_an_error_with_either_engine(engine: str) -> None:
    array = np.random.default_rng(9).poisson(4.0, 20000).astype("<u2")
    payload = bytearray(bslz4.compress(array))
    payload[20:40] = bytes(b ^ 0xFF for b in payload[20:40])
    with pytest.raises(ProtocolError, match="corrupt LZ4"):
        bslz4.decompress(bytes(payload), array.dtype, array.size, engine=engine)


def test_bslz4_unknown_engine_is_named() -> None:
    with pytest.raises(ProtocolError, match="unknown bslz4 engine 'gpu'"):
        bslz4.compress(np.zeros(8, dtype="u1"), engine="gpu")


def test_bslz4_framing_has_raw_tail_of_n_mod_8_elements() -> None:
    array = np.arange(4096 + 8 + 5, dtype="<u2")
    payload = bslz4.compress(array)
    total, block = struct.unpack_from(">QI", payload)
    assert (total, block) == (array.nbytes, 8192)
    assert payload[-10:] == array[-5:].tobytes()


def test_lz4_filter_chunk_decodes_and_our_lz4_is_read_by_h5py() -> None:
    array = np.random.default_rng(2).poisson(2.0, (40, 33)).astype("<u4")
    chunk = _filter_chunk(array, hdf5plugin.LZ4())
    np.testing.assert_array_equal(
        hdf5_lz4.decompress(chunk, array.dtype, array.size).reshape(array.shape), array
    )
    ours = hdf5_lz4.compress(array)
    np.testing.assert_array_equal(_read_direct(array, ours, hdf5plugin.LZ4()), array)


def test_lz4_blocks_stored_raw_are_copied() -> None:
    noise = np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8)
    payload = hdf5_lz4.compress(noise, block_size_bytes=1024)
    lengths = []
    position = 12
    while position < len(payload):
        (length,) = struct.unpack_from(">I", payload, position)
        lengths.append(length)
        position += 4 + length
    assert lengths == [1024, 1024, 952], "incompressible blocks must be stored raw"
    np.testing.assert_array_equal(hdf5_lz4.decompress(payload, noise.dtype, noise.size), noise)


def test_bslz4_rejects_a_header_declaring_terabytes() -> None:
    payload = struct.pack(">QI", 5 << 40, 8192) + b"\x00" * 64
    with pytest.raises(ProtocolError, match="limit"):
        bslz4.decompress(payload, np.dtype("u1"), 5 << 40)
