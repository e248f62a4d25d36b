"""Which images of a series arrived, without an array sized by the announced image count.

A start message may announce up to ``MAX_IMAGES`` images; a flag per announced image made up
front would cost memory before a single image arrived. The flags grow with the highest image
id seen instead, and the missing ones come back as ranges for the summary.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ReceivedImages", "format_ranges"]

#: Growth step of the flags (images): small series never allocate more than this.
INITIAL_CAPACITY = 1024


class ReceivedImages:
    """Flags of received image ids (0-based), grown by doubling as higher ids arrive."""

    def __init__(self) -> None:
        self._flags = np.zeros(INITIAL_CAPACITY, dtype=bool)
        self.count = 0
        self.highest = -1

    def __contains__(self, image_id: int) -> bool:
        return image_id < self._flags.size and bool(self._flags[image_id])

    def add(self, image_id: int) -> None:
        """Mark ``image_id`` (>= 0) as received; ids already marked are not counted twice."""
        if image_id >= self._flags.size:
            grown = np.zeros(max(2 * self._flags.size, image_id + 1), dtype=bool)
            grown[: self._flags.size] = self._flags
            self._flags = grown
        if not self._flags[image_id]:
            self._flags[image_id] = True
            self.count += 1
            self.highest = max(self.highest, image_id)

    def discard(self, image_id: int) -> None:
        if image_id in self:
            self._flags[image_id] = False
            self.count -= 1
            if image_id == self.highest:
                ids = np.flatnonzero(self._flags[:image_id])
                self.highest = int(ids[-1]) if ids.size else -1

    def as_array(self, n_images: int) -> np.ndarray:
        """``[n_images]`` bool: which of the first ``n_images`` ids arrived."""
        flags = np.zeros(n_images, dtype=bool)
        kept = min(n_images, self._flags.size)
        flags[:kept] = self._flags[:kept]
        return flags

    def missing(self, n_images: int, expected: np.ndarray | None = None) -> np.ndarray:
        """``[n_images]`` bool: ids that never arrived (of those ``expected`` says to expect)."""
        missing = ~self.as_array(n_images)
        return missing if expected is None else missing & expected

    def missing_ranges(
        self, n_images: int, expected: np.ndarray | None = None
    ) -> list[tuple[int, int]]:
        """Inclusive ``(first, last)`` ranges of the ids ``missing`` returns."""
        flags = ~self.missing(n_images, expected)
        edges = np.flatnonzero(np.diff(np.concatenate(([True], flags, [True])).astype(np.int8)))
        # edges alternate: start of a gap (True -> False), end of the gap (False -> True)
        gaps = zip(edges[::2], edges[1::2], strict=True)
        return [(int(first), int(end) - 1) for first, end in gaps]


def format_ranges(ranges: list[tuple[int, int]], limit: int = 8) -> str:
    """``3, 10-19, 40-1999`` (the first ``limit`` ranges, then how many more)."""
    shown = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        shown.append(f"… {len(ranges) - limit} more ranges")
    return ", ".join(shown)
