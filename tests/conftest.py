"""Fixtures shared by every test area: the ../shared folder and free loopback ports.

jfconform runs strict in the whole suite (in process and in the CLI subprocesses, which
inherit the environment): an exception from a rule's own code fails the test instead of
becoming a "could not evaluate" warning.
"""

from __future__ import annotations

import os
import socket
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


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (tests bind it at once)."""
    return _free_tcp_port()


@pytest.fixture
def tcp_endpoint(free_tcp_port: int) -> str:
    """A ZeroMQ endpoint on loopback with a fresh port: ``tcp://127.0.0.1:PORT``."""
    return f"tcp://127.0.0.1:{free_tcp_port}"
