"""Outputs that appear under their final name only when complete (``*.tmp`` then rename)."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

_Output = TypeVar("_Output", bound="CommitOnSuccess")


class CommitOnSuccess:
    """Context-manager protocol of a writer with ``close()`` (rename the finished ``.tmp``
    to its final name) and ``abort()`` (drop it): a ``with`` block commits only when it ends
    without an exception, so nothing half-written is ever left under a final name."""

    def close(self) -> object:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Output) -> _Output:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
