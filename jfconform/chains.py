"""depends_on chains: where they start, which axes they visit, and where they place things.

NeXus places the sample, the detector and each module with a chain of NXtransformations
axes: ``depends_on`` names the innermost axis, each axis's ``@depends_on`` the next, and
``"."`` ends the chain. Every rule that follows a chain uses :func:`walk` (bounded, so a
loop ends as ``loop``) and every rule that needs the geometry uses :func:`transform`, which
turns a chain into one rotation and translation at the first frame. Results are memoised
per file, so the rules share the walks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import h5py
import numpy as np

from jfconform.context import FileContext, leaf, parent_path

#: Longest chain we follow before calling it a loop.
MAX_CHAIN = 64


def join(group_path: str, target: str) -> str:
    """Resolve a depends_on value relative to the group that holds it (NeXus NXtransformations)."""
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


@dataclass(frozen=True, slots=True)
class Chain:
    """The axes a depends_on walk visited, and how it ended."""

    axes: tuple[str, ...]
    end: str  # "dot" | "missing" | "missing-attr" | "loop" | "too-long" | "not-dataset"
    bad_target: str | None = None


def occurrences(ctx: FileContext) -> list[DependsOn]:
    """Every depends_on field and attribute in the file (found once per file)."""
    if "depends_on" not in ctx.cache:
        ctx.cache["depends_on"] = list(_find_depends_on(ctx))
    return list(ctx.cache["depends_on"])


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


def of_group(ctx: FileContext, group: h5py.Group) -> DependsOn | None:
    """Where a group's ``depends_on`` field starts its chain; ``None`` without a readable one."""
    text = ctx.text(ctx.dataset("depends_on", group))
    return None if text is None else DependsOn(f"{group.name}/depends_on", text, group.name)


def of_axis(ctx: FileContext, axis: h5py.Dataset) -> DependsOn:
    """Where an axis's ``@depends_on`` leads (``"."`` when it has none)."""
    text = ctx.attr_text(axis, "depends_on") or "."
    return DependsOn(axis.name, text, parent_path(axis.name))


def walk(ctx: FileContext, start: DependsOn) -> Chain:
    """Follow a chain from ``start``; bounded, so a cycle ends as ``loop``."""
    key = f"chain:{start.base_group}:{start.value}"
    if key not in ctx.cache:
        ctx.cache[key] = _walk(ctx, start)
    chain: Chain = ctx.cache[key]
    return chain


def _walk(ctx: FileContext, start: DependsOn) -> Chain:
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


def axes_in_chains(ctx: FileContext) -> list[str]:
    """Every axis reached by any depends_on chain in the file, once, in walk order."""
    if "chain_axes" not in ctx.cache:
        seen: dict[str, None] = {}
        for start in occurrences(ctx):
            for axis in walk(ctx, start).axes:
                seen.setdefault(axis, None)
        ctx.cache["chain_axes"] = list(seen)
    return list(ctx.cache["chain_axes"])


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


def float_vector(value: object) -> np.ndarray | None:
    """A 1-D float array from an attribute value, ``None`` if it is not numeric."""
    try:
        return np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Transform:
    """Where a chain puts its object at the first frame: ``x_lab = rotation @ x + shift_m``."""

    rotation: np.ndarray  # 3 × 3
    shift_m: np.ndarray  # 3, metres

    def place(self, point_m: np.ndarray) -> np.ndarray:
        return np.asarray(self.rotation @ point_m + self.shift_m)


def transform(ctx: FileContext, chain: Chain) -> Transform | None:
    """The motion a complete chain describes at the first frame, innermost axis first;
    ``None`` when the chain does not end at ``"."`` or an axis lacks what the computation
    needs (a type, a 3-vector, units, a numeric value, a readable offset: other rules
    report those)."""
    if chain.end != "dot":
        return None
    rotation, shift = np.eye(3), np.zeros(3)
    for axis_path in chain.axes:
        motion = _axis_motion(ctx, axis_path)
        if motion is None:
            return None
        turn, offset_m, step_m = motion
        rotation, shift = turn @ rotation, turn @ shift + offset_m + step_m
    return Transform(rotation, shift)


def _axis_motion(
    ctx: FileContext, axis_path: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(rotation, offset in m, translation in m) of one axis at its first value."""
    axis = ctx.dataset(axis_path)
    if axis is None:
        return None
    vector = float_vector(ctx.attr(axis, "vector"))
    _, unit = ctx.units(axis)
    values = ctx.array(axis)
    if vector is None or vector.size != 3 or not np.linalg.norm(vector) or unit is None:
        return None
    if values is None or values.size == 0 or values.dtype.kind not in "iuf":
        return None
    amount = float(values.reshape(-1)[0]) * unit.to_si
    offset = np.zeros(3)
    if ctx.attr(axis, "offset") is not None:
        offset_vector = float_vector(ctx.attr(axis, "offset"))
        _, offset_unit = ctx.units(axis, "offset_units")
        if offset_vector is None or offset_vector.size != 3:
            return None
        offset = offset_vector * (offset_unit.to_si if offset_unit is not None else 1.0)
    direction = vector / np.linalg.norm(vector)
    kind = ctx.attr_text(axis, "transformation_type")
    if kind == "rotation":
        return rotation_matrix(direction, amount), offset, np.zeros(3)
    if kind == "translation":
        return np.eye(3), offset, amount * direction
    return None
