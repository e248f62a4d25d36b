"""Crystal lattices as the indexer finds them: reduction, Bravais type and cell matching.

A :class:`Lattice` is three real-space vectors a, b, c in the lab frame (Å, the rows of
``real_space_A``, Jungfraujoch's ``latticeIndexed`` order) and the Bravais type of that
setting. Reciprocal vectors follow :mod:`jfsim.geometry`: r = UB·h with UB = (rows a, b,
c)⁻¹, Å⁻¹ without 2π.

The crystallography goes through gemmi, never through hand-written tables:

* Niggli reduction: ``gemmi.GruberVector(...).niggli_reduce()`` with its change of basis;
* Bravais lattice: ``gemmi.find_lattice_symmetry`` gives the lattice's point group in the
  reduced basis (within an obliquity tolerance); the conventional axes are the shortest
  lattice vectors along its 4-, 6-, 3- or 2-fold axes, and the centring follows from the
  lattice points inside the conventional cell. Gemmi then checks the result: the
  conventional cell with that centring must reduce to the same Niggli cell;
* a reference cell (``-C``, with the centring of ``-S``): both cells are reduced, and the
  lattice-symmetry operation that maps one reduced basis onto the other picks the setting.

Bases are right-handed (a lattice and its inverse index the same spots; the hand of a
basis is a convention, and UB = U·B needs a proper U).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import gemmi
import numpy as np
import numpy.typing as npt

__all__ = [
    "BRAVAIS_TYPES",
    "LATTICE_SYSTEMS",
    "Lattice",
    "ReferenceCell",
    "bravais_lattice",
    "cell_of",
    "match_reference",
    "niggli_reduce",
]

FloatArray = npt.NDArray[np.float64]

#: The 14 Bravais types by their short codes (seed 001 ``bravaisLattice``).
BRAVAIS_TYPES = (
    "aP", "mP", "mC", "oP", "oC", "oI", "oF", "tP", "tI", "hP", "hR", "cP", "cI", "cF"
)  # fmt: skip
#: Lattice system of each crystal-family letter (``hR`` is rhombohedral).
LATTICE_SYSTEMS = {
    "a": "triclinic",
    "m": "monoclinic",
    "o": "orthorhombic",
    "t": "tetragonal",
    "h": "hexagonal",
    "c": "cubic",
}
#: Proper rotations in the point group of each lattice system's holohedry.
_GROUP_ORDER = {"a": 1, "m": 2, "o": 4, "hR": 6, "t": 8, "h": 12, "c": 24}
#: Largest coefficient of a lattice vector searched along a symmetry axis (reduced basis).
_AXIS_SEARCH = 3


@dataclass(frozen=True)
class Lattice:
    """A lattice in the lab frame.

    Attributes:
        real_space_A: rows a, b, c (Å), right-handed.
        bravais: Bravais type of this setting (``aP`` … ``cF``); the centring letter is
            its second character.
    """

    real_space_A: FloatArray
    bravais: str = "aP"

    @property
    def reciprocal_invA(self) -> FloatArray:
        """UB (Å⁻¹, no 2π): r = UB·h."""
        return np.asarray(np.linalg.inv(self.real_space_A))

    @property
    def centring(self) -> str:
        return self.bravais[1]

    @property
    def cell(self) -> tuple[float, float, float, float, float, float]:
        """(a, b, c in Å, α, β, γ in degrees)."""
        return cell_of(self.real_space_A)

    def rotated(self, rotation: FloatArray) -> Lattice:
        """The same lattice turned by ``rotation`` (3×3, lab frame)."""
        return Lattice(self.real_space_A @ np.asarray(rotation).T, self.bravais)


@dataclass(frozen=True)
class ReferenceCell:
    """A known cell (``-C``) in its conventional setting, with the centring of its space
    group (``-S``; ``P`` when no space group is given)."""

    cell: tuple[float, float, float, float, float, float]
    centring: str = "P"
    space_group_number: int | None = None

    @property
    def real_space_A(self) -> FloatArray:
        """A basis with this cell (gemmi's orthogonalisation: a along x)."""
        return _basis_of(self.cell)

    @property
    def lengths_A(self) -> tuple[float, float, float]:
        return self.cell[0], self.cell[1], self.cell[2]

    @property
    def bravais(self) -> str:
        """The Bravais type: the crystal family of the space group (of the cell's own
        metric when none is given) and the centring."""
        return f"{_family_of(self)}{self.centring}"


def cell_of(real_space_A: FloatArray) -> tuple[float, float, float, float, float, float]:
    """(a, b, c in Å, α, β, γ in degrees) of a basis given as rows a, b, c."""
    a, b, c = np.asarray(real_space_A, dtype=np.float64)
    lengths = [float(np.linalg.norm(v)) for v in (a, b, c)]

    def angle(u: FloatArray, v: FloatArray) -> float:
        cosine = float(u @ v) / float(np.linalg.norm(u) * np.linalg.norm(v))
        return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))

    return (lengths[0], lengths[1], lengths[2], angle(b, c), angle(a, c), angle(a, b))


