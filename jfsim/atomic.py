"""Outputs that appear under their final name only when complete (``*.tmp`` then rename)."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import h5py

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


class CommittedHdf5File(CommitOnSuccess):
    """An HDF5 output that its subclass opens as ``_file`` on the temporary ``_tmp`` beside
    ``path``: ``close()`` renames it to ``path`` once complete, ``abort()`` removes it."""

    path: Path
    _tmp: Path
    _file: h5py.File

    def close(self) -> Path:
        """Finish the file and rename it to its final name; returns that path."""
        self._file.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        self._file.close()
        self._tmp.unlink(missing_ok=True)
