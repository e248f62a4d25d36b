"""Full reflection intensities: Wilson-random |F|² with a B factor, fixed per crystal.

Why hashed: symmetry mates and repeated measurements of a reflection must agree (merging
tests need it), so |F|² is a pure function of (seed, reflection mapped to the Laue
asymmetric unit) instead of a draw from a running generator. Acentric |F|² ~ ε·Exp(1),
centric ~ ε·χ²₁ (physics.md §2.6), ε the epsilon factor from gemmi.

Expected photons of a full reflection on the detector:

    N_full = scale · |F|² · exp(−B/2d²) / exp(−B/2·3²) · L · P

so ``intensity_scale_photons`` is the mean full intensity at d = 3 Å for L = P = 1.
"""

from __future__ import annotations

import gemmi
import numpy as np

from jfsim.experiment import Crystal
from jfsim.sim.noise import splitmix64

REFERENCE_D_A = 3.0
_HKL_OFFSET = 1 << 20  # keeps the packed Miller indices non-negative


def _unit_uniforms(keys: np.ndarray) -> np.ndarray:
    bits = splitmix64(keys)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / 9007199254740992.0


def squared_amplitudes(crystal: Crystal, hkl: np.ndarray, seed: int) -> np.ndarray:
    """|F|² (relative, mean ≈ ε) of each reflection ``(n, 3)`` for this crystal and seed."""
    hkl = np.ascontiguousarray(hkl, dtype=np.int32)
    if crystal.intensity_model == "flat" or hkl.shape[0] == 0:
        return np.ones(hkl.shape[0])
    space_group = gemmi.find_spacegroup_by_number(crystal.space_group_number)
    operations = space_group.operations()
    asu = hkl.copy()
    space_group.switch_to_asu(asu)
    packed = (asu.astype(np.uint64) + np.uint64(_HKL_OFFSET)) & np.uint64(0x1FFFFF)
    with np.errstate(over="ignore"):
        key = (
            splitmix64(np.uint64(seed))
            ^ (packed[:, 0] << np.uint64(42))
            ^ (packed[:, 1] << np.uint64(21))
            ^ packed[:, 2]
        )
        u1 = _unit_uniforms(key)
        u2 = _unit_uniforms(key ^ np.uint64(0x5555555555555555))
    epsilon = np.asarray(operations.epsilon_factor_array(hkl), dtype=np.float64)
    centric = np.asarray(operations.centric_flag_array(hkl), dtype=bool)
    acentric_draw = -np.log(u1)
    normal = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return epsilon * np.where(centric, normal**2, acentric_draw)


def full_photons(
    crystal: Crystal,
    squared_amplitude: np.ndarray,
    d_A: np.ndarray,
    lorentz: np.ndarray,
    polarization: np.ndarray,
) -> np.ndarray:
    """Expected photons of full reflections (before partiality)."""
    b = crystal.b_factor_A2
    falloff = np.exp(-b / (2.0 * d_A**2) + b / (2.0 * REFERENCE_D_A**2))
    return crystal.intensity_scale_photons * squared_amplitude * falloff * lorentz * polarization
