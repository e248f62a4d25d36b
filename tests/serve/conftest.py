"""Fixtures of the broker tests; helpers live in serve_helpers.py (importable from here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_helpers import Puller, free_ports


@pytest.fixture
def tcp_endpoint() -> str:
    """A loopback endpoint on a port that was free a moment ago. ``jfsim serve`` needs a
    fixed image port before it starts (it binds it anew for each collection, and refuses
    ``*``), so these tests cannot let the streamer pick and keep it as the others do."""
    (port,) = free_ports(1)
    return f"tcp://127.0.0.1:{port}"


@pytest.fixture
def puller(tcp_endpoint: str):
    """A PULL socket connected to ``tcp_endpoint``, standing in for a writer."""
    receiver = Puller(tcp_endpoint)
    yield receiver
    receiver.close()
