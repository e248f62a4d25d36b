"""Cross-check: nexusformat's nxvalidate reports no errors on the clean runs.

nxvalidate always exits 0, so the test parses its 'Total number of errors' line.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

NXVALIDATE = Path(sys.executable).with_name("nxvalidate")


@pytest.mark.parametrize("layout", ["legacy", "vds", "integrated"])
def test_nxvalidate_finds_no_errors_in_clean_runs(clean_runs: dict[str, Path], layout: str) -> None:
    if not NXVALIDATE.exists():
        pytest.skip("nxvalidate (nexusformat) is not installed")
    result = subprocess.run(
        [str(NXVALIDATE), "-a", "NXmx", str(clean_runs[layout])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    match = re.search(r"Total number of errors:\s*(\d+)", output)
    assert match is not None, output[-2000:]
    assert int(match.group(1)) == 0, output[-4000:]
