"""The real DECTRIS Stream V2 messages pass the stream judge, decompressed block by block.

They are an excerpt (images 0 and 1 and the end of each series; the start messages were
never published), so they are judged with ``--excerpt``: the missing start is information.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jfconform.model import Severity
from jfconform.registry import get_rule
from jfconform.stream.inputs import group_files
from jfconform.stream.judge import JudgeOptions
from jfconform.stream.run import RunOptions, judge_files

JFCONFORM = Path(sys.executable).with_name("jfconform")


def _variants(testdata: Path) -> list[Path]:
    variants = sorted((testdata / "dectris-stream2").glob("r500k_*"))
    assert len(variants) == 6
    return variants


def test_every_dectris_series_passes_with_decompression(shared_testdata: Path) -> None:
    for variant in _variants(shared_testdata):
        messages = sorted(variant.glob("*.cbor"))
        options = RunOptions(judge=JudgeOptions(complete_series=False, decompress=True))
        result = judge_files(group_files(messages), options)
        findings = [(rule, issue) for rule, issue in result.issues[0]]
        assert [rule for rule, _issue in findings] == ["STR-021"], variant.name
        assert all((i.severity or get_rule(r).severity) == Severity.INFO for r, i in findings)
        assert result.statistics["messages"] == len(messages)


def test_without_excerpt_the_missing_start_is_an_error(shared_testdata: Path) -> None:
    variant = shared_testdata / "dectris-stream2" / "r500k_bm_bslz4_16bit"
    result = judge_files(group_files(sorted(variant.glob("*.cbor"))), RunOptions())
    assert [rule for rule, issue in result.issues[0] if issue.severity is None] == ["STR-021"]


def test_cli_judges_all_dectris_messages_in_one_run(shared_testdata: Path) -> None:
    files = [str(p) for v in _variants(shared_testdata) for p in sorted(v.glob("*.cbor"))]
    done = subprocess.run(
        [str(JFCONFORM), "stream", "--excerpt", "--decompress", "--json", *files],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["summary"]["errors"] == report["summary"]["warnings"] == 0
    assert report["stream"]["messages"] == len(files) == 16
    assert report["stream"]["by_type"] == {"image": 10, "end": 6}


@pytest.mark.parametrize("flag", ["--sub", "--excerpt"])
def test_a_subscriber_may_miss_the_start(shared_testdata: Path, flag: str) -> None:
    """--sub and --excerpt relax the same rules (a subscriber joins mid-series)."""
    variant = shared_testdata / "dectris-stream2" / "r500k_bm_lz4_8bit"
    files = [str(p) for p in sorted(variant.glob("*.cbor"))]
    done = subprocess.run(
        [str(JFCONFORM), "stream", flag, *files], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
