"""The one error type of the protocol package."""

from __future__ import annotations

from jfsim.errors import JfsimError

__all__ = ["ProtocolError"]


class ProtocolError(JfsimError):
    """A message cannot be encoded or decoded; the text names the message type and field.

    Example: ``image message: field 'image_id': expected unsigned integer, got str``.
    """