def _basis_of(cell: Sequence[float]) -> FloatArray:
    return np.asarray(np.array(gemmi.UnitCell(*cell).orth.mat, dtype=np.float64).T)


def _right_handed(basis: FloatArray) -> FloatArray:
    return basis if np.linalg.det(basis) > 0 else -basis


def _rotation_matrix(op: gemmi.Op) -> npt.NDArray[np.int64]:
    """The integer rotation part of a gemmi operation, times ``Op.DEN``."""
    return np.array(op.rot, dtype=np.int64)


def niggli_reduce(basis_A: FloatArray) -> FloatArray:
    """The Niggli-reduced basis (rows, lab frame, right-handed) of the primitive lattice
    spanned by ``basis_A`` (gemmi's Gruber vector with its change of basis)."""
    basis = np.asarray(basis_A, dtype=np.float64)
    vector = gemmi.GruberVector(gemmi.UnitCell(*cell_of(basis)), "P", True)
    vector.niggli_reduce()
    change = _rotation_matrix(vector.change_of_basis) / gemmi.Op.DEN
    return _right_handed(change.T @ basis)


@cache
def _lattice_vectors() -> npt.NDArray[np.int64]:
    """Small integer coefficient vectors (reduced basis), without 0 and without −u for u."""
    span = range(-_AXIS_SEARCH, _AXIS_SEARCH + 1)
    found = [u for u in itertools.product(span, repeat=3) if u > (0, 0, 0)]
    return np.array(found, dtype=np.int64)


def _axis(rotation: npt.NDArray[np.int64], reduced: FloatArray) -> npt.NDArray[np.int64]:
    """Shortest lattice vector (reduced-basis coefficients) fixed by ``rotation``."""
    vectors = _lattice_vectors()
    fixed = vectors[np.all(vectors @ rotation.T == gemmi.Op.DEN * vectors, axis=1)]
    lengths = np.linalg.norm(fixed @ reduced, axis=1)
    return np.asarray(fixed[int(np.argmin(lengths))])


def _order(rotation: npt.NDArray[np.int64]) -> int:
    """Order of a proper rotation from its trace (2-, 3-, 4- or 6-fold; 1 = identity)."""
    trace = round(np.trace(rotation) / gemmi.Op.DEN)
    return {3: 1, -1: 2, 0: 3, 1: 4, 2: 6}[trace]


def _shortest(
    vectors: Sequence[npt.NDArray[np.int64]], reduced: FloatArray
) -> npt.NDArray[np.int64]:
    return min(vectors, key=lambda u: float(np.linalg.norm(u @ reduced)))


def _reversed_by(rotation: npt.NDArray[np.int64], u: npt.NDArray[np.int64]) -> bool:
    """Whether a 2-fold ``rotation`` turns the lattice vector ``u`` into −u (exactly: the
    2-fold axis is perpendicular to u)."""
    return bool(np.array_equal(rotation @ u, -gemmi.Op.DEN * u))


def _conventional_axes(
    rotations: list[npt.NDArray[np.int64]], reduced: FloatArray, family: str
) -> npt.NDArray[np.int64] | None:
    """Rows: the conventional axes in reduced-basis coefficients for a lattice whose point
    group has ``rotations`` (None for a triclinic lattice). Perpendicularity is decided
    exactly, by the operations (a 2-fold axis is perpendicular to u when it reverses u)."""
    by_order: dict[int, list[npt.NDArray[np.int64]]] = {}
    for rotation in rotations:
        by_order.setdefault(_order(rotation), []).append(rotation)
    two_folds = by_order.get(2, [])
    if family == "c":
        a, b, c = _unique_axes(by_order[4], reduced)[:3]
        return np.array([a, b, c])
    if family == "o":
        a, b, c = _unique_axes(two_folds, reduced)[:3]
        return np.array([a, b, c])
    if family == "m":
        return _monoclinic_axes(two_folds[0], reduced)
    if family in ("t", "h", "hR"):
        main = {"t": 4, "h": 6, "hR": 3}[family]
        c = _unique_axes(by_order[main], reduced)[0]
        across = [r for r in two_folds if _reversed_by(r, c)]
        a = _shortest(_unique_axes(across, reduced), reduced)
        turn = by_order[main][0]
        steps = 2 if family == "h" else 1  # b at 90° (4-fold) or 120° (6-fold twice, 3-fold)
        b = a
        for _ in range(steps):
            b = turn @ b // gemmi.Op.DEN
        return np.array([a, b, c])
    return None


