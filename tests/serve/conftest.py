"""Fixtures of the broker tests; helpers live in serve_helpers.py (importable from here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_helpers import Puller


@pytest.fixture
def puller(tcp_endpoint: str):
    """A PULL socket connected to ``tcp_endpoint``, standing in for a writer."""
    receiver = Puller(tcp_endpoint)
    yield receiver
    receiver.close()
