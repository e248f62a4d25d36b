"""jfconform's own unit table agrees with real pint, spelling by spelling.

pint is not a runtime dependency of jfconform (it arrives with nexusformat, a test
dependency); DIALS' nxmx reader parses ``units`` with pint, so our table must accept what
pint accepts, with the same meaning and factor.
"""

from __future__ import annotations

import math

import pytest

from jfconform.units import UNIT_TABLE

pint = pytest.importorskip("pint", reason="pint (installed with nexusformat) is not available")

#: Spellings we accept that pint does not know, and why.
DELIBERATE_EXCEPTIONS = {
    "photons": "Jungfraujoch's unit of peakTotalIntensity; a count, so dimensionless",
    "photon": "singular of photons",
}

#: The pint unit each of our dimensions converts to (SI, radians for angles).
REFERENCE_UNIT = {
    "length": "m",
    "angle": "rad",
    "time": "s",
    "energy": "J",
    "frequency": "Hz",
    "temperature": "K",
    "current": "A",
    "dimensionless": "dimensionless",
    "pixel": "pixel",
    "inverse_length": "1/m",
    "area": "m**2",
}

REGISTRY = pint.UnitRegistry()


@pytest.mark.parametrize("spelling", sorted(set(UNIT_TABLE) - set(DELIBERATE_EXCEPTIONS)))
def test_spelling_means_the_same_in_pint(spelling: str) -> None:
    unit = UNIT_TABLE[spelling]
    quantity = REGISTRY.Quantity(1.0, spelling)
    reference = REGISTRY.Quantity(1.0, REFERENCE_UNIT[unit.dimension])
    assert quantity.dimensionality == reference.dimensionality
    assert math.isclose(quantity.to(reference.units).magnitude, unit.to_si, rel_tol=1e-9)


@pytest.mark.parametrize("spelling", sorted(DELIBERATE_EXCEPTIONS))
def test_deliberate_exceptions_are_unknown_to_pint_and_dimensionless_here(spelling: str) -> None:
    assert UNIT_TABLE[spelling].dimension == "dimensionless"
    with pytest.raises(pint.UndefinedUnitError):
        REGISTRY.Quantity(1.0, spelling)


def test_spellings_pint_rejects_or_misreads_are_not_lengths_here() -> None:
    with pytest.raises(pint.UndefinedUnitError):
        REGISTRY.Quantity(1.0, "Angstrom")
    assert "Angstrom" not in UNIT_TABLE
    assert REGISTRY.Quantity(1.0, "A").check("[current]")
    assert UNIT_TABLE["A"].dimension == "current"
