"""The README's ``jfsim serve`` example, run as printed: its commands and its script.

Only the ports change (free ones instead of 5232/5500/5601, so that parallel runs never
clash): the script reads the broker's address from ``JFJOCH_BROKER`` as printed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from serve_helpers import JFSIM, ServeProcess, WriterProcess, free_ports

README = Path(__file__).resolve().parents[2] / "README.md"


def _block_after(marker: str, language: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker}[^>]*-->\n```{language}\n(.*?)```", text, re.DOTALL)
    assert match, f"README has no ```{language} block after <!-- {marker} -->"
    return match.group(1)


def _command(commands: str, program: str) -> list[str]:
    """The argv of the README line running ``jfsim PROGRAM`` (comment and ``&`` removed)."""
    for line in commands.splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] == ["jfsim", program]:
            return [word for word in words[2:] if word != "&"]
    raise AssertionError(f"README's serve commands do not run jfsim {program}")


def test_the_readme_example_runs_as_printed(tmp_path):
    commands = _block_after("serve-commands", "bash")
    script = _block_after("serve-script", "python")
    image_port, file_port = free_ports(2)
    ports = {"5500": str(image_port), "5601": str(file_port)}

    def with_free_ports(args: list[str]) -> list[str]:
        return [re.sub(r"\b(5500|5601)\b", lambda m: ports[m.group(1)], a) for a in args]

    write_args = with_free_ports(_command(commands, "write"))
    assert write_args[:4] == ["-R", "data", "-f", str(file_port)]
    writer = WriterProcess(tmp_path / "data", write_args[-1], file_port, *write_args[4:-1])
    serve = ServeProcess(
        *with_free_ports(_command(commands, "serve")),
        "--endpoint",
        f"tcp://127.0.0.1:{image_port}",
    )
    try:
        waits = [line for line in commands.splitlines() if line.startswith("until ")]
        assert len(waits) == 1, "the README waits for the API before running the script"
        if shutil.which("curl"):  # the README's wait uses curl; without it, only the script
            wait = subprocess.run(
                ["bash", "-c", waits[0].replace("http://127.0.0.1:5232", serve.url)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert wait.returncode == 0, wait.stderr
        (tmp_path / "collect.py").write_text(script, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "collect.py"],
            cwd=tmp_path,
            env=os.environ | {"JFJOCH_BROKER": serve.url},
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        serve_status, _, serve_log = serve.stop()
        writer_status, _, writer_log = writer.stop()
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip()
    assert printed == "lyso/rot1: 100 images sent, 100 written, indexing rate 1.00"
    assert f"It prints `{printed}`" in README.read_text(encoding="utf-8")
    assert serve_status == 0, serve_log
    assert writer_status == 0, writer_log
    assert (tmp_path / "data" / "lyso" / "rot1_master.h5").is_file()
    assert JFSIM.is_file()
