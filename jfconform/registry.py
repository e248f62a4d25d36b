"""The rule registry: every check is a registered object with a stable ID.

IDs have the catalogue's ``FAMILY-NNN`` shape (docs/conform.md) and a kebab-case symbol;
the registry refuses malformed, duplicate or retired IDs at import time, so a clash is a
test failure rather than a silent overwrite.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jfconform.model import Issue, Severity

if TYPE_CHECKING:
    from jfconform.context import FileContext

#: Every family prefix, listed once. TRUTH is ours (scores against simulator ground truth);
#: STR judges stream messages rather than files.
FAMILIES: dict[str, str] = {
    "NXG": "General NeXus",
    "NXMX": "NXmx application definition",
    "NXT": "NXtransformations and depends_on chains",
    "NXR": "NXreflections",
    "CXI": "CXI peak lists (/entry/MX)",
    "JF": "Jungfraujoch layout and extensions",
    "H5": "HDF5 storage mechanics",
    "RD": "Reader profiles (CrystFEL, DIALS, dxtbx, Neggia, Durin)",
    "TRUTH": "Scores against simulator ground truth",
    "STR": "Stream messages (Stream V2 and Jungfraujoch CBOR), judged by 'jfconform stream'",
}

_ID_PATTERN = re.compile(r"^(?P<family>[A-Z0-9]+)(?:-[A-Z]+)?-\d{3}$")
_SYMBOL_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

#: Which file a rule looks at: the master (or a single integrated file) or a data file.
MASTER = "master"
DATA = "data"
BOTH = (MASTER, DATA)

RuleFunction = Callable[["FileContext"], Iterable[Issue]]


class RegistryError(Exception):
    """A rule definition is malformed or clashes with another (a programming error)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A registered check.

    Attributes:
        id: stable catalogue ID, e.g. ``NXMX-021``.
        symbol: kebab-case name, e.g. ``sensor-material-missing``.
        severity: default severity (required → E, recommended → W, optional → I).
        spec: where the requirement comes from (public document, NXDL class, reader).
        summary: one line saying what is checked.
        hint: default one-line fix, used when the issue carries none.
        check: the function, ``None`` for rules evaluated outside the file walk (TRUTH).
        roles: the kinds of file the rule applies to.
        raisable: RD rules whose default is I but that ``--profile`` still makes errors
            (RD W rules are always raised by their profile).
    """

    id: str
    symbol: str
    severity: Severity
    spec: str
    summary: str
    hint: str
    check: RuleFunction | None
    roles: tuple[str, ...] = (MASTER,)
    raisable: bool = False

    @property
    def family(self) -> str:
        return self.id.split("-", 1)[0]

    @property
    def profile_raises(self) -> bool:
        """Whether ``--profile`` for this rule's reader makes its findings errors."""
        return self.profile_group is not None and (
            self.raisable or self.severity == Severity.WARNING
        )

    @property
    def profile_group(self) -> str | None:
        """For RD rules, the reader they describe (``DIALS``, ``NEGGIA``, ...)."""
        parts = self.id.split("-")
        return parts[1] if parts[0] == "RD" and len(parts) == 3 else None


_RULES: dict[str, Rule] = {}
_SYMBOLS: dict[str, str] = {}


def register(rule_obj: Rule) -> Rule:
    """Add a rule; refuse malformed, duplicate or retired IDs and symbols."""
    from jfconform.rules.retired import RETIRED

    match = _ID_PATTERN.match(rule_obj.id)
    if match is None or match.group("family") not in FAMILIES:
        raise RegistryError(f"rule ID {rule_obj.id!r} is not FAMILY-NNN with a known family")
    if not _SYMBOL_PATTERN.match(rule_obj.symbol):
        raise RegistryError(f"rule {rule_obj.id}: symbol {rule_obj.symbol!r} is not kebab-case")
    if rule_obj.id in _RULES:
        raise RegistryError(f"duplicate rule ID {rule_obj.id}")
    if rule_obj.symbol in _SYMBOLS:
        raise RegistryError(
            f"duplicate symbol {rule_obj.symbol!r} ({rule_obj.id} and {_SYMBOLS[rule_obj.symbol]})"
        )
    if rule_obj.id in RETIRED or rule_obj.symbol in {r.symbol for r in RETIRED.values()}:
        raise RegistryError(f"rule {rule_obj.id} ({rule_obj.symbol}) reuses a retired ID")
    _RULES[rule_obj.id] = rule_obj
    _SYMBOLS[rule_obj.symbol] = rule_obj.id
    return rule_obj


def describe(rule_id: str, text: str | None) -> tuple[str, str, str]:
    """(summary, spec, hint) from a rule's description, as pycodestyle reads its codes from
    docstrings: the first paragraph is the summary; the last holds a ``Spec:`` line (where
    the requirement comes from) and a ``Hint:`` line (the default fix), each continued on
    the lines that follow it; paragraphs between explain the rule."""
    paragraphs = [p.split("\n") for p in inspect.cleandoc(text or "").split("\n\n")]
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in paragraphs[-1] if len(paragraphs) > 1 else []:
        name, _, rest = line.partition(":")
        if name in ("Spec", "Hint"):
            current = sections.setdefault(name, [])
            line = rest
        current.append(line.strip())
    if set(sections) != {"Spec", "Hint"} or not paragraphs[0][0]:
        raise RegistryError(f"rule {rule_id}: describe it as 'summary', then 'Spec:' and 'Hint:'")
    return (" ".join(paragraphs[0]), " ".join(sections["Spec"]), " ".join(sections["Hint"]))


def rule(
    rule_id: str,
    symbol: str,
    severity: Severity,
    *,
    roles: tuple[str, ...] = (MASTER,),
    raisable: bool = False,
) -> Callable[[RuleFunction], RuleFunction]:
    """Register a rule function; its docstring describes it (see :func:`describe`)."""

    def decorate(function: RuleFunction) -> RuleFunction:
        summary, spec, hint = describe(rule_id, function.__doc__)
        register(Rule(rule_id, symbol, severity, spec, summary, hint, function, roles, raisable))
        return function

    return decorate


def all_rules() -> list[Rule]:
    """Every registered rule, ordered by family (catalogue order) then ID."""
    import jfconform.rules  # noqa: F401 - importing registers the families

    family_order = list(FAMILIES)
    return sorted(
        _RULES.values(), key=lambda r: (family_order.index(r.family), r.id.rsplit("-", 1)[0], r.id)
    )


def get_rule(rule_id: str) -> Rule:
    all_rules()
    return _RULES[rule_id]


def matches(rule_id: str, prefixes: Iterable[str]) -> bool:
    """True when ``rule_id`` starts with one of ``prefixes`` (case-insensitive)."""
    upper = rule_id.upper()
    return any(upper.startswith(p.strip().upper()) for p in prefixes if p.strip())
