"""Errors of the NXmx writer: every refusal a sender or operator can cause."""

from __future__ import annotations

from jfsim.errors import JfsimError


class WriterError(JfsimError):
    """Base class of the writer's user-facing failures."""


class UnsafePrefixError(WriterError):
    """A ``file_prefix`` would write outside the writer's root directory."""


class FileExistsRefusedError(WriterError):
    """A final file name already exists and overwriting was not allowed."""


class SeriesRefusedError(WriterError):
    """A start message cannot be turned into a file set (missing or invalid fields)."""
