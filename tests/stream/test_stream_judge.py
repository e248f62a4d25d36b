"""The preview and metadata PUB sockets of ``jfsim stream`` pass the stream judge.

The subscribers wait for their ZMTP handshake before the series starts (a PUB drops what it
sends before a subscription), so the judge sees every message and may not excuse anything.
"""

from __future__ import annotations

import zmq

from jfconform.stream.judge import JudgeOptions, StreamJudge


def test_preview_and_metadata_sockets_pass_the_judge(start_stream, synthetic_source, connect):
    background, (endpoint,) = start_stream(
        synthetic_source(20),
        preview_endpoint="tcp://127.0.0.1:*",
        preview_period_s=0.0,
        metadata_endpoint="tcp://127.0.0.1:*",
        metadata_period_s=0.0,
        rate_hz=2000.0,
    )
    streamer = background.streamer
    subscribers = [
        connect(streamer.preview_endpoint, zmq.SUB),
        connect(streamer.metadata_endpoint, zmq.SUB),
    ]
    for subscriber in subscribers:
        subscriber.wait_subscribed()
    writer = connect(endpoint)
    assert writer.receive_series()[-1]["type"] == "end"
    background.result()
    by_type = []
    for subscriber in subscribers:
        judge = StreamJudge(1, JudgeOptions())  # complete series: the start was not missed
        while True:
            data = subscriber.receive()
            judge.feed(0, data)
            if b"\x64type\x63end" in data[:16]:
                break
        result = judge.finish()
        assert result.issues == [[]]
        by_type.append(result.statistics["by_type"])
    assert by_type[0] == {"start": 1, "image": 20, "end": 1}
    assert by_type[1]["start"] == by_type[1]["end"] == 1 and by_type[1]["metadata"] >= 1
