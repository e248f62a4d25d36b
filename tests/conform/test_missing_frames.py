"""Missed images are not storage faults: unallocated chunks read as the fill value.

A writer that misses images leaves their chunks unallocated (jfjoch_writer documents
missing images as fill-value frames). jfconform must report them as information only,
never read them as corrupt chunks, and still catch a written chunk that is corrupt.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from fixtures.broken import write_broken
from fixtures.clean import RunSpec, write_run
from jfconform.context import FileContext
from jfconform.engine import _run_rule, check_file
from jfconform.model import Issue, Severity
from jfconform.registry import Rule
from jfconform.storage import written_frames

LAST_FILE_EMPTY = (4, 5)  # 6 images, 2 per file: the third data file has no chunk at all
A_FEW_MISSING = (1, 4)


def _serious(path: Path) -> set[str]:
    return {f.rule for f in check_file(path).findings if f.severity >= Severity.WARNING}


def _never_written(path: Path) -> list[str]:
    return [f.message for f in check_file(path).findings if f.rule == "H5-012"]


@pytest.mark.parametrize("layout", ["legacy", "vds", "integrated"])
@pytest.mark.parametrize("missing", [LAST_FILE_EMPTY, A_FEW_MISSING], ids=["last-empty", "few"])
def test_run_with_missed_images_has_no_errors_and_no_warnings(
    tmp_path: Path, layout: str, missing: tuple[int, ...]
) -> None:
    master = write_run(tmp_path, RunSpec(layout=layout, n_images=6, missing_frames=missing))
    assert _serious(master) == set()
    reported = _never_written(master)
    assert reported, "the missed images must be reported as H5-012 information"
    assert sum(int(message.split()[0]) for message in reported) == len(missing)
    for data_file in sorted(tmp_path.glob("clean_data_*.h5")):
        assert _serious(data_file) == set(), data_file.name


def test_data_file_without_any_chunk_is_clean_and_reported(tmp_path: Path) -> None:
    write_run(tmp_path, RunSpec(layout="vds", n_images=6, missing_frames=LAST_FILE_EMPTY))
    empty = tmp_path / "clean_data_000003.h5"
    with h5py.File(empty, "r") as h5:
        assert h5["/entry/data/data"].id.get_num_chunks() == 0
    report = check_file(empty)
    assert report.role == "data"
    assert not any("could not evaluate" in f.message for f in report.findings)
    assert _serious(empty) == set()
    assert _never_written(empty) == [
        "2 of 2 frames were never written (fill value): frames 0, 1 of this file"
    ]


def test_written_frames_follows_chunk_allocation(tmp_path: Path) -> None:
    master = write_run(tmp_path, RunSpec(n_images=6, missing_frames=A_FEW_MISSING))
    with h5py.File(master, "r") as h5:
        written = written_frames(h5["/entry/data/data"])
        assert written is not None
        assert [int(i) for i in written.first_missing(10)] == list(A_FEW_MISSING)
        assert written.count() == 6 - len(A_FEW_MISSING)
        assert written_frames(h5["/entry/instrument/detector/pixel_mask"]) is None


def test_a_corrupt_written_chunk_is_still_h5_004(tmp_path: Path) -> None:
    broken = write_broken(tmp_path, "H5-004")
    findings = check_file(broken).findings
    assert {f.rule for f in findings if f.severity >= Severity.WARNING} == {"H5-004"}
    assert "H5-012" not in {f.rule for f in findings}


def test_a_rule_that_cannot_evaluate_warns_and_keeps_its_findings(tmp_path: Path) -> None:
    def fails_midway(_ctx: object) -> object:
        yield Issue("/entry", "found before the failure")
        raise MemoryError

    failing = Rule("H5-999", "fails-midway", Severity.ERROR, "test", "test", "test", fails_midway)
    master = write_run(tmp_path, RunSpec())
    with h5py.File(master, "r") as h5:
        context = FileContext(master, h5)
        try:
            issues = _run_rule(failing, context)
        finally:
            context.close()
    assert len(issues) == 2
    assert issues[0].message == "found before the failure"
    assert issues[1].severity == Severity.WARNING
    assert "could not evaluate H5-999: MemoryError" in issues[1].message
