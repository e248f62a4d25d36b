"""A conformance read never crashes: damaged files become findings, not tracebacks."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from fixtures.clean import RunSpec, write_run
from jfconform.engine import check_file
from jfconform.model import Severity


@pytest.mark.parametrize("layout", ["legacy", "vds"])
def test_truncated_data_file_is_h5_001(tmp_path: Path, layout: str) -> None:
    master = write_run(tmp_path, RunSpec(layout=layout))
    data_file = tmp_path / "clean_data_000002.h5"
    with data_file.open("r+b") as handle:
        handle.truncate(data_file.stat().st_size // 3)
    report = check_file(master)
    errors = {f.rule for f in report.findings if f.severity == Severity.ERROR}
    assert report.opened
    assert "H5-001" in errors
    assert errors <= {"H5-001", "H5-006"}  # VDS: the mapping's source cannot be opened


def test_random_damage_never_raises(tmp_path: Path) -> None:
    master = write_run(tmp_path / "source", RunSpec(layout="vds"))
    rng = np.random.default_rng(20261122)
    size = master.stat().st_size
    for trial in range(8):
        copy = tmp_path / f"trial{trial}"
        shutil.copytree(master.parent, copy)
        target = copy / master.name
        data = bytearray(target.read_bytes())
        offset = int(rng.integers(0, size - 64))
        data[offset : offset + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        target.write_bytes(bytes(data))
        report = check_file(target)  # must not raise
        assert report.opened or any(f.rule == "H5-001" for f in report.findings)


def _relink(master: Path, link: str, file_name: str) -> None:
    with h5py.File(master, "r+") as h5:
        del h5[f"/entry/data/{link}"]
        h5[f"/entry/data/{link}"] = h5py.ExternalLink(file_name, "/entry/data/data")


@pytest.mark.parametrize("case", ["swapped", "twice", "another run's file"])
def test_legacy_links_to_the_wrong_data_file_are_errors(tmp_path: Path, case: str) -> None:
    """Outside review: links that read the frames out of order, twice, or from a file of the
    same name in another folder passed with exit 0 (only the ground truth saw it)."""
    master = write_run(tmp_path / "run", RunSpec(layout="legacy"))
    if case == "swapped":
        _relink(master, "data_000001", "clean_data_000002.h5")
        _relink(master, "data_000002", "clean_data_000001.h5")
    elif case == "twice":
        _relink(master, "data_000002", "clean_data_000001.h5")
    else:
        other = write_run(tmp_path / "other", RunSpec(layout="legacy"))
        _relink(master, "data_000002", f"../other/{other.name.replace('master', 'data_000002')}")
    errors = [f for f in check_file(master).findings if f.severity == Severity.ERROR]
    assert {f.rule for f in errors} == {"JF-001"}, errors
    expected = "not a data file beside the master" if case == "another run's file" else "wrong"
    assert all(expected in f.message for f in errors), errors
