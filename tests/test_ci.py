"""CI runs exactly the README's two commands: what a newcomer types is what is checked."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_exactly_the_readmes_setup_and_test_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    assert first_block, "the README starts with no bash block"
    commands = first_block.group(1).strip().splitlines()
    assert len(commands) == 2 and commands[0].startswith("python3 -m venv .venv")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-2:] == commands


def test_the_test_command_checks_types_and_layers():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    test_command = re.search(r"```bash\n.*?\n(.*?)\n```", readme, re.DOTALL).group(1)
    assert all(tool in test_command for tool in ("ruff check", "mypy", "lint-imports", "pytest"))
