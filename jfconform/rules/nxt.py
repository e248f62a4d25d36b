"""NXtransformations rules (NXT): depends_on chains and axes (NeXus NXtransformations)."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from jfconform import chains
from jfconform.context import FileContext, leaf
from jfconform.field_rules import (
    DETECTOR,
    MODULE,
    NOT_DOT,
    RECOMMENDED,
    Field,
    FieldRule,
    register_rows,
)
from jfconform.model import E, I, Issue, W
from jfconform.registry import rule
from jfconform.units import ANGLE, LENGTH

FIELD_RULES = (
    FieldRule(
        "NXT-008",
        "detector-depends-on",
        W,
        Field(DETECTOR, "depends_on", need=RECOMMENDED, not_dot=True),
        """NXdetector depends_on present and not '.'

        Spec: NXmx NXdetector/depends_on; DIALS
        Hint: write detector/depends_on naming the innermost detector axis""",
    ),
    FieldRule(
        "NXT-009",
        "pixel-direction-depends-on",
        W,
        Field(
            MODULE,
            ("fast_pixel_direction", "slow_pixel_direction"),
            attributes=(("depends_on", NOT_DOT),),
        ),
        """Pixel-direction depends_on is not '.'

        Spec: dxtbx single-panel assertion
        Hint: point the pixel directions' depends_on at module_offset or the detector chain""",
    ),
)
register_rows(FIELD_RULES)


def _chain_axes(ctx: FileContext) -> Iterator[tuple[str, h5py.Dataset | None]]:
    """Every axis any chain reaches, once, with its dataset."""
    for axis_path in chains.axes_in_chains(ctx):
        yield axis_path, ctx.dataset(axis_path)


@rule("NXT-001", "depends-on-unresolved", E)
def depends_on_unresolved(ctx: FileContext) -> Iterator[Issue]:
    """Every depends_on is '.' or resolves to an existing dataset

    Spec: NXtransformations depends_on; DIALS nxmx
    Hint: use an absolute path (/entry/...) to an existing axis dataset, or '.'
    """
    for occurrence in chains.occurrences(ctx):
        value = occurrence.value.strip()
        if value == ".":
            continue
        target = chains.join(occurrence.base_group, value)
        obj = ctx.get(target)
        if obj is None:
            yield Issue(
                occurrence.where, f"depends_on {value!r} resolves to {target}, which does not exist"
            )
        elif not isinstance(obj, h5py.Dataset):
            yield Issue(occurrence.where, f"depends_on {value!r} names a group, not an axis")


@rule("NXT-002", "chain-not-terminated", E)
def chain_not_terminated(ctx: FileContext) -> Iterator[Issue]:
    """Every chain ends at '.' with no cycle (bounded walk)

    Spec: NXtransformations chain; DIALS hangs on loops
    Hint: end the chain with depends_on='.' on the outermost axis and remove the loop
    """
    reported: set[frozenset[str]] = set()
    for occurrence in chains.occurrences(ctx):
        chain = chains.walk(ctx, occurrence)
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


@rule("NXT-003", "transformation-type", E)
def transformation_type(ctx: FileContext) -> Iterator[Issue]:
    """Axes in a chain have transformation_type translation or rotation

    Spec: NXtransformations @transformation_type
    Hint: set @transformation_type to 'translation' or 'rotation'
    """
    for axis_path, axis in _chain_axes(ctx):
        kind = ctx.attr_text(axis, "transformation_type") if axis is not None else None
        if kind not in ("translation", "rotation"):
            yield Issue(axis_path, f"transformation_type is {kind!r}")


@rule("NXT-004", "axis-vector", E)
def axis_vector(ctx: FileContext) -> Iterator[Issue]:
    """vector present with 3 finite numbers (E); unit length (W)

    Spec: NXtransformations @vector (mandatory)
    Hint: write @vector as three floats of unit length
    """
    for axis_path, axis in _chain_axes(ctx):
        raw = ctx.attr(axis, "vector") if axis is not None else None
        vector = None if raw is None else chains.float_vector(raw)
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


