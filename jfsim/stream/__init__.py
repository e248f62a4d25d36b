"""ZeroMQ streaming of a series at kilohertz rates: PUSH image sockets, PUB preview/metadata.

``Streamer(StreamConfig(...), source).run() -> StreamSummary`` is the whole of
``jfsim stream``. Frames come from a source (``sources``): a pool of K pre-compressed images
sent zero-copy from reused buffers (``frames``), or a recording replayed image by image from
its file (``replay``); they go out on an absolute schedule (``pacing``).
"""

from __future__ import annotations

from jfsim.stream.errors import NoWriterError, StreamError, StreamOptionError, WriterStalledError
from jfsim.stream.frames import FramePool, ImageAssembler, PoolFrame
from jfsim.stream.pacing import Pacer, parse_duration_s, parse_rate_hz
from jfsim.stream.pusher import OnSlow
from jfsim.stream.replay import RecordingSource, recording_source
from jfsim.stream.sources import FrameReuse, FrameSource, MessageListSource
from jfsim.stream.stats import StreamProgress, StreamSummary
from jfsim.stream.streamer import (
    DEFAULT_ENDPOINT,
    DEFAULT_MAX_LAG_S,
    DEFAULT_SNDHWM,
    StreamConfig,
    Streamer,
    image_socket_index,
)

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_MAX_LAG_S",
    "DEFAULT_SNDHWM",
    "FramePool",
    "FrameReuse",
    "FrameSource",
    "ImageAssembler",
    "MessageListSource",
    "NoWriterError",
    "OnSlow",
    "Pacer",
    "PoolFrame",
    "RecordingSource",
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
