"""Both packages report the one version of the distribution (pyproject.toml), read from its
installed metadata: nothing to bump by hand in the code."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import jfconform
import jfsim

BIN = Path(sys.executable).parent


def test_both_packages_report_the_distributions_version():
    assert jfsim.__version__ == jfconform.__version__ == version("jfsim")


def test_both_commands_print_it():
    for command in ("jfsim", "jfconform"):
        result = subprocess.run(
            [str(BIN / command), "--version"], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"{command} {version('jfsim')}"
