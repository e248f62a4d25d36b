"""The end-of-run summary of a command: an aligned table for people, or JSON for machines."""

from __future__ import annotations

import json
from typing import Any


def print_summary(rows: dict[str, Any], document: dict[str, Any], *, as_json: bool) -> None:
    """Print ``document`` as JSON, or ``rows`` as a two-column table."""
    if as_json:
        print(json.dumps(document, indent=2))
        return
    width = max(len(key) for key in rows)
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")
