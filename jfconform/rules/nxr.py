"""NXreflections rules (NXR) for /entry/reflections (NeXus NXreflections)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from jfconform.context import FileContext, leaf
from jfconform.field_rules import NUMERIC, REFLECTION_TABLES, Field, FieldRule, Units, register_rows
from jfconform.model import E, I, Issue, W
from jfconform.nxdl_tables import NXREFLECTIONS_FIELDS
from jfconform.registry import rule
from jfconform.units import LENGTH

IMAGE_GROUP = re.compile(r"^image_(\d{6})$")
#: The columns the NXreflections base class requires (minOccurs=1).
BASE_REQUIRED = tuple(
    name for name, spec in NXREFLECTIONS_FIELDS.items() if spec.need == "required"
)
#: Jungfraujoch's columns that NXreflections does not define (Jungfraujoch docs/HDF5.md §4.2).
EXTENSIONS = ("int_err", "delta_phi", "zeta", "image_scale_corr")

FIELD_RULES = (
    FieldRule(
        "NXR-001",
        "reflections-class",
        E,
        Field(REFLECTION_TABLES, attributes=(("NX_class", "NXreflections"),)),
        """image_NNNNNN groups carry NX_class = NXreflections

        Spec: Jungfraujoch docs/HDF5.md §4.2
        Hint: set NX_class='NXreflections' on each per-image reflection group""",
    ),
    FieldRule(
        "NXR-003",
        "miller-not-integer",
        W,
        Field(REFLECTION_TABLES, ("h", "k", "l"), kind=NUMERIC, whole=True),
        """h, k, l numeric and integer-valued

        Spec: NXreflections h, k, l
        Hint: store Miller indices as integers""",
    ),
    FieldRule(
        "NXR-005",
        "reflections-pixel-lengths",
        W,
        Field(
            REFLECTION_TABLES,
            ("predicted_x", "predicted_y", "observed_x", "observed_y"),
            units=Units((LENGTH,), known=True),
        ),
        """predicted_x/_y, observed_x/_y hold lengths, not pixels

        Spec: NXreflections predicted_x (NX_LENGTH)
        Hint: store pixel positions as predicted_px_x/_y and observed_px_x/_y""",
    ),
)
register_rows(FIELD_RULES)


@rule("NXR-002", "reflections-column-length", E)
def reflections_column_length(ctx: FileContext) -> Iterator[Issue]:
    """All columns 1-D with equal length (bounding_box [n, 6])

    Spec: NXreflections (all columns [n])
    Hint: write every column with one entry per reflection
    """
    for group in ctx.reflection_tables:
        lengths: dict[int, list[str]] = {}
        for name, dataset in ctx.datasets(group).items():
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


@rule("NXR-004", "reflections-base-columns", I)
def reflections_base_columns(ctx: FileContext) -> Iterator[Issue]:
    """Base-class minOccurs=1 columns absent (listed once per file)

    Spec: NXreflections minOccurs=1 columns
    Hint: optional for Jungfraujoch-style tables; add them for generic NXreflections readers
    """
    groups = ctx.reflection_tables
    missing: set[str] = set()
    for group in groups:
        missing |= set(BASE_REQUIRED) - set(ctx.member_names(group))
    if missing:
        yield Issue(
            groups[0].parent.name,
            f"{len(groups)} groups lack base-class columns: {', '.join(sorted(missing))}",
        )


@rule("NXR-006", "reflections-extension-columns", I)
def reflections_extension_columns(ctx: FileContext) -> Iterator[Issue]:
    """Non-standard columns (int_err, delta_phi, zeta, image_scale_corr) noted

    Spec: Jungfraujoch docs/HDF5.md §4.2
    Hint: int_err's standard name is int_sum_errors
    """
    used: set[str] = set()
    for group in ctx.reflection_tables:
        used |= set(EXTENSIONS) & set(ctx.member_names(group))
    if used:
        yield Issue("/entry/reflections", f"non-standard columns: {', '.join(sorted(used))}")


@rule("NXR-007", "observed-frame-mismatch", W)
def observed_frame_mismatch(ctx: FileContext) -> Iterator[Issue]:
    """observed_frame is consistent with the image number in the group name

    Spec: Jungfraujoch docs/HDF5.md §4.2 (observed_frame)
    Hint: image_NNNNNN holds reflections of frame NNNNNN-1 (0-based observed_frame)
    """
    for group in ctx.reflection_tables:
        name = leaf(group.name)
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


@rule("NXR-008", "reflection-flags-bits", I)
def reflection_flags_bits(ctx: FileContext) -> Iterator[Issue]:
    """flags uses only bits 0-24

    Spec: NXreflections flags (bits 0-24)
    Hint: clear undefined flag bits
    """
    for group in ctx.reflection_tables:
        dataset = ctx.dataset("flags", group)
        if dataset is None or dataset.dtype.kind not in "iu":
            continue
        values = ctx.value(dataset)
        if values is not None and (np.asarray(values, dtype=np.int64) >> 25).any():
            yield Issue(dataset.name, "flags sets bits above 24")
