"""ZeroMQ streaming of a series at kilohertz rates: PUSH image sockets, PUB preview/metadata.

``Streamer(StreamConfig(...), source).run() -> StreamSummary`` is the whole of
``jfsim stream``. Frames come from a pool of K pre-compressed images (``sources``) and are
sent zero-copy from reused buffers (``frames``) on an absolute schedule (``pacing``).
"""

from __future__ import annotations

from jfsim.stream.errors import NoWriterError, StreamError, StreamOptionError, WriterStalledError
from jfsim.stream.frames import ImageAssembler, PoolFrame
from jfsim.stream.pacing import Pacer, parse_duration_s, parse_rate_hz
from jfsim.stream.pusher import OnSlow
from jfsim.stream.sources import FrameSource, MessageListSource, recording_source
from jfsim.stream.stats import StreamProgress, StreamSummary
from jfsim.stream.streamer import (
    DEFAULT_ENDPOINT,
    DEFAULT_SNDHWM,
    StreamConfig,
    Streamer,
    image_socket_index,
)

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_SNDHWM",
    "FrameSource",
    "ImageAssembler",
    "MessageListSource",
    "NoWriterError",
    "OnSlow",
    "Pacer",
    "PoolFrame",
    "StreamConfig",
    "StreamError",
    "StreamOptionError",
    "StreamProgress",
    "StreamSummary",
    "Streamer",
    "WriterStalledError",
    "image_socket_index",
    "parse_duration_s",
    "parse_rate_hz",
    "recording_source",
]
