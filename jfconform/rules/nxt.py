"""NXtransformations rules (NXT): depends_on chains and axes, conformance.md §2 and §7.3."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from jfconform.context import FileContext
from jfconform.model import E, I, Issue, W
from jfconform.registry import rule
from jfconform.rules._common import (
    DependsOn,
    all_depends_on,
    float_vector,
    join,
    leaf,
    rotation_matrix,
    units_of,
    walk_chain,
)
from jfconform.units import ANGLE, LENGTH


def _chain_axes(ctx: FileContext) -> list[str]:
    """Every axis reached by any depends_on chain in the file, once, in walk order."""
    if "chain_axes" not in ctx.cache:
        seen: dict[str, None] = {}
        for start in all_depends_on(ctx):
            for axis in walk_chain(ctx, start).axes:
                seen.setdefault(axis, None)
        ctx.cache["chain_axes"] = list(seen)
    return list(ctx.cache["chain_axes"])


@rule(
    "NXT-001",
    "depends-on-unresolved",
    E,
    spec="NXtransformations depends_on; DIALS nxmx",
    summary="Every depends_on is '.' or resolves to an existing dataset",
    hint="use an absolute path (/entry/...) to an existing axis dataset, or '.'",
)
def depends_on_unresolved(ctx: FileContext) -> Iterator[Issue]:
    for occurrence in all_depends_on(ctx):
        value = occurrence.value.strip()
        if value == ".":
            continue
        target = join(occurrence.base_group, value)
        obj = ctx.get(target)
        if obj is None:
            yield Issue(
                occurrence.where, f"depends_on {value!r} resolves to {target}, which does not exist"
            )
        elif not isinstance(obj, h5py.Dataset):
            yield Issue(occurrence.where, f"depends_on {value!r} names a group, not an axis")


@rule(
    "NXT-002",
    "chain-not-terminated",
    E,
    spec="NXtransformations chain; DIALS hangs on loops",
    summary="Every chain ends at '.' with no cycle (bounded walk)",
    hint="end the chain with depends_on='.' on the outermost axis and remove the loop",
)
def chain_not_terminated(ctx: FileContext) -> Iterator[Issue]:
    reported: set[frozenset[str]] = set()
    for occurrence in all_depends_on(ctx):
        chain = walk_chain(ctx, occurrence)
        if chain.end in ("dot", "missing", "not-dataset"):
            continue
        key = frozenset(chain.axes)
        if key in reported:
            continue
        reported.add(key)
        if chain.end == "loop":
            yield Issue(occurrence.where, f"depends_on chain loops back to {chain.bad_target}")
        elif chain.end == "too-long":
            yield Issue(occurrence.where, "depends_on chain is longer than 64 axes")
        else:
            yield Issue(
                occurrence.where,
                f"axis {chain.bad_target} has no depends_on "
                "attribute, so the chain never reaches '.'",
            )


@rule(
    "NXT-003",
    "transformation-type",
    E,
    spec="NXtransformations @transformation_type",
    summary="Axes in a chain have transformation_type translation or rotation",
    hint="set @transformation_type to 'translation' or 'rotation'",
)
def transformation_type(ctx: FileContext) -> Iterator[Issue]:
    for axis_path in _chain_axes(ctx):
        axis = ctx.dataset(axis_path)
        kind = ctx.attr_text(axis, "transformation_type") if axis is not None else None
        if kind not in ("translation", "rotation"):
            yield Issue(axis_path, f"transformation_type is {kind!r}")


@rule(
    "NXT-004",
    "axis-vector",
    E,
    spec="NXtransformations @vector (mandatory)",
    summary="vector present with 3 finite numbers (E); unit length (W)",
    hint="write @vector as three floats of unit length",
)
def axis_vector(ctx: FileContext) -> Iterator[Issue]:
    for axis_path in _chain_axes(ctx):
        axis = ctx.dataset(axis_path)
        raw = ctx.attr(axis, "vector") if axis is not None else None
        vector = None if raw is None else float_vector(raw)
        if vector is None:
            yield Issue(axis_path, "axis has no numeric vector attribute")
        elif vector.size != 3 or not np.isfinite(vector).all():
            yield Issue(axis_path, f"vector {vector.tolist()} is not three finite numbers")
        elif abs(np.linalg.norm(vector) - 1.0) > 1e-6:
            yield Issue(
                axis_path,
                f"vector {vector.tolist()} has length {np.linalg.norm(vector):.6g}, not 1",
                severity=W,
            )


@rule(
    "NXT-005",
    "axis-units",
    E,
    spec="NXtransformations units (NX_TRANSFORMATION)",
    summary="Axis units present, parseable, length for translations, angle for rotations",
    hint="translations in m or mm, rotations in deg or rad",
)
def axis_units(ctx: FileContext) -> Iterator[Issue]:
    wanted = {"translation": LENGTH, "rotation": ANGLE}
    for axis_path in _chain_axes(ctx):
        axis = ctx.dataset(axis_path)
        kind = ctx.attr_text(axis, "transformation_type") if axis is not None else None
        if kind not in wanted:
            continue
        text, unit = units_of(ctx, axis)
        if text is None:
            values = ctx.value(axis)
            if values is not None and np.all(np.asarray(values) == 0):
                continue  # DIALS tolerates missing units on all-zero axes
            yield Issue(axis_path, f"{kind} axis has no units")
        elif unit is None or unit.dimension != wanted[kind]:
            yield Issue(axis_path, f"{kind} axis has units {text!r}, expected a {wanted[kind]}")


@rule(
    "NXT-006",
    "axis-offset",
    W,
    spec="NXtransformations @offset/@offset_units",
    summary="offset (if present) has 3 numbers and offset_units (length)",
    hint="write @offset as three numbers and @offset_units (e.g. 'm')",
)
def axis_offset(ctx: FileContext) -> Iterator[Issue]:
    for axis_path in _chain_axes(ctx):
        axis = ctx.dataset(axis_path)
        raw = ctx.attr(axis, "offset") if axis is not None else None
        if raw is None:
            continue
        offset = float_vector(raw)
        if offset is None or offset.size != 3:
            yield Issue(axis_path, f"offset {raw!r} is not three numbers")
            continue
        text, unit = units_of(ctx, axis, "offset_units")
        if text is None and np.any(offset != 0):
            yield Issue(axis_path, "non-zero offset without offset_units")
        elif text is not None and (unit is None or unit.dimension != LENGTH):
            yield Issue(axis_path, f"offset_units {text!r} is not a length")


@rule(
    "NXT-007",
    "axis-length",
    E,
    spec="NXtransformations values [1] or [nP]; AXISNAME_end",
    summary="Axis values have length 1 or nP; AXISNAME_end same shape and units",
    hint="write one value per frame (or one value); make <axis>_end match it",
)
def axis_length(ctx: FileContext) -> Iterator[Issue]:
    n = ctx.n_frames
    for axis_path in _chain_axes(ctx):
        axis = ctx.dataset(axis_path)
        if axis is None:
            continue
        if n and axis.size not in (1, n):
            yield Issue(axis_path, f"axis has {axis.size} values; expected 1 or {n} (frames)")
        end = ctx.dataset(f"{axis_path}_end")
        if end is not None:
            if end.shape != axis.shape:
                yield Issue(end.name, f"shape {end.shape} differs from the axis {axis.shape}")
            if ctx.attr_text(end, "units") != ctx.attr_text(axis, "units"):
                yield Issue(end.name, "units differ from the axis")


@rule(
    "NXT-008",
    "detector-depends-on",
    W,
    spec="NXmx NXdetector/depends_on; DIALS",
    summary="NXdetector depends_on present and not '.'",
    hint="write detector/depends_on naming the innermost detector axis",
)
def detector_depends_on(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        dataset = ctx.dataset("depends_on", detector)
        text = ctx.text(dataset)
        if dataset is None:
            yield Issue(f"{detector.name}/depends_on", "detector has no depends_on")
        elif text is None or text.strip() == ".":
            yield Issue(dataset.name, f"detector depends_on is {text!r}")


@rule(
    "NXT-009",
    "pixel-direction-depends-on",
    W,
    spec="dxtbx single-panel assertion",
    summary="Pixel-direction depends_on is not '.'",
    hint="point the pixel directions' depends_on at module_offset or the detector chain",
)
def pixel_direction_depends_on(ctx: FileContext) -> Iterator[Issue]:
    for module in ctx.modules:
        for name in ("fast_pixel_direction", "slow_pixel_direction"):
            dataset = ctx.dataset(name, module)
            if dataset is not None and ctx.attr_text(dataset, "depends_on") in (".", None):
                yield Issue(dataset.name, f"{name} depends_on is '.' or missing")


def _lab_direction(ctx: FileContext, dataset: h5py.Dataset) -> np.ndarray | None:
    vector = float_vector(ctx.attr(dataset, "vector"))
    if vector is None or vector.size != 3:
        return None
    direction = vector.copy()
    start = DependsOn(
        dataset.name, ctx.attr_text(dataset, "depends_on") or ".", dataset.parent.name
    )
    for axis_path in walk_chain(ctx, start).axes:
        axis = ctx.dataset(axis_path)
        if axis is None or ctx.attr_text(axis, "transformation_type") != "rotation":
            continue
        axis_vector = float_vector(ctx.attr(axis, "vector"))
        _, unit = units_of(ctx, axis)
        values = ctx.value(axis)
        if axis_vector is None or axis_vector.size != 3 or unit is None or values is None:
            return None
        angle = float(np.asarray(values, dtype=float).reshape(-1)[0]) * unit.to_si
        direction = rotation_matrix(axis_vector, angle) @ direction
    return direction / np.linalg.norm(direction)


@rule(
    "NXT-010",
    "pixel-directions-geometry",
    W,
    spec="[ours] detector geometry sanity",
    summary="Fast and slow directions (after rotations) are orthogonal, not along the beam",
    hint="check the pixel-direction vectors: fast ⟂ slow, both across the beam (z)",
)
def pixel_directions_geometry(ctx: FileContext) -> Iterator[Issue]:
    for module in ctx.modules:
        fast, slow = (
            ctx.dataset(n, module) for n in ("fast_pixel_direction", "slow_pixel_direction")
        )
        if fast is None or slow is None:
            continue
        f, s = _lab_direction(ctx, fast), _lab_direction(ctx, slow)
        if f is None or s is None:
            continue
        if abs(float(f @ s)) > 1e-3:
            yield Issue(
                module.name,
                f"fast {f.round(4).tolist()} and slow {s.round(4).tolist()} are not orthogonal",
            )
        if abs(np.cross(f, s) @ np.array([0.0, 0.0, 1.0])) < 1e-3:
            yield Issue(module.name, "the detector plane contains the beam direction")


@rule(
    "NXT-011",
    "several-scan-rotations",
    I,
    spec="dxtbx (one scan axis)",
    summary="At most one varying rotation axis in the sample chain",
    hint="dxtbx supports a single scan axis",
)
def several_scan_rotations(ctx: FileContext) -> Iterator[Issue]:
    for sample in ctx.in_entry("NXsample"):
        dep = ctx.dataset("depends_on", sample)
        text = ctx.text(dep)
        if text is None:
            continue
        moving = []
        for axis_path in walk_chain(ctx, DependsOn(dep.name, text, sample.name)).axes:
            axis = ctx.dataset(axis_path)
            if axis is not None and ctx.attr_text(axis, "transformation_type") == "rotation":
                values = ctx.value(axis)
                if values is not None and np.ptp(np.asarray(values, dtype=float)) > 0:
                    moving.append(leaf(axis_path))
        if len(moving) > 1:
            yield Issue(dep.name, f"{len(moving)} rotation axes vary: {', '.join(moving)}")
