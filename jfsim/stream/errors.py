"""Errors of the streaming engine; all are ``JfsimError`` so the CLI prints one line."""

from __future__ import annotations

from jfsim.errors import JfsimError

__all__ = ["NoWriterError", "StreamError", "StreamOptionError", "WriterStalledError"]


class StreamError(JfsimError):
    """A stream could not be set up or had to stop."""


class StreamOptionError(StreamError):
    """A streaming option (rate, duration, endpoint, pool size) has a value we cannot use."""


class NoWriterError(StreamError):
    """Nobody took the start message: no writer is connected to an image socket."""


class WriterStalledError(StreamError):
    """With ``on_slow=block``, a writer stopped taking images for longer than the send timeout."""
