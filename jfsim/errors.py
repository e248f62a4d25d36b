"""The error hierarchy: every failure a user can cause is a ``JfsimError`` subclass.

The CLI turns these into one-line messages and a non-zero exit status; anything else that
escapes is a bug and keeps its traceback.
"""


class JfsimError(Exception):
    """Base class of every expected, user-facing jfsim failure."""


class ConfigError(JfsimError):
    """An experiment description (TOML, JSON, preset, command line) is invalid."""


class EngineUnavailable(JfsimError):
    """An explicitly requested compute engine (e.g. ``--device gpu``) cannot run here."""
