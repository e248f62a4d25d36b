"""NXreflections rules (NXR) for /entry/reflections, conformance.md §3 and §7.4."""

from __future__ import annotations

import re
from collections.abc import Iterator

import h5py
import numpy as np

from jfconform.context import FileContext
from jfconform.model import E, I, Issue, W
from jfconform.registry import rule
from jfconform.units import PIXEL, parse_unit

IMAGE_GROUP = re.compile(r"^image_(\d{6})$")
BASE_REQUIRED = (
    "h",
    "k",
    "l",
    "id",
    "reflection_id",
    "entering",
    "det_module",
    "flags",
    "d",
    "partiality",
    "predicted_frame",
    "predicted_x",
    "predicted_y",
    "predicted_phi",
    "predicted_px_x",
    "predicted_px_y",
    "observed_frame",
    "observed_px_x",
    "observed_px_y",
    "observed_phi",
    "observed_x",
    "observed_y",
    "bounding_box",
    "background_mean",
    "int_sum",
    "lp",
)
EXTENSIONS = ("int_err", "delta_phi", "zeta", "image_scale_corr")


def reflection_groups(ctx: FileContext) -> list[tuple[str, h5py.Group]]:
    """(name, group) for each member group of /entry/reflections, in name order."""
    root = None if ctx.entry is None else ctx.group("reflections", ctx.entry)
    if root is None:
        return []
    found = []
    for name in sorted(ctx.member_names(root)):
        group = ctx.group(name, root)
        if group is not None:
            found.append((name, group))
    return found


def _columns(ctx: FileContext, group: h5py.Group) -> dict[str, h5py.Dataset]:
    return {n: d for n in ctx.member_names(group) if (d := ctx.dataset(n, group)) is not None}


@rule(
    "NXR-001",
    "reflections-class",
    E,
    spec="Jungfraujoch HDF5.md §4.2",
    summary="image_NNNNNN groups carry NX_class = NXreflections",
    hint="set NX_class='NXreflections' on each per-image reflection group",
)
def reflections_class(ctx: FileContext) -> Iterator[Issue]:
    for _name, group in reflection_groups(ctx):
        if ctx.nx_class(group) != "NXreflections":
            yield Issue(group.name, f"NX_class is {ctx.nx_class(group)!r}, not NXreflections")


@rule(
    "NXR-002",
    "reflections-column-length",
    E,
    spec="NXreflections (all columns [n])",
    summary="All columns 1-D with equal length (bounding_box [n, 6])",
    hint="write every column with one entry per reflection",
)
def reflections_column_length(ctx: FileContext) -> Iterator[Issue]:
    for _name, group in reflection_groups(ctx):
        lengths: dict[int, list[str]] = {}
        for name, dataset in _columns(ctx, group).items():
            if name == "bounding_box":
                if dataset.ndim != 2 or dataset.shape[1] != 6:
                    yield Issue(dataset.name, f"bounding_box shape {dataset.shape}, not [n, 6]")
                    continue
            elif dataset.ndim != 1:
                yield Issue(dataset.name, f"column {name} has rank {dataset.ndim}, expected 1")
                continue
            lengths.setdefault(dataset.shape[0], []).append(name)
        if len(lengths) > 1:
            summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(lengths.items()))
            yield Issue(group.name, f"columns have different lengths ({summary})")


@rule(
    "NXR-003",
    "miller-not-integer",
    W,
    spec="NXreflections h, k, l",
    summary="h, k, l numeric and integer-valued",
    hint="store Miller indices as integers",
)
def miller_not_integer(ctx: FileContext) -> Iterator[Issue]:
    for _name, group in reflection_groups(ctx):
        for axis in ("h", "k", "l"):
            dataset = ctx.dataset(axis, group)
            if dataset is None:
                continue
            if dataset.dtype.kind not in "iuf":
                yield Issue(dataset.name, f"{axis} is not numeric ({dataset.dtype})")
            elif dataset.dtype.kind == "f":
                values = ctx.value(dataset)
                if values is not None and (np.asarray(values) % 1 != 0).any():
                    yield Issue(dataset.name, f"{axis} holds non-integer values")


