"""Findings are data: the records every rule produces and every report renders."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.IntEnum):
    """How bad a finding is; the order is the one ``--fail-on`` compares against."""

    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def letter(self) -> str:
        return self.name[0]

    @property
    def word(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Accept ``error``/``warning``/``info`` or the letters ``E``/``W``/``I``."""
        key = text.strip().upper()
        for member in cls:
            if key in (member.name, member.letter):
                return member
        allowed = "error, warning, info"
        raise ValueError(f"unknown severity {text!r}; use one of: {allowed}")


E = Severity.ERROR
W = Severity.WARNING
I = Severity.INFO  # noqa: E741 - the catalogue's own letter


@dataclass(frozen=True, slots=True)
class Issue:
    """What a rule reports: where (HDF5 path), what (message), and how to fix it (hint).

    ``severity`` is left ``None`` to use the rule's default; a rule whose catalogue entry has
    two levels (e.g. NXT-004: E for a bad vector, W for a non-unit one) sets it.
    ``profile_raises`` False keeps a reader rule's note at its severity under ``--profile``
    (the reader copes with what it describes).
    """

    path: str
    message: str
    hint: str | None = None
    severity: Severity | None = None
    file: str | None = None
    profile_raises: bool = True


@dataclass(frozen=True, slots=True)
class Finding:
    """One reported problem, fully resolved: rule, severity, file, HDF5 path, text."""

    rule: str
    symbol: str
    severity: Severity
    file: str
    path: str
    message: str
    hint: str

    def as_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "symbol": self.symbol,
            "severity": self.severity.word,
            "file": self.file,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }
