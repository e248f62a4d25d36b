"""Parsing of configuration values with units, shared by every experiment loader.

A key names its unit (``distance_mm``); its value is a number in that unit, or a string
with an explicit unit of the same kind (``"0.12 m"``), converted here. Every parser takes
``where`` (``"[section] key"``) so that its ``ConfigError`` names the offending key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jfsim.errors import ConfigError

_UNIT_SUFFIXES: dict[str, tuple[str, float]] = {
    # key suffix → (kind of quantity, size of the suffix unit in SI)
    "mm": ("length", 1e-3),
    "m": ("length", 1.0),
    "um": ("length", 1e-6),
    "A": ("length", 1e-10),
    "A2": ("area", 1e-20),
    "deg": ("angle", math.pi / 180),
    "rad": ("angle", 1.0),
    "keV": ("energy", 1e3),
    "eV": ("energy", 1.0),
    "s": ("time", 1.0),
    "us": ("time", 1e-6),
    "ms": ("time", 1e-3),
}
_UNIT_WORDS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0),
    "mm": ("length", 1e-3),
    "um": ("length", 1e-6),
    "µm": ("length", 1e-6),
    "nm": ("length", 1e-9),
    "A": ("length", 1e-10),
    "Å": ("length", 1e-10),
    "A2": ("area", 1e-20),
    "Å2": ("area", 1e-20),
    "deg": ("angle", math.pi / 180),
    "°": ("angle", math.pi / 180),
    "rad": ("angle", 1.0),
    "mrad": ("angle", 1e-3),
    "urad": ("angle", 1e-6),
    "eV": ("energy", 1.0),
    "keV": ("energy", 1e3),
    "s": ("time", 1.0),
    "ms": ("time", 1e-3),
    "us": ("time", 1e-6),
    "µs": ("time", 1e-6),
    "ns": ("time", 1e-9),
}
_QUANTITY = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(\S+)\s*$")


def number(where: str, value: Any) -> float:
    """A plain number, or a quantity string converted to the unit of the key's suffix."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be finite, got {value}")
        return float(value)
    if isinstance(value, str):
        suffix = where.rsplit("_", 1)[-1] if "_" in where else ""
        match = _QUANTITY.match(value)
        if match is None or suffix not in _UNIT_SUFFIXES:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        magnitude, unit = float(match.group(1)), match.group(2)
        kind, target_si = _UNIT_SUFFIXES[suffix]
        if unit not in _UNIT_WORDS:
            raise ConfigError(f"{where}: unknown unit {unit!r} in {value!r}")
        unit_kind, unit_si = _UNIT_WORDS[unit]
        if unit_kind != kind:
            raise ConfigError(
                f"{where}: {value!r} is {_article(unit_kind)} {unit_kind}, but this key takes "
                f"{_article(kind)} {kind} in {suffix}"
            )
        return magnitude * unit_si / target_si
    raise ConfigError(f"{where}: expected a number, got {type(value).__name__}")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def integer(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return value


def text(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected text, got {value!r}")
    return value


def flag(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def any_value(where: str, value: Any) -> Any:
    return value


def vector3(where: str, value: Any) -> tuple[float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ConfigError(f"{where}: expected a list of 3 numbers, got {value!r}")
    vector = tuple(number(f"{where}[{i}]", v) for i, v in enumerate(value))
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0:
        raise ConfigError(f"{where}: must not be the zero vector")
    return (vector[0] / norm, vector[1] / norm, vector[2] / norm)


def matrix3(where: str, value: Any) -> tuple[tuple[float, float, float], ...]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ConfigError(f"{where}: expected 3 rows of 3 numbers (a rotation matrix)")
    rows = tuple(
        tuple(number(f"{where}[{i}][{j}]", v) for j, v in enumerate(row))
        if isinstance(row, list | tuple) and len(row) == 3
        else _raise(ConfigError(f"{where}[{i}]: expected 3 numbers"))
        for i, row in enumerate(value)
    )
    product = [[sum(rows[k][i] * rows[k][j] for k in range(3)) for j in range(3)] for i in range(3)]
    if any(abs(product[i][j] - (i == j)) > 1e-6 for i in range(3) for j in range(3)):
        raise ConfigError(f"{where}: is not a rotation matrix (UᵀU ≠ 1)")
    return rows  # type: ignore[return-value]


def _raise(error: Exception) -> Any:
    raise error


# A field table: user key → (dataclass field, parser, converter to canonical, validator).
Check = Callable[[Any], str | None]


@dataclass(frozen=True, slots=True)
class KeySpec:
    field: str
    parse: Callable[[str, Any], Any]
    convert: Callable[[Any], Any] = lambda value: value
    check: Check | None = None


def positive(value: float) -> str | None:
    return None if value > 0 else f"must be > 0, got {value}"


def non_negative(value: float) -> str | None:
    return None if value >= 0 else f"must be >= 0, got {value}"


def fraction(value: float) -> str | None:
    return None if 0 <= value <= 1 else f"must be within [0, 1], got {value}"


def one_of(*allowed: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}, got {value!r}"

    return check