@rule("NXT-005", "axis-units", E)
def axis_units(ctx: FileContext) -> Iterator[Issue]:
    """Axis units present, parseable, length for translations, angle for rotations

    Spec: NXtransformations units (NX_TRANSFORMATION)
    Hint: translations in m or mm, rotations in deg or rad
    """
    wanted = {"translation": LENGTH, "rotation": ANGLE}
    for axis_path, axis in _chain_axes(ctx):
        kind = ctx.attr_text(axis, "transformation_type") if axis is not None else None
        if kind not in wanted:
            continue
        text, unit = ctx.units(axis)
        if text is None:
            values = ctx.value(axis)
            if values is not None and np.all(np.asarray(values) == 0):
                continue  # DIALS tolerates missing units on all-zero axes
            yield Issue(axis_path, f"{kind} axis has no units")
        elif unit is None or unit.dimension != wanted[kind]:
            yield Issue(axis_path, f"{kind} axis has units {text!r}, expected a {wanted[kind]}")


@rule("NXT-006", "axis-offset", W)
def axis_offset(ctx: FileContext) -> Iterator[Issue]:
    """offset (if present) has 3 numbers and offset_units (length)

    Spec: NXtransformations @offset/@offset_units
    Hint: write @offset as three numbers and @offset_units (e.g. 'm')
    """
    for axis_path, axis in _chain_axes(ctx):
        raw = ctx.attr(axis, "offset") if axis is not None else None
        if raw is None:
            continue
        offset = chains.float_vector(raw)
        if offset is None or offset.size != 3:
            yield Issue(axis_path, f"offset {raw!r} is not three numbers")
            continue
        text, unit = ctx.units(axis, "offset_units")
        if text is None and np.any(offset != 0):
            yield Issue(axis_path, "non-zero offset without offset_units")
        elif text is not None and (unit is None or unit.dimension != LENGTH):
            yield Issue(axis_path, f"offset_units {text!r} is not a length")


@rule("NXT-007", "axis-length", E)
def axis_length(ctx: FileContext) -> Iterator[Issue]:
    """Axis values have length 1 or nP; AXISNAME_end same shape and units

    Spec: NXtransformations values [1] or [nP]; AXISNAME_end
    Hint: write one value per frame (or one value); make <axis>_end match it
    """
    n = ctx.n_frames
    for axis_path, axis in _chain_axes(ctx):
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


def _lab_direction(ctx: FileContext, dataset: h5py.Dataset) -> np.ndarray | None:
    """A pixel direction in the lab frame: its vector turned by the chain it depends on."""
    vector = chains.float_vector(ctx.attr(dataset, "vector"))
    placed = chains.transform(ctx, chains.walk(ctx, chains.of_axis(ctx, dataset)))
    if vector is None or vector.size != 3 or not np.linalg.norm(vector) or placed is None:
        return None
    direction = placed.rotation @ vector
    return np.asarray(direction / np.linalg.norm(direction))


@rule("NXT-010", "pixel-directions-geometry", W)
def pixel_directions_geometry(ctx: FileContext) -> Iterator[Issue]:
    """Fast and slow directions (after rotations) are orthogonal, not along the beam

    Spec: jfconform's own check (detector geometry sanity)
    Hint: check the pixel-direction vectors: fast ⟂ slow, both across the beam (z)
    """
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


@rule("NXT-011", "several-scan-rotations", I)
def several_scan_rotations(ctx: FileContext) -> Iterator[Issue]:
    """At most one varying rotation axis in the sample chain

    Spec: dxtbx (one scan axis)
    Hint: dxtbx supports a single scan axis
    """
    for sample in ctx.samples:
        start = chains.of_group(ctx, sample)
        if start is None:
            continue
        moving = []
        for axis_path in chains.walk(ctx, start).axes:
            axis = ctx.dataset(axis_path)
            if axis is not None and ctx.attr_text(axis, "transformation_type") == "rotation":
                values = ctx.value(axis)
                if values is not None and np.ptp(np.asarray(values, dtype=float)) > 0:
                    moving.append(leaf(axis_path))
        if len(moving) > 1:
            yield Issue(start.where, f"{len(moving)} rotation axes vary: {', '.join(moving)}")
