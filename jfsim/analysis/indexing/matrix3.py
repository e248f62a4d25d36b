"""3×3 matrix algebra for compiled code.

numba's ``np.linalg`` calls LAPACK through scipy, which jfsim does not need at run time;
the indexer's matrices are 3×3, for which the closed forms are as accurate and cost less
than a call.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["determinant", "inverse", "product"]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def determinant(m):  # type: ignore[no-untyped-def]  # numba kernel
    """det m of a 3×3 matrix."""
    return (
        m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1])
        - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
        + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0])
    )


@numba.njit(nogil=True, cache=True, error_model="numpy")
def inverse(m):  # type: ignore[no-untyped-def]  # numba kernel
    """m⁻¹ of a 3×3 matrix (its adjugate over its determinant)."""
    inverted = np.empty((3, 3))
    scale = 1.0 / determinant(m)
    for i in range(3):
        for j in range(3):
            # the cofactor of m[j, i]: rows and columns other than j and i, cyclically
            r0, r1 = (j + 1) % 3, (j + 2) % 3
            c0, c1 = (i + 1) % 3, (i + 2) % 3
            inverted[i, j] = (m[r0, c0] * m[r1, c1] - m[r0, c1] * m[r1, c0]) * scale
    return inverted


@numba.njit(nogil=True, cache=True, error_model="numpy")
def product(a, b):  # type: ignore[no-untyped-def]  # numba kernel
    """a·b of 3×3 matrices."""
    out = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            out[i, j] = a[i, 0] * b[0, j] + a[i, 1] * b[1, j] + a[i, 2] * b[2, j]
    return out
