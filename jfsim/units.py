"""Unit conversions, written once.

Canonical units inside jfsim (see the README): mm on the detector side, Å and Å⁻¹ without
2π for crystallography, keV for photon energy, radians inside geometry. Degrees, metres, eV
and micrometres appear only at the edges (configs, the wire, files) and are converted here.
"""

import math

#: hc in keV·Å (CODATA 2018): E[keV] = HC_KEV_ANGSTROM / λ[Å].
HC_KEV_ANGSTROM = 12.398419843320026


def kev_to_angstrom(energy_keV: float) -> float:
    """Photon wavelength in Å for an energy in keV."""
    return HC_KEV_ANGSTROM / energy_keV


def angstrom_to_kev(wavelength_A: float) -> float:
    """Photon energy in keV for a wavelength in Å."""
    return HC_KEV_ANGSTROM / wavelength_A


def deg_to_rad(angle_deg: float) -> float:
    return math.radians(angle_deg)


def rad_to_deg(angle_rad: float) -> float:
    return math.degrees(angle_rad)


def mm_to_m(length_mm: float) -> float:
    return length_mm * 1e-3


def m_to_mm(length_m: float) -> float:
    return length_m * 1e3


def us_to_s(time_us: float) -> float:
    return time_us * 1e-6


def kev_to_ev(energy_keV: float) -> float:
    return energy_keV * 1e3


def ev_to_kev(energy_eV: float) -> float:
    return energy_eV * 1e-3
