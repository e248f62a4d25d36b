"""The image assembler: exact ``encode`` bytes without re-encoding pixels, safe buffer reuse."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from jfsim.protocol import Compression, PixelArray, Rational, decode, encode
from jfsim.stream import ImageAssembler, PoolFrame
from jfsim.stream.frames import (
    SPARE_BUFFERS,
    ImageEntries,
    SendBuffers,
    cbor_head,
    encoded_entries,
)


def _pool(n_frames: int = 2, compression: Compression = Compression.BSLZ4) -> list[PoolFrame]:
    rng = np.random.default_rng(2)
    return [
        PoolFrame(
            PixelArray.from_numpy(rng.poisson(1.0, (40, 56)).astype(np.uint16), compression),
            {"spots": [{"x": 1.0, "y": 2.0, "I": 3.0, "indexed": False}], "spot_count": 1},
        )
        for _ in range(n_frames)
    ]


def _fields(image_id: int, **extra) -> dict:
    return {
        "series_id": 3,
        "series_unique_id": "3:t",
        "image_id": image_id,
        "start_time": Rational(image_id * 100, 50_000_000),
        **extra,
    }


# image ids across every CBOR integer width: 1, 2, 3, 5 and 9 bytes
@pytest.mark.parametrize("image_id", [0, 23, 24, 255, 256, 65535, 65536, 2**32, 2**40])
@pytest.mark.parametrize("compression", [Compression.BSLZ4, Compression.NONE])
def test_assembled_bytes_equal_encode(image_id, compression, stream_v2_check):
    assembler = ImageAssembler(_pool(compression=compression))
    fields = _fields(image_id)
    assembled = bytes(assembler.assemble(fields, 1))
    assembler.sent(None)

    expected = assembler.message_for(fields, 1)
    assert assembled == encode(expected)
    assert decode(assembled) == expected
    assert stream_v2_check(assembled)["image_id"] == image_id


def test_integral_float_fields_are_coerced_as_encode_does(stream_v2_check):
    assembler = ImageAssembler(_pool())
    fields = _fields(5, beam_corr_x=2)  # a Float field given as an int
    assembled = bytes(assembler.assemble(fields, 0))
    assert assembled == encode(assembler.message_for(fields, 0))
    assert isinstance(decode(assembled)["beam_corr_x"], float)


def test_a_header_larger_than_the_reserve_gets_a_bigger_buffer():
    assembler = ImageAssembler(_pool())
    fields = _fields(1, user_data={"note": "x" * 5000})
    assembled = bytes(assembler.assemble(fields, 0))
    assembler.sent(None)
    assert assembled == encode(assembler.message_for(fields, 0))


def test_buffers_in_flight_are_not_overwritten():
    """Until ZeroMQ releases a message its buffer stays untouched; later images use others."""
    big = np.arange(300 * 300, dtype=np.uint16).reshape(300, 300)  # > pyzmq's copy threshold
    pool = [PoolFrame(PixelArray.from_numpy(big, Compression.NONE))]
    assembler = ImageAssembler(pool, messages_in_flight=0)
    context = zmq.Context()
    push, pull = context.socket(zmq.PUSH), context.socket(zmq.PULL)
    push.bind("inproc://frames-in-flight")
    pull.connect("inproc://frames-in-flight")  # connected, not reading: messages stay queued
    try:
        sent = []
        for image_id in range(3):
            view = assembler.assemble(_fields(image_id), 0)
            sent.append(bytes(view))
            assembler.sent(push.send(view, copy=False, track=True))
        assert assembler.n_buffers == 3
        for image_id, original in enumerate(sent):
            assert pull.poll(5000)
            received = pull.recv()
            assert received == original
            assert decode(received)["image_id"] == image_id
    finally:
        push.close(linger=0)
        pull.close(linger=0)
        context.term()


def test_released_buffers_are_reused():
    assembler = ImageAssembler(_pool(n_frames=1), messages_in_flight=0)
    for image_id in range(20):
        assembler.assemble(_fields(image_id), 0)
        assembler.sent(None)
    assert assembler.n_buffers == 1


@pytest.mark.parametrize("argument", [0, 23, 24, 255, 256, 65536, 2**32, 2**64 - 1])
def test_cbor_head_is_the_shortest_form(argument):
    import cbor2

    assert cbor_head(5, argument)[0] >> 5 == 5
    assert cbor_head(0, argument) == cbor2.dumps(argument)


def test_image_entries_equal_the_generic_encoding_image_after_image():
    """The per-entry fast path (direct ints and Rationals, cached other values) gives the
    generic encoder's bytes whatever the values do from one image to the next."""
    entries = ImageEntries()
    values = [
        _fields(0),
        _fields(1, beam_center_x=512),  # a Float field sent as an int travels as 512.0
        _fields(2, beam_corr_x=2, beam_center_x=512.5, user_data={"note": [1, 2]}),  # a map
        _fields(-(2**40), series_unique_id="other", series_id=-1),
        _fields(2**40, start_time=Rational(-5, 7), spot_count=True),
        {"image_id": 7, "series_id": 2**64 - 1},
    ]
    for fields in values * 2:
        assert entries(fields) == encoded_entries("image", fields), fields


class _InFlight:
    """A tracker whose message ZeroMQ still holds."""

    done = False


def test_a_kind_that_had_to_grow_takes_spares_made_in_the_background():
    tail = bytes(range(256)) * 40
    buffers = SendBuffers(1, tail=tail)
    first = buffers.acquire(10)
    buffers.release(first, _InFlight())
    grown = buffers.acquire(10)  # none idle: made on the spot, and spares are requested
    buffers.release(grown, _InFlight())
    deadline = time.monotonic() + 30
    while len(buffers._spares) < SPARE_BUFFERS and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(buffers._spares) == SPARE_BUFFERS
    spare = buffers.acquire(10)
    assert spare not in (first, grown)
    assert bytes(spare.fill(b"head")) == b"head" + tail
    assert buffers.n_buffers == 3  # spares count once handed out
