"""The indexing part of the settings document, in the broker's vocabulary.

Three top-level keys of ``jfsim process``'s settings (:class:`jfsim.analysis.ProcessSettings`,
whose ``space_group_number`` (-S) gives the reference cell's centring):

    "indexing": {...IndexingSettings...},             the broker's model (PUT /config/indexing)
    "unit_cell": {"a": 79.1, ..., "gamma": 90} | null,  the broker's UnitCell (-C)
    "rotation_indexing": {"images": 30, "lattice_A": null}   two-pass rotation (-R[=N],
                                                        --force-rotation-lattice)

``indexing.algorithm`` is ``FFBIDX`` (known cell; needs a unit cell), ``FFT`` (de novo),
``FFTW`` (the same FFT method: jfsim's engines run it on the CPU or the GPU alike),
``Auto`` (FFBIDX when a unit cell is given, else FFT) or ``None``; the spot-finding
switch ``spot_finding.indexing`` off also turns indexing off.
``indexing.geom_refinement_algorithm`` is seed 003's ``-r``: ``BeamCenter`` =
``beam_and_lattice``, ``OrientationOnly`` = ``orientation``, ``None`` = ``none``.
``indexing.rotation_indexing`` true runs the two-pass rotation indexer on rotation data.
Fields of the broker's model that jfsim does not use: ``thread_count`` (``-N`` sets the
threads), ``blocking``, ``rotation_indexing_min_angular_range_deg`` and
``rotation_indexing_angular_stride_deg`` (the online single-pass indexer's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import gemmi
from jfjoch_client.models.indexing_settings import IndexingSettings
from jfjoch_client.models.unit_cell import UnitCell

from jfsim.analysis.errors import SettingsError

__all__ = [
    "ALGORITHMS",
    "DEFAULT_INDEXING",
    "DEFAULT_ROTATION_IMAGES",
    "INDEXING_KEYS",
    "IndexingConfig",
    "parse_space_group",
    "parse_unit_cell",
]

#: jfsim's defaults for the broker's required indexing fields (the broker's own defaults
#: where its model has them).
DEFAULT_INDEXING: dict[str, Any] = {
    "algorithm": "Auto",
    "fft_max_unit_cell_A": 250.0,
    "fft_min_unit_cell_A": 10.0,
    "fft_high_resolution_A": 2.0,
    "fft_num_vectors": 16384,
    "tolerance": 0.2,
    "thread_count": 1,
    "geom_refinement_algorithm": "BeamCenter",
    "unit_cell_dist_tolerance": 0.05,
    "viable_cell_min_spots": 10,
    "index_ice_rings": False,
    "rotation_indexing": False,
    "rotation_indexing_min_angular_range_deg": 20.0,
    "rotation_indexing_angular_stride_deg": 0.5,
    "blocking": True,
}
#: Images of the first pass of two-pass rotation indexing (seed 003: ``-R`` default 30).
DEFAULT_ROTATION_IMAGES = 30
#: ``-X`` values (case-insensitive) → the broker's ``IndexingAlgorithm``.
ALGORITHMS = {"ffbidx": "FFBIDX", "fft": "FFT", "fftw": "FFTW", "auto": "Auto", "none": "None"}
#: ``-r`` values → the broker's ``GeomRefinementAlgorithm``.
REFINEMENT_NAMES = {
    "none": "None",
    "orientation": "OrientationOnly",
    "beam_and_lattice": "BeamCenter",
}
#: The top-level keys of the settings document this module owns.
INDEXING_KEYS = ("indexing", "unit_cell", "rotation_indexing")
_ROTATION_KEYS = ("images", "lattice_A")


def parse_unit_cell(text: str, *, option: str = "-C") -> tuple[float, ...]:
    """``"a,b,c,alpha,beta,gamma"`` (Å, degrees; commas or spaces) → six numbers."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise SettingsError(
            f"{option} {text!r}: expected six numbers a,b,c,alpha,beta,gamma (Å, degrees), "
            "e.g. -C 79.1,79.1,37.9,90,90,90"
        )
    return values


def parse_space_group(text: str, *, option: str = "-S") -> int:
    """A space-group number (1–230) or a Hermann–Mauguin name gemmi knows → its number."""
    text = str(text).strip()
    group = None
    if text.isdigit():
        number = int(text)
        group = gemmi.find_spacegroup_by_number(number) if 1 <= number <= 230 else None
    else:
        group = gemmi.find_spacegroup_by_name(text)
    if group is None:
        raise SettingsError(
            f"{option} {text!r}: not a space group; give its number 1-230 or a name such as P43212"
        )
    return int(group.number)


