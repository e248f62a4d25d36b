"""Failures of the analysis a user can cause, each a ``JfsimError`` (one line, exit 2)."""

from __future__ import annotations

from jfsim.errors import JfsimError

__all__ = ["AnalysisInputError", "FrameError", "SettingsError"]


class SettingsError(JfsimError):
    """A settings document or option is invalid: names the key and the allowed values."""


class AnalysisInputError(JfsimError):
    """The input run cannot be analysed: not NXmx, missing data files, unusable geometry."""


class FrameError(JfsimError):
    """One frame cannot be read (corrupt chunk, wrong size): skipped and counted, not fatal."""
