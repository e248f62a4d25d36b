"""The decoded form of one Stream V2 / Jungfraujoch message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["MESSAGE_TYPES", "Message", "Rational"]

MESSAGE_TYPES = ("start", "image", "end", "calibration", "metadata")


class Rational(NamedTuple):
    """A DECTRIS Rational: ``[numerator, denominator]`` on the wire, e.g. 50 MHz ticks."""

    numerator: int
    denominator: int

    @property
    def seconds(self) -> float:
        """The value as a float (the wire times are seconds)."""
        return self.numerator / self.denominator


@dataclass(frozen=True, slots=True)
class Message:
    """One message: its ``type`` plus every other key by wire name, in wire order.

    Pixel channels are ``dict[str, PixelArray]`` (``fields["data"]["default"]``), DateTime
    values are tz-aware ``datetime`` objects and Rational values are ``Rational``.
    """

    type: str
    fields: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self.fields

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)
