"""Small helpers shared by the rule families: strict timestamps, units, chains."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import h5py
import numpy as np

from jfconform.context import FileContext
from jfconform.units import Unit, parse_unit

_ISO_WITH_ZONE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
#: Longest depends_on chain we follow before calling it a loop.
MAX_CHAIN = 64


def parse_iso8601(text: str) -> datetime | None:
    """A tz-aware datetime for strict ISO 8601 text with an explicit zone, else ``None``."""
    if not _ISO_WITH_ZONE.match(text.strip()):
        return None
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def units_of(
    ctx: FileContext, obj: h5py.HLObject, name: str = "units"
) -> tuple[str | None, Unit | None]:
    """The ``units`` text and its parsed meaning (either may be ``None``)."""
    text = ctx.attr_text(obj, name)
    return text, (None if text is None else parse_unit(text))


def float_vector(value: object) -> np.ndarray | None:
    """A 1-D float array from an attribute value, ``None`` if it is not numeric."""
    try:
        array = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None
    return array


def leaf(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def parent_path(path: str) -> str:
    head = path.rstrip("/").rsplit("/", 1)[0]
    return head or "/"


def join(group_path: str, target: str) -> str:
    """Resolve a depends_on value relative to the group that holds it (NeXus §2.2)."""
    if target.startswith("/"):
        return target
    parts = [p for p in group_path.split("/") if p]
    for piece in target.split("/"):
        if piece in ("", "."):
            continue
        if piece == "..":
            if parts:
                parts.pop()
        else:
            parts.append(piece)
    return "/" + "/".join(parts)


@dataclass(frozen=True, slots=True)
class DependsOn:
    """One ``depends_on`` occurrence: a field of a group or an attribute of an axis."""

    where: str  # HDF5 path of the field, or of the axis dataset carrying the attribute
    value: str
    base_group: str  # the group relative paths resolve against


def all_depends_on(ctx: FileContext) -> Iterator[DependsOn]:
    """Every depends_on field and attribute in the file (computed once per file)."""
    if "depends_on" not in ctx.cache:
        ctx.cache["depends_on"] = list(_find_depends_on(ctx))
    return iter(ctx.cache["depends_on"])


def _find_depends_on(ctx: FileContext) -> Iterator[DependsOn]:
    for path, obj in ctx.walk():
        if isinstance(obj, h5py.Dataset):
            if leaf(path) == "depends_on" and obj.dtype.kind in "SUO":
                text = ctx.text(obj)
                if text is not None:
                    yield DependsOn(path, text, parent_path(path))
            attr = ctx.attr_text(obj, "depends_on")
            if attr is not None:
                yield DependsOn(path, attr, parent_path(path))


@dataclass(frozen=True, slots=True)
class Chain:
    """The axes a depends_on walk visited, and how it ended."""

    axes: tuple[str, ...]
    end: str  # "dot" | "missing" | "loop" | "too-long" | "not-dataset"
    bad_target: str | None = None


def walk_chain(ctx: FileContext, start: DependsOn) -> Chain:
    """Follow a chain from ``start``; bounded, so a cycle ends as ``loop``."""
    key = f"chain:{start.base_group}:{start.value}"
    if key not in ctx.cache:
        ctx.cache[key] = _walk_chain(ctx, start)
    return ctx.cache[key]


def _walk_chain(ctx: FileContext, start: DependsOn) -> Chain:
    axes: list[str] = []
    value, base = start.value, start.base_group
    while True:
        if value.strip() == ".":
            return Chain(tuple(axes), "dot")
        target = join(base, value.strip())
        if target in axes:
            return Chain(tuple(axes), "loop", target)
        if len(axes) >= MAX_CHAIN:
            return Chain(tuple(axes), "too-long", target)
        obj = ctx.get(target)
        if obj is None:
            return Chain(tuple(axes), "missing", target)
        if not isinstance(obj, h5py.Dataset):
            return Chain(tuple(axes), "not-dataset", target)
        axes.append(target)
        next_value = ctx.attr_text(obj, "depends_on")
        if next_value is None:
            return Chain(tuple(axes), "missing-attr", target)
        value, base = next_value, parent_path(target)


def rotation_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Right-handed (active) rotation by ``angle_rad`` about the unit vector ``axis``."""
    x, y, z = axis / np.linalg.norm(axis)
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    t = 1 - c
    return np.array(
        [
            [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
        ]
    )


def apply_chain(
    ctx: FileContext, axes: tuple[str, ...], point: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Move a lab point (m) through a chain, innermost axis first, at the first frame.

    Returns the moved point and the accumulated rotation, or ``None`` when an axis lacks
    what the computation needs (other rules report that).
    """
    rotation = np.eye(3)
    for axis_path in axes:
        axis = ctx.dataset(axis_path)
        if axis is None:
            return None
        kind = ctx.attr_text(axis, "transformation_type")
        vector = float_vector(ctx.attr(axis, "vector"))
        _, unit = units_of(ctx, axis)
        values = ctx.array(axis)
        if vector is None or vector.size != 3 or not np.linalg.norm(vector) or unit is None:
            return None
        if values is None or values.size == 0 or values.dtype.kind not in "iuf":
            return None
        amount = float(values.reshape(-1)[0]) * unit.to_si
        offset = np.zeros(3)
        raw_offset = ctx.attr(axis, "offset")
        if raw_offset is not None:
            offset_vector = float_vector(raw_offset)
            _, offset_unit = units_of(ctx, axis, "offset_units")
            if offset_vector is None or offset_vector.size != 3:
                return None
            offset = offset_vector * (offset_unit.to_si if offset_unit is not None else 1.0)
        direction = vector / np.linalg.norm(vector)
        if kind == "rotation":
            turn = rotation_matrix(direction, amount)
            point = turn @ point + offset
            rotation = turn @ rotation
        elif kind == "translation":
            point = point + amount * direction + offset
        else:
            return None
    return point, rotation
