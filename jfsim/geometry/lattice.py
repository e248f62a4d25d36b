"""Crystal lattice maths: B and UB matrices, orientations, goniometer rotations, refinement.

Reciprocal vectors are in Å⁻¹ without 2π: r = A·h with A = U·B; the rows of A⁻¹ are the
direct-lattice vectors a, b, c in the lab frame (Å).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import gemmi
import numpy as np


def b_matrix(cell: Sequence[float]) -> np.ndarray:
    """gemmi-frame B (3×3, Å⁻¹): Bᵀ·B is the reciprocal metric tensor; |B·h| = 1/d.

    Args:
        cell: (a, b, c) in Å and (alpha, beta, gamma) in degrees.
    """
    unit_cell = gemmi.UnitCell(*cell)
    return np.array(unit_cell.frac.mat, dtype=np.float64).T


def random_orientation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed proper rotation (3×3), from a normalised random quaternion."""
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_matrix(axis: Sequence[float], angle_rad: float) -> np.ndarray:
    """Right-handed rotation by ``angle_rad`` about the unit vector ``axis`` (Rodrigues)."""
    e = np.asarray(axis, dtype=np.float64)
    e = e / np.linalg.norm(e)
    k = np.array([[0.0, -e[2], e[1]], [e[2], 0.0, -e[0]], [-e[1], e[0], 0.0]])
    rotation: np.ndarray = np.eye(3) + math.sin(angle_rad) * k + (1 - math.cos(angle_rad)) * (k @ k)
    return rotation


def direct_lattice_rows(ub: np.ndarray) -> np.ndarray:
    """Direct-lattice vectors a, b, c (Å) in the lab frame, as the rows of a 3×3 array."""
    return np.linalg.inv(np.asarray(ub, dtype=np.float64))


def cell_from_ub(ub: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """(a, b, c in Å, alpha, beta, gamma in degrees) of a reciprocal UB matrix."""
    a, b, c = direct_lattice_rows(ub)

    def angle(u: np.ndarray, v: np.ndarray) -> float:
        return math.degrees(math.acos(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))))

    return (
        float(np.linalg.norm(a)),
        float(np.linalg.norm(b)),
        float(np.linalg.norm(c)),
        angle(b, c),
        angle(a, c),
        angle(a, b),
    )


def refine_ub(hkl: np.ndarray, r_invA: np.ndarray) -> np.ndarray:
    """Least-squares UB (3×3) with r ≈ UB·h for indexed reciprocal vectors.

    Args:
        hkl: Miller indices, shape ``(n, 3)``, n ≥ 3 non-coplanar.
        r_invA: observed reciprocal vectors at φ = 0, shape ``(n, 3)``, Å⁻¹.
    """
    h = np.asarray(hkl, dtype=np.float64)
    r = np.asarray(r_invA, dtype=np.float64)
    solution, *_ = np.linalg.lstsq(h, r, rcond=None)  # h @ UBᵀ ≈ r
    return solution.T
