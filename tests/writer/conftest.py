"""Fixtures of the writer tests; helpers live in writer_helpers.py (importable from here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from writer_helpers import Sender


@pytest.fixture
def sender(tcp_endpoint: str):
    """A PUSH socket bound at ``tcp_endpoint``; the writer under test connects to it."""
    push = Sender(tcp_endpoint)
    yield push
    push.close()
