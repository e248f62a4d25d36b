"""A small, explicit table of the unit spellings found in NXmx files.

We do not depend on pint at run time: the table lists the spellings pint accepts for the
quantities NXmx uses (so ``Angstrom`` and ``A`` are *not* lengths, as in DIALS nxmx,
which parses units with pint), plus ``photons`` (Jungfraujoch's intensity unit, a count) and
``pixel``. Each spelling maps to a dimension name and a factor to SI (radians for angles).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple


class Unit(NamedTuple):
    dimension: str
    to_si: float


LENGTH = "length"
ANGLE = "angle"
TIME = "time"
ENERGY = "energy"
FREQUENCY = "frequency"
TEMPERATURE = "temperature"
CURRENT = "current"
DIMENSIONLESS = "dimensionless"
PIXEL = "pixel"
INVERSE_LENGTH = "inverse_length"
AREA = "area"


def _spellings(dimension: str, table: dict[str, float]) -> dict[str, Unit]:
    return {name: Unit(dimension, factor) for name, factor in table.items()}


_TABLE: dict[str, Unit] = {}
_TABLE.update(
    _spellings(
        LENGTH,
        {
            "m": 1.0,
            "metre": 1.0,
            "meter": 1.0,
            "metres": 1.0,
            "meters": 1.0,
            "cm": 1e-2,
            "centimetre": 1e-2,
            "centimeter": 1e-2,
            "mm": 1e-3,
            "millimetre": 1e-3,
            "millimeter": 1e-3,
            "millimetres": 1e-3,
            "millimeters": 1e-3,
            "um": 1e-6,
            "µm": 1e-6,
            "μm": 1e-6,
            "micron": 1e-6,
            "microns": 1e-6,
            "micrometre": 1e-6,
            "micrometer": 1e-6,
            "micrometres": 1e-6,
            "micrometers": 1e-6,
            "nm": 1e-9,
            "nanometre": 1e-9,
            "nanometer": 1e-9,
            "angstrom": 1e-10,
            "angstroms": 1e-10,
            "Å": 1e-10,
            "ångström": 1e-10,
        },
    )
)
_TABLE.update(
    _spellings(
        ANGLE,
        {
            "rad": 1.0,
            "radian": 1.0,
            "radians": 1.0,
            "mrad": 1e-3,
            "urad": 1e-6,
            "deg": math.pi / 180,
            "degree": math.pi / 180,
            "degrees": math.pi / 180,
        },
    )
)
_TABLE.update(
    _spellings(
        TIME,
        {
            "s": 1.0,
            "second": 1.0,
            "seconds": 1.0,
            "sec": 1.0,
            "ms": 1e-3,
            "millisecond": 1e-3,
            "milliseconds": 1e-3,
            "us": 1e-6,
            "µs": 1e-6,
            "microsecond": 1e-6,
            "microseconds": 1e-6,
            "ns": 1e-9,
            "nanosecond": 1e-9,
            "nanoseconds": 1e-9,
        },
    )
)
_TABLE.update(
    _spellings(
        ENERGY, {"eV": 1.602176634e-19, "keV": 1.602176634e-16, "J": 1.0, "meV": 1.602176634e-22}
    )
)
_TABLE.update(_spellings(FREQUENCY, {"Hz": 1.0, "1/s": 1.0, "s^-1": 1.0, "s**-1": 1.0, "kHz": 1e3}))
_TABLE.update(_spellings(TEMPERATURE, {"K": 1.0, "kelvin": 1.0}))
_TABLE.update(_spellings(CURRENT, {"A": 1.0, "mA": 1e-3, "ampere": 1.0}))
_TABLE.update(
    _spellings(
        DIMENSIONLESS,
        {"": 1.0, "1": 1.0, "m/m": 1.0, "counts": 1.0, "count": 1.0, "photons": 1.0, "photon": 1.0},
    )
)
_TABLE.update(_spellings(PIXEL, {"pixel": 1.0, "pixels": 1.0}))
_TABLE.update(
    _spellings(
        INVERSE_LENGTH,
        {
            "1/angstrom": 1e10,
            "angstrom^-1": 1e10,
            "angstrom**-1": 1e10,
            "Å^-1": 1e10,
            "1/Å": 1e10,
            "1/m": 1.0,
            "m^-1": 1.0,
            "1/nm": 1e9,
            "nm^-1": 1e9,
        },
    )
)
_TABLE.update(
    _spellings(AREA, {"angstrom^2": 1e-20, "angstrom**2": 1e-20, "Å^2": 1e-20, "m^2": 1.0})
)

#: The dimension each NXDL units category means (categories we cannot judge are absent).
NXDL_CATEGORIES: Mapping[str, str] = MappingProxyType(
    {
        "NX_LENGTH": LENGTH,
        "NX_WAVELENGTH": LENGTH,
        "NX_ANGLE": ANGLE,
        "NX_TIME": TIME,
        "NX_ENERGY": ENERGY,
        "NX_FREQUENCY": FREQUENCY,
        "NX_TEMPERATURE": TEMPERATURE,
        "NX_CURRENT": CURRENT,
        "NX_AREA": AREA,
        "NX_WAVENUMBER": INVERSE_LENGTH,
        "NX_DIMENSIONLESS": DIMENSIONLESS,
        "NX_UNITLESS": DIMENSIONLESS,
    }
)

#: Every known spelling, read-only (tests compare it with pint, spelling by spelling).
UNIT_TABLE: Mapping[str, Unit] = MappingProxyType(_TABLE)


def parse_unit(text: str) -> Unit | None:
    """The unit a ``units`` attribute names, or ``None`` when the spelling is not known."""
    return _TABLE.get(text.strip())