def _parse_lattice(values: Any, *, option: str) -> tuple[float, ...]:
    if isinstance(values, str):
        parts = values.replace(",", " ").split()
    elif isinstance(values, Sequence):
        parts = list(values)
    else:
        parts = []
    try:
        numbers = tuple(float(v) for v in parts)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != 9 or not all(math.isfinite(v) for v in numbers):
        raise SettingsError(
            f"{option}: expected nine numbers, the real-space vectors a, b, c (Å) one after "
            f"another, got {values!r}"
        )
    a, b, c = numbers[0:3], numbers[3:6], numbers[6:9]
    volume = (
        a[0] * (b[1] * c[2] - b[2] * c[1])
        - a[1] * (b[0] * c[2] - b[2] * c[0])
        + a[2] * (b[0] * c[1] - b[1] * c[0])
    )
    if abs(volume) < 1.0:
        raise SettingsError(f"{option}: the vectors a, b, c span no cell (volume {volume:.3g} Å³)")
    return numbers


@dataclass(frozen=True, eq=False)
class IndexingConfig:
    """The indexing settings (see the module docstring)."""

    indexing: IndexingSettings = field(
        default_factory=lambda: IndexingSettings.model_validate(DEFAULT_INDEXING)
    )
    unit_cell: UnitCell | None = None
    rotation_images: int = DEFAULT_ROTATION_IMAGES
    rotation_lattice_A: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        algorithm = self.algorithm
        if algorithm == "ffbidx" and self.unit_cell is None:
            raise SettingsError(
                "-X ffbidx (indexing.algorithm FFBIDX) needs the unit cell: give -C "
                "a,b,c,alpha,beta,gamma, or -X fft to index without one"
            )
        if self.indexing.geom_refinement_algorithm.value == "Flex":
            raise SettingsError(
                "indexing.geom_refinement_algorithm Flex: not implemented by jfsim process; "
                "use BeamCenter, OrientationOnly or None (-r)"
            )
        if self.unit_cell is not None:
            self.check_cell()
        if self.rotation_images < 1:
            raise SettingsError(
                f"rotation_indexing.images (-R): must be >= 1, got {self.rotation_images}"
            )
        if self.indexing.fft_min_unit_cell_a >= self.indexing.fft_max_unit_cell_a:
            raise SettingsError("indexing.fft_min_unit_cell_A must be below fft_max_unit_cell_A")

    def check_cell(self, space_group_number: int | None = None) -> None:
        """Refuse a unit cell that closes no cell, or that is not a cell of the space group
        ``space_group_number`` (-S) when one is given."""
        cell = self.cell
        if cell is None:
            return
        text = ",".join(f"{v:g}" for v in cell)
        if min(cell[:3]) <= 0 or not all(0 < angle < 180 for angle in cell[3:]):
            raise SettingsError(
                f"unit_cell (-C) {text}: not a unit cell (lengths > 0 Å, angles that close a cell)"
            )
        unit_cell = gemmi.UnitCell(*cell)
        if not unit_cell.is_crystal():
            raise SettingsError(
                f"unit_cell (-C) {text}: not a unit cell (lengths > 0 Å, angles that close a cell)"
            )
        if space_group_number is not None:
            group = gemmi.find_spacegroup_by_number(space_group_number)
            if group is not None and not unit_cell.is_compatible_with_spacegroup(group, 1e-3):
                raise SettingsError(
                    f"unit_cell (-C) {text}: not a cell of space group {group.xhm()} "
                    f"({group.crystal_system_str()}); check -C and -S"
                )

    # -- views -----------------------------------------------------------------------------
    @property
    def algorithm(self) -> str:
        """``ffbidx``, ``fft``, ``auto`` or ``none`` (``FFTW`` is ``fft``)."""
        name = str(self.indexing.algorithm.value).lower()
        return "fft" if name == "fftw" else name

    @property
    def refinement(self) -> str:
        """``none``, ``orientation`` or ``beam_and_lattice``."""
        value = self.indexing.geom_refinement_algorithm.value
        return next(key for key, broker in REFINEMENT_NAMES.items() if broker == value)

    @property
    def cell(self) -> tuple[float, float, float, float, float, float] | None:
        if self.unit_cell is None:
            return None
        u = self.unit_cell
        return (u.a, u.b, u.c, u.alpha, u.beta, u.gamma)

    # -- documents -------------------------------------------------------------------------
    @classmethod
    def from_document(cls, document: Mapping[str, Any], source: str) -> IndexingConfig:
        """The indexing keys of a settings document (the others are not looked at)."""
        from jfsim.analysis.settings import _dump, _refuse_unknown_keys, _validate

        given = document.get("indexing", {})
        if not isinstance(given, Mapping):
            raise SettingsError(f"{source}: indexing: expected an object")
        _refuse_unknown_keys(IndexingSettings, given, f"{source}: indexing")
        indexing = _validate(
            IndexingSettings, {**_dump(cls().indexing), **given}, f"{source}: indexing"
        )
        cell = document.get("unit_cell")
        unit_cell = None
        if cell is not None:
            if not isinstance(cell, Mapping):
                raise SettingsError(f"{source}: unit_cell: expected an object a, b, c, alpha, ...")
            _refuse_unknown_keys(UnitCell, cell, f"{source}: unit_cell")
            unit_cell = _validate(UnitCell, cell, f"{source}: unit_cell")
        rotation = document.get("rotation_indexing") or {}
        if not isinstance(rotation, Mapping):
            raise SettingsError(f"{source}: rotation_indexing: expected an object")
        unknown = sorted(set(rotation) - set(_ROTATION_KEYS))
        if unknown:
            raise SettingsError(
                f"{source}: rotation_indexing: unknown key {unknown[0]!r} "
                f"(known: {', '.join(_ROTATION_KEYS)})"
            )
        images = rotation.get("images", DEFAULT_ROTATION_IMAGES)
        if not isinstance(images, int) or isinstance(images, bool):
            raise SettingsError(
                f"{source}: rotation_indexing.images: expected an integer, got {images!r}"
            )
        lattice = rotation.get("lattice_A")
        return cls(
            indexing=indexing,
            unit_cell=unit_cell,
            rotation_images=images,
            rotation_lattice_A=None
            if lattice is None
            else _parse_lattice(lattice, option=f"{source}: rotation_indexing.lattice_A"),
        )

    def as_dict(self) -> dict[str, Any]:
        from jfsim.analysis.settings import _dump

        return {
            "indexing": _dump(self.indexing),
            "unit_cell": None if self.unit_cell is None else _dump(self.unit_cell),
            "rotation_indexing": {
                "images": self.rotation_images,
                "lattice_A": None
                if self.rotation_lattice_A is None
                else list(self.rotation_lattice_A),
            },
        }

    def with_overrides(
        self,
        *,
        algorithm: str | None = None,
        unit_cell: str | None = None,
        refinement: str | None = None,
        two_pass_images: int | None = None,
        rotation_lattice: str | None = None,
    ) -> IndexingConfig:
        """Seed 003's options on top of these settings (``None`` = keep): ``-X``, ``-C``,
        ``-r``, ``-R[=N]``, ``--force-rotation-lattice``."""
        from jfsim.analysis.settings import _dump, _validate

        changes: dict[str, Any] = {}
        if algorithm is not None:
            key = algorithm.lower()
            if key not in ALGORITHMS:
                raise SettingsError(
                    f"-X {algorithm!r}: use one of {', '.join(ALGORITHMS)} (pixelrefine and "
                    "others are not implemented)"
                )
            changes["algorithm"] = ALGORITHMS[key]
        if refinement is not None:
            if refinement not in REFINEMENT_NAMES:
                raise SettingsError(
                    f"-r {refinement!r}: use one of {', '.join(REFINEMENT_NAMES)} "
                    "(pixelrefine is not implemented)"
                )
            changes["geom_refinement_algorithm"] = REFINEMENT_NAMES[refinement]
        if two_pass_images is not None or rotation_lattice is not None:
            changes["rotation_indexing"] = True
        indexing = self.indexing
        if changes:
            indexing = _validate(
                IndexingSettings, {**_dump(indexing), **changes}, "command line: indexing"
            )
        cell = self.unit_cell
        if unit_cell is not None:
            a, b, c, alpha, beta, gamma = parse_unit_cell(unit_cell)
            cell = _validate(
                UnitCell,
                {"a": a, "b": b, "c": c, "alpha": alpha, "beta": beta, "gamma": gamma},
                "-C",
            )
        return replace(
            self,
            indexing=indexing,
            unit_cell=cell,
            rotation_images=self.rotation_images if two_pass_images is None else two_pass_images,
            rotation_lattice_A=self.rotation_lattice_A
            if rotation_lattice is None
            else _parse_lattice(rotation_lattice, option="--force-rotation-lattice"),
        )
