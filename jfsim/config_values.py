"""Parsing of configuration values with units, shared by every experiment loader.

A key names its unit (``distance_mm``); its value is a number in that unit, or a string
with an explicit unit of the same kind (``"0.12 m"``), converted here. The key's unit is
declared with its parser (``quantity("mm")``), never guessed from the key's text; keys
without a unit (``flux_photons_per_s``, ``hit_rate``) take plain numbers (``number``). Every
parser takes ``where`` (``"[section] key"``) so that its ``ConfigError`` names the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from jfsim.errors import ConfigError

#: The units a key's name may carry → (kind of quantity, size of the unit in SI).
KEY_UNITS: dict[str, tuple[str, float]] = {
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
#: The units a value string may name → (kind of quantity, size of the unit in SI).
UNIT_WORDS: dict[str, tuple[str, float]] = {
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
    """A plain, finite number (for keys without a unit: counts, fractions, factors)."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be finite, got {value}")
        return float(value)
    if isinstance(value, str):
        raise ConfigError(f"{where}: expected a plain number (this key has no unit), got {value!r}")
    raise ConfigError(f"{where}: expected a number, got {type(value).__name__}")


def quantity(key_unit: str) -> Callable[[str, Any], float]:
    """A parser for a key in ``key_unit``: a number in that unit, or a string with a unit of
    the same kind (``"0.12 m"`` for a ``_mm`` key), converted to ``key_unit``."""
    kind, key_si = KEY_UNITS[key_unit]

    def parse(where: str, value: Any) -> float:
        if not isinstance(value, str):
            return number(where, value)
        match = _QUANTITY.match(value)
        if match is None:
            raise ConfigError(
                f"{where}: expected a number or a {kind} such as '1.5 {key_unit}', got {value!r}"
            )
        magnitude, unit = float(match.group(1)), match.group(2)
        if unit not in UNIT_WORDS:
            raise ConfigError(f"{where}: unknown unit {unit!r} in {value!r}")
        unit_kind, unit_si = UNIT_WORDS[unit]
        if unit_kind != kind:
            raise ConfigError(
                f"{where}: {value!r} is {_article(unit_kind)} {unit_kind}, but this key takes "
                f"{_article(kind)} {kind} in {key_unit}"
            )
        return magnitude * unit_si / key_si

    return parse


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
    (a, b, c), (d, e, f), (g, h, i) = rows
    determinant = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    if determinant < 0:
        raise ConfigError(
            f"{where}: has determinant {determinant:.3g}, an improper rotation that mirrors the "
            "crystal (the wrong hand for chiral space groups); give a proper rotation, det = +1"
        )
    return rows  # type: ignore[return-value]


def _raise(error: Exception) -> Any:
    raise error


#: A range check: the problem with a value (in the field's unit), or None when it is fine.
Check = Callable[[Any], str | None]


def positive(value: float) -> str | None:
    return None if value > 0 else f"must be > 0, got {value}"


def non_negative(value: float) -> str | None:
    return None if value >= 0 else f"must be >= 0, got {value}"


def fraction(value: float) -> str | None:
    return None if 0 <= value <= 1 else f"must be within [0, 1], got {value}"


def between(low: int, high: int) -> Check:
    """An integer in ``low..high`` (both included)."""

    def check(value: int) -> str | None:
        return None if low <= value <= high else f"must be within {low}..{high}, got {value}"

    return check


def one_of(*allowed: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}, got {value!r}"

    return check
