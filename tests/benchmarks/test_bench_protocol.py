"""Protocol throughput, as ratios against a baseline measured in the same run.

Run: .venv/bin/python -m pytest -m benchmark --benchmark-enable \
     tests/benchmarks/test_bench_protocol.py
Each test stores ``baseline_min_s`` and ``ratio`` (best times) in the benchmark's extra_info.
"""

from __future__ import annotations

import io
import timeit
from collections.abc import Callable

import h5py
import hdf5plugin
import numpy as np
import pytest

from jfsim.protocol import Compression, Message, PixelArray, bslz4, decode, encode, encode_parts

pytestmark = pytest.mark.benchmark

JF4M_SHAPE = (2164, 2068)


def _min_s(action: Callable[[], object], number: int = 20, repeat: int = 15) -> float:
    """Best-of-``repeat`` time per call: the least disturbed figure on a shared machine."""
    action()
    return min(timeit.repeat(action, number=number, repeat=repeat)) / number


def _record(benchmark, baseline_s: float, baseline: str) -> None:
    """Store and print our best time against the baseline's best time (both in this run)."""
    ours = benchmark.stats.stats.min
    benchmark.extra_info.update(
        {"baseline": baseline, "baseline_min_s": baseline_s, "ratio": ours / baseline_s}
    )
    print(
        f"\n{benchmark.name}: {ours * 1e3:.3f} ms vs {baseline} {baseline_s * 1e3:.3f} ms "
        f"-> ratio {ours / baseline_s:.2f}"
    )


@pytest.fixture(scope="module", params=[0.3, 2.0], ids=["bkg0.3ph", "bkg2ph"])
def jf4m_frame(request: pytest.FixtureRequest) -> np.ndarray:
    """A JUNGFRAU 4M int16 frame: a Poisson background (photons/pixel) plus bright spots."""
    rng = np.random.default_rng(2026)
    frame = rng.poisson(request.param, JF4M_SHAPE).astype(np.int16)
    ys, xs = rng.integers(0, JF4M_SHAPE[0], 500), rng.integers(0, JF4M_SHAPE[1], 500)
    frame[ys, xs] = rng.integers(100, 20000, 500)
    return frame


@pytest.fixture(scope="module")
def compressed_frame(jf4m_frame: np.ndarray) -> PixelArray:
    return PixelArray.from_numpy(jf4m_frame, Compression.BSLZ4)


@pytest.fixture(scope="module")
def image_message(compressed_frame: PixelArray) -> Message:
    return Message(
        "image",
        {
            "series_id": 1,
            "series_unique_id": "1:bench",
            "image_id": 123,
            "data": {"default": compressed_frame},
            "spot_count": 40,
            "indexing_result": True,
        },
    )


def _memcpy_baseline(size: int) -> Callable[[], object]:
    source = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8)
    target = np.empty_like(source)
    return lambda: np.copyto(target, source)


def test_encode_image_around_compressed_jf4m_vs_memcpy(benchmark, image_message, compressed_frame):
    baseline = _min_s(_memcpy_baseline(len(compressed_frame.payload)))
    encoded = benchmark(encode, image_message)
    assert len(encoded) > len(compressed_frame.payload)
    _record(benchmark, baseline, "memcpy of the compressed frame")


def test_encode_parts_image_vs_memcpy(benchmark, image_message, compressed_frame):
    baseline = _min_s(_memcpy_baseline(len(compressed_frame.payload)))
    parts = benchmark(encode_parts, image_message)
    assert sum(len(p) for p in parts) > len(compressed_frame.payload)
    _record(benchmark, baseline, "memcpy of the compressed frame")


def test_decode_image_without_decompression_vs_memcpy(benchmark, image_message, compressed_frame):
    wire = encode(image_message)
    baseline = _min_s(_memcpy_baseline(len(compressed_frame.payload)))
    message = benchmark(decode, wire)
    assert message["data"]["default"].payload == compressed_frame.payload
    _record(benchmark, baseline, "memcpy of the compressed frame")


def _spot(rng: np.random.Generator) -> dict:
    return {
        "x": float(rng.uniform(0, JF4M_SHAPE[1])),
        "y": float(rng.uniform(0, JF4M_SHAPE[0])),
        "I": float(rng.uniform(10, 1e5)),
        "ice_ring": False,
        "indexed": True,
        "h": int(rng.integers(-40, 40)),
        "k": int(rng.integers(-40, 40)),
        "l": int(rng.integers(-40, 40)),
        "dist_ewald": float(rng.uniform(0, 0.01)),
        "lattice": 0,
    }