@rule(
    "NXR-004",
    "reflections-base-columns",
    I,
    spec="NXreflections minOccurs=1 columns",
    summary="Base-class minOccurs=1 columns absent (listed once per file)",
    hint="optional for Jungfraujoch-style tables; add them for generic NXreflections readers",
)
def reflections_base_columns(ctx: FileContext) -> Iterator[Issue]:
    groups = reflection_groups(ctx)
    if not groups:
        return
    missing: set[str] = set()
    for _name, group in groups:
        missing |= set(BASE_REQUIRED) - set(ctx.member_names(group))
    if missing:
        yield Issue(
            groups[0][1].parent.name,
            f"{len(groups)} groups lack base-class columns: {', '.join(sorted(missing))}",
        )


@rule(
    "NXR-005",
    "reflections-pixel-lengths",
    W,
    spec="NXreflections predicted_x (NX_LENGTH)",
    summary="predicted_x/_y, observed_x/_y hold lengths, not pixels",
    hint="store pixel positions as predicted_px_x/_y and observed_px_x/_y",
)
def reflections_pixel_lengths(ctx: FileContext) -> Iterator[Issue]:
    for _name, group in reflection_groups(ctx):
        for name in ("predicted_x", "predicted_y", "observed_x", "observed_y"):
            dataset = ctx.dataset(name, group)
            if dataset is None:
                continue
            unit = parse_unit(ctx.attr_text(dataset, "units") or "")
            if unit is None or unit.dimension == PIXEL:
                yield Issue(dataset.name, f"{name} is in pixels; NXreflections means a length")


@rule(
    "NXR-006",
    "reflections-extension-columns",
    I,
    spec="Jungfraujoch HDF5.md §4.2",
    summary="Non-standard columns (int_err, delta_phi, zeta, image_scale_corr) noted",
    hint="int_err's standard name is int_sum_errors",
)
def reflections_extension_columns(ctx: FileContext) -> Iterator[Issue]:
    used: set[str] = set()
    for _name, group in reflection_groups(ctx):
        used |= set(EXTENSIONS) & set(ctx.member_names(group))
    if used:
        yield Issue("/entry/reflections", f"non-standard columns: {', '.join(sorted(used))}")


@rule(
    "NXR-007",
    "observed-frame-mismatch",
    W,
    spec="Jungfraujoch HDF5.md §4.2 (observed_frame)",
    summary="observed_frame is consistent with the image number in the group name",
    hint="image_NNNNNN holds reflections of frame NNNNNN-1 (0-based observed_frame)",
)
def observed_frame_mismatch(ctx: FileContext) -> Iterator[Issue]:
    for name, group in reflection_groups(ctx):
        match = IMAGE_GROUP.match(name)
        dataset = ctx.dataset("observed_frame", group)
        if match is None or dataset is None or dataset.dtype.kind not in "iuf":
            continue
        values = ctx.value(dataset)
        if values is None or np.asarray(values).size == 0:
            continue
        frame = int(match.group(1)) - 1
        if (np.abs(np.asarray(values, dtype=float) - frame) > 1.0).any():
            yield Issue(
                dataset.name,
                f"observed_frame values stray more than one frame from {frame} (group {name})",
            )


@rule(
    "NXR-008",
    "reflection-flags-bits",
    I,
    spec="NXreflections flags (bits 0-24)",
    summary="flags uses only bits 0-24",
    hint="clear undefined flag bits",
)
def reflection_flags_bits(ctx: FileContext) -> Iterator[Issue]:
    for _name, group in reflection_groups(ctx):
        dataset = ctx.dataset("flags", group)
        if dataset is None or dataset.dtype.kind not in "iu":
            continue
        values = ctx.value(dataset)
        if values is not None and (np.asarray(values, dtype=np.int64) >> 25).any():
            yield Issue(dataset.name, "flags sets bits above 24")
