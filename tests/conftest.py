"""Fixtures shared by every test area: the ../shared folder and loopback sockets.

jfconform runs strict in the whole suite (in process and in the CLI subprocesses, which
inherit the environment): an exception from a rule's own code fails the test instead of
becoming a "could not evaluate" warning.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ["JFCONFORM_STRICT"] = "1"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = PROJECT_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_testdata() -> Path:
    """The third-party reference data beside the project; skips when it is not there."""
    testdata = SHARED_DIR / "testdata"
    if not testdata.is_dir():
        pytest.skip(f"third-party test data not found at {testdata} (../shared is absent)")
    return testdata


#: What ``jfsim stream`` prints once its sockets are bound, with the ports resolved.
WAITING_FOR_WRITERS = re.compile(r"^stream: waiting for writers on (.+)$", re.MULTILINE)
JFSIM = Path(sys.executable).with_name("jfsim")


@dataclass
class BoundStreamer:
    """A running ``jfsim stream`` whose PUSH sockets are bound on ports it keeps."""

    process: subprocess.Popen
    endpoints: list[str]
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def finish(self, timeout_s: float = 180.0) -> tuple[int, str, str]:
        """Wait for the exit: (status, stdout, stderr)."""
        stdout, _ = self.process.communicate(timeout=timeout_s)
        return self.process.returncode, stdout, self.stderr()


@pytest.fixture
def start_streamer(tmp_path: Path) -> Iterator[Callable[..., BoundStreamer]]:
    """Start ``jfsim stream ARGS`` with ``sockets`` image endpoints on ``tcp://127.0.0.1:*``:
    the kernel picks each port when the streamer binds it and the streamer keeps it, so no
    port is released between choosing and binding (no race with parallel tests). Returns
    once the streamer said where it is bound; writers then connect there."""
    started: list[subprocess.Popen] = []

    def start(*args: str, sockets: int = 1, timeout_s: float = 180.0) -> BoundStreamer:
        stderr_path = tmp_path / f"jfsim-stream-{len(started)}.stderr"
        endpoints = [a for _ in range(sockets) for a in ("--endpoint", "tcp://127.0.0.1:*")]
        with stderr_path.open("w", encoding="utf-8") as stderr:
            process = subprocess.Popen(
                [str(JFSIM), "stream", *args, *endpoints],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        started.append(process)
        waiting = threading.Event()
        for _ in range(int(timeout_s / 0.05)):
            found = WAITING_FOR_WRITERS.search(stderr_path.read_text(encoding="utf-8"))
            if found:
                return BoundStreamer(process, found.group(1).split(", "), stderr_path)
            if process.poll() is not None:
                break
            waiting.wait(0.05)
        raise AssertionError(f"jfsim stream did not bind: {stderr_path.read_text()[-2000:]}")

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.fixture
def silent_tcp_endpoint() -> Iterator[str]:
    """A loopback endpoint held by a listening socket that never speaks: connections are
    accepted by the kernel and then stay silent. The port is ours for the whole test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
