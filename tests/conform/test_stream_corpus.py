"""The stream corpus: each one-defect case raises its own STR rule and no other error."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.stream_broken import STREAM_BROKEN, StreamCase, clean_case, write_stream_case
from fixtures.stream_clean import StreamSpec, clean_maps, clean_messages, split_by_file
from jfconform.model import Severity
from jfconform.registry import all_rules, get_rule
from jfconform.stream.inputs import group_files
from jfconform.stream.judge import JudgeOptions, StreamJudge
from jfconform.stream.run import RunOptions, judge_files


def judge_case(case: StreamCase, **options) -> list[tuple[str, Severity]]:
    """(rule, effective severity) of every finding of a case."""
    judge = StreamJudge(len(case.sockets), JudgeOptions(**{**case.options, **options}))
    for socket, messages in enumerate(case.sockets):
        for data, arrival_s in messages:
            judge.feed(socket, data, arrival_s)
    return [
        (rule_id, issue.severity or get_rule(rule_id).severity)
        for issues in judge.finish().issues
        for rule_id, issue in issues
    ]


@pytest.mark.parametrize("rule_id", sorted(STREAM_BROKEN))
def test_broken_case_raises_its_rule_and_no_other_error(rule_id: str) -> None:
    findings = judge_case(STREAM_BROKEN[rule_id]())
    assert rule_id in {rule for rule, _severity in findings}
    assert {rule for rule, severity in findings if severity == Severity.ERROR} <= {rule_id}


def test_every_stream_rule_has_a_case() -> None:
    stream_rules = {r.id for r in all_rules() if r.family == "STR"}
    assert stream_rules == set(STREAM_BROKEN)


@pytest.mark.parametrize("decompress", [False, True], ids=["framing", "decompress"])
@pytest.mark.parametrize("compression", ["bslz4", "lz4", "none"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "int16", "int32"])
def test_clean_series_has_no_finding(compression: str, dtype: str, decompress: bool) -> None:
    spec = StreamSpec(compression=compression, dtype=dtype, height=67, width=131)
    case = StreamCase((tuple((m, None) for m in clean_messages(spec)),))
    assert judge_case(case, decompress=decompress) == []


def test_clean_case_is_clean() -> None:
    assert judge_case(clean_case()) == []


def test_multi_socket_series_split_by_data_file_is_clean() -> None:
    spec = StreamSpec(n_images=9, images_per_file=2)
    sockets = split_by_file(clean_maps(spec), 3, spec.images_per_file)
    case = StreamCase(tuple(tuple((m, None) for m in messages) for messages in sockets))
    assert judge_case(case) == []


def test_image_missing_from_one_socket_is_a_hole() -> None:
    spec = StreamSpec(n_images=8, images_per_file=2)
    maps = clean_maps(spec)
    maps[-1]["images_collected"] = 7
    del maps[1 + 5]  # image 5, on socket (5 // 2) % 2 = 0
    sockets = split_by_file(maps, 2, spec.images_per_file)
    case = StreamCase(tuple(tuple((m, None) for m in messages) for messages in sockets))
    assert judge_case(case) == [("STR-025", Severity.WARNING)]


def test_file_cases_give_the_same_findings_as_in_memory(tmp_path: Path) -> None:
    for rule_id in ("STR-007", "STR-020", "STR-024"):
        case = STREAM_BROKEN[rule_id]()
        paths = write_stream_case(tmp_path, rule_id, case)
        result = judge_files(group_files(paths), RunOptions())
        assert {rule for issues in result.issues for rule, _issue in issues} == {rule_id}
