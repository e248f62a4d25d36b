"""``jfconform stream`` as a real subprocess: reports, exit codes, selection, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fixtures.stream_broken import STREAM_BROKEN, clean_case, write_stream_case

JFCONFORM = Path(sys.executable).with_name("jfconform")
TIMEOUT_S = 300


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(JFCONFORM), "stream", *arguments], capture_output=True, text=True, timeout=TIMEOUT_S
    )


@pytest.fixture
def clean(tmp_path: Path) -> str:
    (path,) = write_stream_case(tmp_path / "clean", "clean", clean_case())
    return str(path)


def _broken(tmp_path: Path, rule_id: str) -> str:
    (path,) = write_stream_case(tmp_path / rule_id, rule_id, STREAM_BROKEN[rule_id]())
    return str(path)


def test_clean_recording_passes_with_a_summary(clean: str) -> None:
    done = run(clean)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Stream statistics" in done.stdout
    assert "result: PASS" in done.stdout


def test_json_report_has_inputs_findings_and_statistics(tmp_path: Path) -> None:
    done = run(_broken(tmp_path, "STR-007"), "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["files"][0]["role"] == "recording"
    assert report["files"][0]["errors"] == 1
    (finding,) = report["findings"]
    assert finding["rule"] == "STR-007"
    assert finding["path"] == "#0 start beam_center_x"
    assert report["stream"]["by_type"] == {"start": 1, "image": 6, "end": 1}
    assert report["exit_code"] == 1


def test_select_ignore_and_fail_on(tmp_path: Path) -> None:
    broken = _broken(tmp_path, "STR-007")
    assert run(broken, "--ignore", "STR-007").returncode == 0
    assert run(broken, "--select", "STR-02").returncode == 0
    assert run(broken, "--select", "STR-00").returncode == 1
    warned = _broken(tmp_path, "STR-016")
    assert run(warned).returncode == 0
    assert run(warned, "--fail-on", "warning").returncode == 1


def test_junit_report_has_one_stream_testcase(tmp_path: Path) -> None:
    out = tmp_path / "report.xml"
    done = run(_broken(tmp_path, "STR-020"), "--format", "junit", "-o", str(out))
    assert done.returncode == 1
    suites = ET.parse(out).getroot().findall("testsuite")
    cases = suites[0].findall("testcase")
    assert [case.get("name") for case in cases] == ["STR"]
    assert cases[0].find("failure").get("type") == "STR-020"


def test_max_messages_stops_early_without_blaming_the_sender(clean: str) -> None:
    done = run(clean, "--max-messages", "3", "--json")
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["stream"]["stopped_by"] == "--max-messages"
    assert report["stream"]["messages"] == 3
    assert {f["rule"]: f["severity"] for f in report["findings"]} == {"STR-024": "info"}


def test_an_endpoint_that_never_sends_is_str_026(silent_tcp_endpoint: str) -> None:
    done = run(silent_tcp_endpoint, "--timeout", "1s", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert [f["rule"] for f in report["findings"]] == ["STR-026"]
    assert report["files"][0]["role"] == "stream"
    assert report["stream"]["stopped_by"] == "timeout"


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["missing.cbors"], "no such file"),
        (["tcp://127.0.0.1:5999", "x.cbors"], "not both"),
        (["--select", "NXMX", "x.cbors"], "stream rule"),
        (["--timeout", "soon", "tcp://127.0.0.1:5999"], "--timeout"),
        (["--max-messages", "0", "tcp://127.0.0.1:5999"], "--max-messages"),
        (["tcp://no-such-host-name.invalid:notaport"], "cannot connect"),
        (["--min-rate", "1kHz", "x.cbors"], "give endpoints"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(arguments: list[str], says: str) -> None:
    done = run(*arguments)
    assert done.returncode == 2
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_help_teaches_with_examples() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert (
        "examples:" in done.stdout and "--excerpt" in done.stdout and "exit status" in done.stdout
    )
