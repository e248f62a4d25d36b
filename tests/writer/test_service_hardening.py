"""Issue 9 on the writer service's sockets, in-process: where they listen, idle HTTP clients,
messages built to cost far more than their size."""

from __future__ import annotations

import json
import socket
import threading
import tracemalloc
import urllib.request
from pathlib import Path

import pytest
import zmq
from writer_helpers import make_series, tiny_experiment, tree

from jfsim.protocol import ProtocolError, decode, encode
from jfsim.protocol.decode import DECODE_BUDGET_FLOOR_BYTES, DECODE_BYTES_PER_MESSAGE_BYTE
from jfsim.stream import DEFAULT_ENDPOINT, StreamConfig
from jfsim.writer import WriterConfig, WriterService
from jfsim.writer.service import StatusServer

#: A start message whose one field is ``count`` empty arrays (one byte each).
EMPTY_ARRAYS_HEAD = b"\xd9\xd9\xf7\xa3\x64type\x65start\x68n_images\x01\x64junk"


def empty_arrays_message(count: int) -> bytes:
    return EMPTY_ARRAYS_HEAD + b"\x9a" + count.to_bytes(4, "big") + b"\x80" * count


def test_every_service_socket_listens_on_loopback_by_default(tmp_path, silent_tcp_endpoint):
    config = WriterConfig(
        endpoint=silent_tcp_endpoint, root_dir=tmp_path, http_port=0, repub_port=0, file_port=0
    )
    with WriterService(config) as service:
        assert service.http is not None and service.republisher and service.notifier
        assert service.http.server.server_address[0] == "127.0.0.1"
        assert service.republisher.endpoint.startswith("tcp://127.0.0.1:")
        assert service.notifier.endpoint.startswith("tcp://127.0.0.1:")
    assert StreamConfig().endpoints == (DEFAULT_ENDPOINT,) == ("tcp://127.0.0.1:5500",)


def test_bind_host_opens_the_sockets_elsewhere_on_request(tmp_path, silent_tcp_endpoint):
    config = WriterConfig(
        endpoint=silent_tcp_endpoint,
        root_dir=tmp_path,
        http_port=0,
        file_port=0,
        bind_host="0.0.0.0",
    )
    with WriterService(config) as service:
        assert service.http is not None and service.notifier is not None
        assert service.http.server.server_address[0] == "0.0.0.0"
        assert service.notifier.endpoint.startswith("tcp://0.0.0.0:")


def test_idle_http_connections_time_out_on_a_bounded_pool():
    """300 idle sockets used to hold 300 threads; now 4 workers serve, the rest are closed,
    and idle connections are dropped after the timeout, so /status answers again."""
    status_calls = []
    server = StatusServer(
        "127.0.0.1",
        0,
        lambda: status_calls.append(1) or {"state": "idle"},
        lambda _wait: {"cancel": "done"},
        idle_timeout_s=0.5,
        workers=4,
    )
    threads_before = threading.active_count()
    idle = []
    try:
        for _ in range(60):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=30))
        threads_seen = []
        for _ in range(20):  # sample while the idle connections are being handled
            threads_seen.append(threading.active_count())
            threading.Event().wait(0.05)
        assert max(threads_seen) <= threads_before + 4
        assert server.refused_connections > 0
        body = None
        for _ in range(200):  # idle workers give up after 0.5 s, refused clients are gone
            try:
                url = f"http://127.0.0.1:{server.port}/status"
                with urllib.request.urlopen(url, timeout=30) as reply:
                    body = json.loads(reply.read())
                break
            except OSError:
                threading.Event().wait(0.1)
        assert body == {"state": "idle"} and status_calls
    finally:
        for connection in idle:
            connection.close()
        server.close()


def test_the_amplification_message_is_refused_within_a_small_multiple_of_its_size():
    """Empty arrays cost one byte on the wire and 56 bytes as Python lists: 8 MiB of them
    took 640 MiB and 10 s to decode. Now the decoder stops at its budget."""
    message = empty_arrays_message(1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match="bytes of lists and maps"):
            decode(message)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    budget = DECODE_BYTES_PER_MESSAGE_BYTE * len(message) + DECODE_BUDGET_FLOOR_BYTES
    assert peak < budget + 2 * len(message) + (1 << 20)


def test_a_legitimate_image_message_is_far_inside_the_budget():
    series = make_series(tiny_experiment(number_of_images=1))
    frame = encode(series.images[0])
    assert decode(frame, max_decoded_bytes=DECODE_BUDGET_FLOOR_BYTES).type == "image"


def test_the_service_counts_the_amplification_message_and_writes_the_next_series(
    tmp_path, silent_tcp_endpoint
):
    series = make_series(tiny_experiment(number_of_images=2), extras=False)
    with WriterService(WriterConfig(endpoint=silent_tcp_endpoint, root_dir=tmp_path)) as service:
        service.handle_frame(empty_arrays_message(1 << 20))
        for frame in series.encoded():
            service.handle_frame(frame)
        assert service.counters.malformed == 1
        assert "bytes of lists and maps" in service.counters.last_error
        assert service.counters.summaries[-1].state == "completed"
    assert "run/tiny_master.h5" in tree(tmp_path)


def test_an_image_larger_than_its_series_allows_is_refused_undecoded(tmp_path, silent_tcp_endpoint):
    series = make_series(tiny_experiment(number_of_images=2), extras=False)
    frames = series.encoded()
    huge = frames[1] + b"\x00" * (17 << 20)  # a frame is 5 kB; 16 MiB of slack allowed
    with WriterService(WriterConfig(endpoint=silent_tcp_endpoint, root_dir=tmp_path)) as service:
        service.handle_frame(frames[0])
        service.handle_frame(huge)
        for frame in frames[1:]:
            service.handle_frame(frame)
        assert service.counters.malformed == 1
        assert "skipped undecoded" in service.counters.last_error
        assert service.counters.summaries[-1].images_written == 2


def test_zeromq_drops_a_message_above_the_maximum_size(tmp_path):
    """ZMQ_MAXMSGSIZE: an oversized message never reaches the writer's memory. libzmq
    closes that connection for good; the writer notices, counts it and connects again, and
    keeps serving the same sender."""
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDTIMEO, 30_000)
    push.setsockopt(zmq.LINGER, 2000)
    push.bind("tcp://127.0.0.1:*")
    endpoint = push.getsockopt_string(zmq.LAST_ENDPOINT)
    config = WriterConfig(endpoint=endpoint, root_dir=tmp_path, max_message_bytes=1 << 20)
    try:
        with WriterService(config) as service:
            assert service.pull.getsockopt(zmq.MAXMSGSIZE) == 1 << 20
            summaries: list = []
            loop = threading.Thread(
                target=lambda: summaries.extend(service.run(max_series=1, timeout_s=60))
            )
            loop.start()
            push.send(b"\x00" * (2 << 20))
            for _ in range(600):  # until the writer saw the drop (messages sent before are lost)
                if service.counters.connection_drops:
                    break
                threading.Event().wait(0.05)
            for frame in make_series(tiny_experiment(number_of_images=1), extras=False).encoded():
                push.send(frame)
            loop.join(timeout=90)
            assert [s.state for s in summaries] == ["completed"]
            assert service.counters.connection_drops == 1
            assert service.counters.malformed == 0  # the big one was never delivered
    finally:
        push.close()
        context.term()
    assert Path(tmp_path / "run/tiny_master.h5").exists()