def _unique_axes(
    rotations: list[npt.NDArray[np.int64]], reduced: FloatArray
) -> list[npt.NDArray[np.int64]]:
    """Distinct rotation axes (one shortest lattice vector each), shortest first."""
    found: list[npt.NDArray[np.int64]] = []
    for rotation in rotations:
        axis = _axis(rotation, reduced)
        if not any(np.array_equal(axis, other) for other in found):
            found.append(axis)
    return sorted(found, key=lambda u: float(np.linalg.norm(u @ reduced)))


def _monoclinic_axes(two_fold: npt.NDArray[np.int64], reduced: FloatArray) -> npt.NDArray[np.int64]:
    """b along the 2-fold axis; a and c the shortest lattice vectors perpendicular to it
    that give a primitive or C-centred cell (the conventional mP / mC settings)."""
    b = _axis(two_fold, reduced)
    plane = [u for u in _lattice_vectors() if _reversed_by(two_fold, u)]
    plane.sort(key=lambda u: float(np.linalg.norm(u @ reduced)))
    settings = [
        np.array([first, b, second])
        for first, second in itertools.permutations(plane[:12], 2)
        if round(abs(float(np.linalg.det(np.array([first, b, second]))))) in (1, 2)
    ]
    settings = [axes for axes in settings if _centring(axes) in ("P", "C")]
    if not settings:
        raise ValueError("no monoclinic setting found")
    axes = min(
        settings,
        key=lambda m: float(np.linalg.norm(m[0] @ reduced) + np.linalg.norm(m[2] @ reduced)),
    )
    a, c = axes[0] @ reduced, axes[2] @ reduced
    if a @ c > 0:  # β ≥ 90°: turn a and b over (the centring stays C)
        axes = axes * np.array([[-1], [-1], [1]])
    return np.asarray(axes)


def _centring(axes: npt.NDArray[np.int64]) -> str:
    """Centring letter of the cell whose axes (rows, reduced-basis coefficients) are given."""
    points = round(abs(float(np.linalg.det(axes))))
    if points == 1:
        return "P"
    inverse = np.linalg.inv(axes.astype(np.float64))  # rows: reduced vectors in this basis
    translations: set[tuple[int, int, int]] = set()
    for combination in itertools.product(range(points), repeat=3):
        fractional = np.asarray(combination, dtype=np.float64) @ inverse
        a, b, c = (round(float(x) * 6) % 6 for x in fractional)
        wrapped = (a, b, c)
        if wrapped != (0, 0, 0):
            translations.add(wrapped)
    names = {
        frozenset({(3, 3, 0)}): "C",
        frozenset({(0, 3, 3)}): "A",
        frozenset({(3, 0, 3)}): "B",
        frozenset({(3, 3, 3)}): "I",
        frozenset({(3, 3, 0), (0, 3, 3), (3, 0, 3)}): "F",
        frozenset({(4, 2, 2), (2, 4, 4)}): "R",
    }
    return names.get(frozenset(translations), "?")


def bravais_lattice(basis_A: FloatArray, max_obliquity_deg: float = 3.0) -> Lattice:
    """The lattice spanned by ``basis_A`` in the conventional setting of its Bravais type:
    the highest lattice symmetry within ``max_obliquity_deg`` (gemmi), axes along its
    symmetry axes, ``aP`` (the Niggli cell) when nothing fits."""
    reduced = niggli_reduce(basis_A)
    group = gemmi.find_lattice_symmetry(gemmi.UnitCell(*cell_of(reduced)), "P", max_obliquity_deg)
    rotations = [_rotation_matrix(op) for op in group.sym_ops]
    rotations = [r for r in rotations if round(np.linalg.det(r / gemmi.Op.DEN)) == 1]
    family = {2: "m", 4: "o", 6: "hR", 8: "t", 12: "h", 24: "c"}.get(len(rotations), "a")
    try:
        axes = _conventional_axes(rotations, reduced, family)
    except (ValueError, KeyError, IndexError):
        axes = None
    if axes is None:
        return Lattice(reduced, "aP")
    centring = _centring(axes)
    if family == "hR" and centring != "R":  # the reverse setting: turn 180° about c
        axes = axes * np.array([[-1], [-1], [1]])
        centring = _centring(axes)
    conventional = _right_handed(axes.astype(np.float64) @ reduced)
    if family == "o" and centring in ("A", "B"):  # make the centred face the ab face
        conventional = np.roll(conventional, -1 if centring == "A" else 1, axis=0)
        centring = "C"
    elif family == "o" and centring == "P":
        conventional = _sorted_axes(conventional)
    bravais = f"{'h' if family == 'hR' else family}{centring}"
    if bravais not in BRAVAIS_TYPES or not _reduces_to(conventional, centring, reduced):
        return Lattice(reduced, "aP")
    return Lattice(conventional, bravais)


