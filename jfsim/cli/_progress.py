"""Progress on stderr for long commands: a counter on a terminal, one line per tenth else."""

from __future__ import annotations

import sys
from collections.abc import Callable


def progress_printer(label: str, unit: str = "images") -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback printing ``label: done/total unit``."""
    interactive = sys.stderr.isatty()
    last_decile = [-1]

    def show(done: int, total: int) -> None:
        if interactive:
            end = "\n" if done == total else ""
            print(f"\r{label}: {done}/{total} {unit}", end=end, file=sys.stderr, flush=True)
            return
        decile = done * 10 // total
        if decile != last_decile[0]:
            last_decile[0] = decile
            print(f"{label}: {done}/{total} {unit}", file=sys.stderr, flush=True)

    return show
