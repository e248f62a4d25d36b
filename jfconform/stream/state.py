"""What the judge remembers between messages, in bounded memory.

One bit per image id (:class:`IdSet`), one :class:`SeriesState` per series across sockets,
one :class:`SocketState` per socket (its open series and message order), and the findings
with a cap per rule (:class:`FindingsLog`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from jfconform.model import Issue
from jfconform.stream.timing import ArrivalTimes

__all__ = [
    "MAX_TRACKED_IDS",
    "QUOTED_IDS",
    "FindingsLog",
    "IdSet",
    "SeriesKey",
    "SeriesState",
    "SocketState",
    "same_series",
]

Problem = tuple[str, Issue]
#: (series_id, series_unique_id) of a message; None where it has no usable value.
SeriesKey = tuple[Any, Any]

#: Image ids above this are not remembered (duplicates among them go unseen): 16 MiB of bits.
MAX_TRACKED_IDS = 1 << 27
#: Missing image ids quoted in a finding.
QUOTED_IDS = 8


class IdSet:
    """Image ids seen: one bit each, grown on demand up to ``MAX_TRACKED_IDS``."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self.count = 0

    def add(self, image_id: int) -> bool:
        """Record ``image_id``; False when it was there already."""
        if image_id >= MAX_TRACKED_IDS:
            self.count += 1
            return True
        byte, bit = divmod(image_id, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        if self._bits[byte] >> bit & 1:
            return False
        self._bits[byte] |= 1 << bit
        self.count += 1
        return True

    def missing_below(self, limit: int) -> tuple[int, list[int]]:
        """How many ids in ``0 … limit − 1`` never arrived, and the first few of them."""
        limit = min(limit, MAX_TRACKED_IDS)
        missing: list[int] = []
        n_missing = 0
        for byte in range(-(-limit // 8)):
            value = self._bits[byte] if byte < len(self._bits) else 0
            if value == 0xFF:
                continue
            for bit in range(8):
                image_id = byte * 8 + bit
                if image_id < limit and not value >> bit & 1:
                    n_missing += 1
                    if len(missing) < QUOTED_IDS:
                        missing.append(image_id)
        return n_missing, missing


@dataclass(slots=True)
class SeriesState:
    """One series as seen across all sockets."""

    key: SeriesKey
    started: bool = False
    number_of_images: int | None = None
    image_size: tuple[int, int] | None = None  # (height, width) = (image_size_y, image_size_x)
    image_dtype: str | None = None
    channels: tuple[str, ...] | None = None
    ids: IdSet = field(default_factory=IdSet)
    images_collected: int | None = None
    end_where: tuple[int, str] | None = None  # (socket, label) of the first end message

    @property
    def label(self) -> str:
        series_id, unique_id = self.key
        return f"series {series_id} ({unique_id!r})"


@dataclass(slots=True)
class SocketState:
    """The order of messages on one socket."""

    messages: int = 0
    open: SeriesKey | None = None
    #: The last image's id and series (ids increase within a series).
    last_image_id: int | None = None
    last_image_series: SeriesKey | None = None
    closed: set[SeriesKey] = field(default_factory=set)
    #: Series with images or an end on this socket but no start yet: first label, count.
    before_start: dict[SeriesKey, tuple[str, int]] = field(default_factory=dict)
    bytes: int = 0
    types: Counter[str] = field(default_factory=Counter)
    times: ArrivalTimes = field(default_factory=ArrivalTimes)


class FindingsLog:
    """Issues per socket, at most ``limit`` per rule; the others only counted."""

    def __init__(self, n_sockets: int, limit: int) -> None:
        self.kept: list[list[Problem]] = [[] for _ in range(n_sockets)]
        self._counts: list[Counter[str]] = [Counter() for _ in range(n_sockets)]
        self._limit = limit

    def add(self, socket: int, rule_id: str, issue: Issue) -> None:
        counts = self._counts[socket]
        counts[rule_id] += 1
        if counts[rule_id] <= self._limit:
            self.kept[socket].append((rule_id, issue))

    def close(self) -> list[list[Problem]]:
        for socket, counts in enumerate(self._counts):
            for rule_id, count in sorted(counts.items()):
                if count > self._limit:
                    self.kept[socket].append(
                        (
                            rule_id,
                            Issue(
                                "(more)",
                                f"{count - self._limit} more findings of this rule not listed "
                                f"({count} in all)",
                            ),
                        )
                    )
        return self.kept


def same_series(key: SeriesKey, open_key: SeriesKey) -> bool:
    """True when every id the message carries equals the open series' (a missing id is
    STR-008's business, not a change of series)."""
    return all(mine is None or mine == theirs for mine, theirs in zip(key, open_key, strict=True))