def _sorted_axes(basis: FloatArray) -> FloatArray:
    """Orthorhombic P axes ordered a ≤ b ≤ c (a cyclic or sign-changing permutation)."""
    order = np.argsort(np.linalg.norm(basis, axis=1))
    return _right_handed(basis[order])


def _reduces_to(conventional: FloatArray, centring: str, reduced: FloatArray) -> bool:
    """gemmi's check: the conventional cell with ``centring`` has the same Niggli cell."""
    vector = gemmi.GruberVector(gemmi.UnitCell(*cell_of(conventional)), centring)
    vector.niggli_reduce()
    found = np.array(vector.get_cell().parameters)
    expected = np.array(cell_of(reduced))
    return bool(
        np.allclose(found[:3], expected[:3], rtol=0.02)
        and np.allclose(found[3:], expected[3:], atol=3.0)
    )


@cache
def _unimodular() -> npt.NDArray[np.int64]:
    """Proper basis changes with coefficients −1, 0, 1 (``[n, 3, 3]``): those between the
    Niggli cells of one lattice that noise near a boundary of the reduction (90° or 60°
    angles, equal lengths) can produce."""
    entries = np.array(list(itertools.product((-1, 0, 1), repeat=9)), dtype=np.int64)
    matrices = entries.reshape(-1, 3, 3)
    determinants = np.rint(np.linalg.det(matrices.astype(np.float64)))
    return np.asarray(matrices[determinants == 1])


def match_reference(
    basis_A: FloatArray, reference: ReferenceCell, tolerance: float
) -> Lattice | None:
    """The lattice spanned by ``basis_A`` in the setting of ``reference``, or None when its
    reduced cell differs from the reference's by more than ``tolerance`` (relative, on
    the lengths of the reduced cell's edges and face diagonals)."""
    observed = niggli_reduce(basis_A)
    vector = gemmi.GruberVector(gemmi.UnitCell(*reference.cell), reference.centring, True)
    vector.niggli_reduce()
    change = _rotation_matrix(vector.change_of_basis) / gemmi.Op.DEN
    target = change.T @ reference.real_space_A
    candidates = _unimodular() @ observed
    distances = _metric_distances(candidates, target)
    best = int(np.argmin(distances))
    distance, candidate = float(distances[best]), candidates[best]
    if distance > tolerance:
        return None
    conventional = np.linalg.inv(change.T) @ candidate
    return Lattice(_right_handed(conventional), reference.bravais)


def _metric(basis: FloatArray) -> FloatArray:
    return np.asarray(basis @ basis.T)


def _edge_lengths(bases: FloatArray) -> FloatArray:
    """Lengths of a, b, c, a + b, b + c, a + c of each basis (``[..., 3, 3]`` → ``[..., 6]``)."""
    a, b, c = bases[..., 0, :], bases[..., 1, :], bases[..., 2, :]
    return np.stack([np.linalg.norm(v, axis=-1) for v in (a, b, c, a + b, b + c, a + c)], axis=-1)


def _metric_distances(bases: FloatArray, target: FloatArray) -> FloatArray:
    """Largest relative difference between the edge and face-diagonal lengths of each of
    ``bases`` and those of ``target``."""
    reference = _edge_lengths(target)
    return np.asarray(np.max(np.abs(_edge_lengths(bases) - reference) / reference, axis=-1))


def _family_of(reference: ReferenceCell) -> str:
    """Crystal family letter of a reference: from its space group when given, else from
    the symmetry of its cell (``-C`` alone)."""
    if reference.space_group_number is not None:
        system = gemmi.find_spacegroup_by_number(reference.space_group_number).crystal_system_str()
        return {
            "triclinic": "a",
            "monoclinic": "m",
            "orthorhombic": "o",
            "tetragonal": "t",
            "trigonal": "h",
            "hexagonal": "h",
            "cubic": "c",
        }[system]
    found = bravais_lattice(reference.real_space_A)
    return found.bravais[0]
