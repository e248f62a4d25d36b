"""The registry: stable ID shapes, refusal of duplicates and retired IDs, complete metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from jfconform.model import Issue, Severity
from jfconform.registry import FAMILIES, RegistryError, Rule, all_rules, register
from jfconform.rules.retired import RETIRED, RetiredRule


def _rule(rule_id: str, symbol: str) -> Rule:
    return Rule(rule_id, symbol, Severity.ERROR, "spec", "summary", "hint", lambda ctx: iter(()))


def test_every_rule_is_complete_and_in_a_known_family() -> None:
    rules = all_rules()
    assert len({r.id for r in rules}) == len(rules)
    assert len({r.symbol for r in rules}) == len(rules)
    for r in rules:
        assert r.family in FAMILIES
        assert r.summary and r.hint and r.spec


@pytest.mark.parametrize(
    ("rule_id", "symbol"),
    [
        ("NXMX-001", "brand-new-symbol"),  # duplicate ID
        ("NXMX-999", "sensor-material-missing"),  # duplicate symbol
        ("NXMX-1", "short-id"),  # malformed ID
        ("ZZZ-001", "unknown-family"),  # unknown family
        ("NXMX-998", "Not_Kebab"),  # malformed symbol
    ],
)
def test_registry_refuses_bad_or_duplicate_rules(rule_id: str, symbol: str) -> None:
    all_rules()
    with pytest.raises(RegistryError):
        register(_rule(rule_id, symbol))


def test_retired_ids_are_never_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    all_rules()
    monkeypatch.setitem(RETIRED, "NXG-099", RetiredRule("old-check", "0.0.1", "removed"))
    with pytest.raises(RegistryError, match="retired"):
        register(_rule("NXG-099", "fresh-symbol"))


def test_issue_severity_override_is_kept() -> None:
    assert Issue("/", "m", severity=Severity.WARNING).severity == Severity.WARNING
    assert Severity.parse("W") == Severity.WARNING
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("fatal")


def test_docs_list_every_rule() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "conform.md"
    text = docs.read_text(encoding="utf-8")
    missing = [r.id for r in all_rules() if f"| {r.id} |" not in text]
    assert not missing, f"docs/conform.md lacks rules: {missing}"
