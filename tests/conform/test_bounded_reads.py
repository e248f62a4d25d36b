"""Every read is bounded by what the rule needs: files that declare gigabytes (a dataset of
10⁹ elements, one flipped byte in a frame count) are judged in bounded time and memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fixtures.hostile import HOSTILE, declared_bytes, write_hostile
from jfconform.engine import CheckOptions, check_file

#: The bounds the issue sets for ``jfconform check`` on a hostile-size file.
CPU_LIMIT_S = 10
PEAK_MEMORY_LIMIT_MB = 500
WALL_TIMEOUT_S = 300  # only a guard against a hang on a loaded machine, not a measurement
JFCONFORM = Path(sys.executable).with_name("jfconform")


def _run_measured(*args: str | Path) -> tuple[int, float, float, str]:
    """Run the real ``jfconform`` console script with a hard CPU-time limit; return its exit
    status, CPU seconds (user + system), peak resident memory (MB) and stdout. CPU time, not
    wall time: the bound holds on a loaded machine too."""

    def limit_cpu() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S + 5))

    with subprocess.Popen(
        [str(JFCONFORM), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=limit_cpu,
    ) as process:
        guard = threading.Timer(WALL_TIMEOUT_S, process.kill)
        guard.start()
        try:
            output = process.stdout.read()
            _pid, status, usage = os.wait4(process.pid, 0)
        finally:
            guard.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_is_judged_in_bounded_time_and_memory(name: str, tmp_path: Path) -> None:
    master = write_hostile(tmp_path, name)
    largest = max(declared_bytes(path) for path in master.parent.glob("*.h5"))
    assert largest > 2**30, "the fixture must declare more than 1 GiB"
    status, cpu_s, peak_mb, output = _run_measured("check", "--json", master)
    assert status in (0, 1), f"exit {status} (killed at the CPU limit?)"
    assert cpu_s < CPU_LIMIT_S, f"{cpu_s:.1f} s of CPU"
    assert peak_mb < PEAK_MEMORY_LIMIT_MB, f"peak {peak_mb:.0f} MB"
    assert '"findings"' in output


def test_a_dataset_over_the_read_limit_is_listed_with_the_rules_that_skipped_it(
    tmp_path: Path,
) -> None:
    master = write_hostile(tmp_path, "npeaks-declared-1e9")
    findings = check_file(master, CheckOptions()).findings
    by_rule = {f.rule: f for f in findings}
    assert "CXI-003" in by_rule  # the size check itself: 10⁹ rows for 4 frames
    limited = by_rule["H5-014"]
    assert limited.path == "/entry/MX/nPeaks"
    assert "4000000000 bytes" in limited.message and "CXI-005" in limited.message


def test_the_read_limit_is_an_option(clean_runs: dict[str, Path], run_cli) -> None:
    master = clean_runs["integrated"]
    assert "H5-014" not in {f.rule for f in check_file(master).findings}
    tiny = check_file(master, CheckOptions(read_limit_bytes=100)).findings
    assert "/entry/MX/peakXPosRaw" in {f.path for f in tiny if f.rule == "H5-014"}
    refused = run_cli("check", "--max-read-mb", "0", master)
    assert refused.returncode == 2 and "--max-read-mb must be > 0" in refused.stderr