def _reflection(rng: np.random.Generator) -> dict:
    return {
        "h": int(rng.integers(-40, 40)),
        "k": int(rng.integers(-40, 40)),
        "l": int(rng.integers(-40, 40)),
        "d": float(rng.uniform(1.5, 40)),
        "I": float(rng.uniform(-10, 1e5)),
        "sigma": float(rng.uniform(1, 300)),
        "bkg": float(rng.uniform(0, 3)),
        "x": float(rng.uniform(0, JF4M_SHAPE[1])),
        "y": float(rng.uniform(0, JF4M_SHAPE[0])),
    }


def test_decode_image_with_250_spots_200_reflections_vs_memcpy(
    benchmark, image_message, compressed_frame
):
    """The writer's per-image cost: a JF4M frame plus the analysis maps Jungfraujoch sends."""
    rng = np.random.default_rng(7)
    fields = dict(image_message.fields)
    fields["spots"] = [_spot(rng) for _ in range(250)]
    fields["reflections"] = [_reflection(rng) for _ in range(200)]
    wire = encode(Message("image", fields))
    baseline = _min_s(_memcpy_baseline(len(compressed_frame.payload)))
    message = benchmark(decode, wire)
    assert message["spots"] == fields["spots"]
    assert message["reflections"] == fields["reflections"]
    _record(benchmark, baseline, "memcpy of the compressed frame")


def test_decode_image_with_250_nested_spots_vs_memcpy(benchmark, image_message, compressed_frame):
    """Spots and reflections with a nested value (a list), as metadata ``images`` entries
    carry their spot lists: the plain-array fast path takes them too (a flat-maps-only fast
    path declined them to the general decoder, about 4× slower)."""
    rng = np.random.default_rng(7)
    fields = dict(image_message.fields)
    fields["spots"] = [{**_spot(rng), "hkl_list": [1, 2, 3]} for _ in range(250)]
    fields["reflections"] = [{**_reflection(rng), "tags": [0]} for _ in range(200)]
    wire = encode(Message("image", fields))
    baseline = _min_s(_memcpy_baseline(len(compressed_frame.payload)))
    message = benchmark(decode, wire)
    assert message["spots"] == fields["spots"]
    _record(benchmark, baseline, "memcpy of the compressed frame")


def _filtered_dataset(frame: np.ndarray) -> tuple[h5py.File, h5py.Dataset]:
    handle = h5py.File(io.BytesIO(), "w")
    dataset = handle.create_dataset(
        "data",
        shape=frame.shape,
        dtype=frame.dtype,
        chunks=frame.shape,
        **hdf5plugin.Bitshuffle(cname="lz4"),
    )
    return handle, dataset


@pytest.mark.parametrize("engine", bslz4.ENGINES)
def test_bslz4_compress_jf4m_vs_hdf5plugin(benchmark, jf4m_frame, engine):
    handle, dataset = _filtered_dataset(jf4m_frame)
    with handle:

        def write() -> None:
            dataset[...] = jf4m_frame

        baseline = _min_s(write, number=3)
        payload = benchmark(bslz4.compress, jf4m_frame, engine=engine)
        _, chunk = dataset.id.read_direct_chunk((0, 0))
    assert payload == chunk
    _record(benchmark, baseline, "hdf5plugin Bitshuffle write of one chunk")


@pytest.mark.parametrize("engine", bslz4.ENGINES)
def test_bslz4_decompress_jf4m_vs_hdf5plugin(benchmark, jf4m_frame, compressed_frame, engine):
    handle, dataset = _filtered_dataset(jf4m_frame)
    with handle:
        dataset.id.write_direct_chunk((0, 0), compressed_frame.payload)
        baseline = _min_s(lambda: dataset[...], number=3)
        pixels = benchmark(
            bslz4.decompress,
            compressed_frame.payload,
            jf4m_frame.dtype,
            jf4m_frame.size,
            engine=engine,
        )
    np.testing.assert_array_equal(pixels.reshape(jf4m_frame.shape), jf4m_frame)
    _record(benchmark, baseline, "hdf5plugin Bitshuffle read of one chunk")
