"""Retired rule IDs: kept forever so that an ID is never reused with a new meaning.

Each entry records the symbol, the version that retired it and what it used to check.
The registry refuses to register any ID or symbol listed here.
"""

from __future__ import annotations

from typing import NamedTuple


class RetiredRule(NamedTuple):
    symbol: str
    retired_in: str
    former_summary: str


RETIRED: dict[str, RetiredRule] = {}
