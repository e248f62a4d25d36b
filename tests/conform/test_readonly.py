"""Checking is read-only: modification times and contents stay as they were."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fixtures.clean import RunSpec, write_run
from jfconform.engine import CheckOptions, check_file


def _state(folder: Path) -> dict[str, tuple[int, str]]:
    return {
        p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.iterdir())
    }


def test_check_leaves_files_untouched(tmp_path: Path) -> None:
    for layout in ("legacy", "vds"):
        master = write_run(tmp_path / layout, RunSpec(layout=layout))
        before = _state(master.parent)
        report = check_file(master, CheckOptions(sample=4))
        assert report.opened
        assert _state(master.parent) == before
