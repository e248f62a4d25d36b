"""Fixtures of the writer tests; helpers live in writer_helpers.py (importable from here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from writer_helpers import Sender


@pytest.fixture
def sender():
    """A PUSH socket bound on a loopback port it keeps; the writer connects to
    ``sender.endpoint``."""
    push = Sender()
    yield push
    push.close()
