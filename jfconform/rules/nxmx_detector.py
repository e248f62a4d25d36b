"""NXmx detector rules (NXMX), NeXus NXmx definition: the detector, its modules, mask
and geometry. Split from :mod:`jfconform.rules.nxmx` (same family, same layout: field rows
first, then the rules with logic)."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from jfconform import chains
from jfconform.context import FileContext
from jfconform.field_rules import (
    ANY,
    DEPRECATED,
    DETECTOR,
    FLOAT,
    IMAGE,
    IMAGE_RANK,
    INTEGER,
    MODULE,
    MORE,
    NUMERIC,
    NXDL,
    PRESENT,
    Field,
    FieldRule,
    Units,
    register_rows,
)
from jfconform.model import E, I, Issue, W
from jfconform.registry import rule
from jfconform.units import LENGTH

#: A detector-placing translation: its attributes and units (NXmx NXdetector_module).
TRANSLATION = (("transformation_type", "translation"), ("vector", PRESENT), ("depends_on", PRESENT))
TRANSLATION_UNITS = Units((LENGTH,), known=True)
#: NXmx declares these in NXdetector without a type; the NXdetector base class says NX_FLOAT.
PIXEL_SIZES = ("x_pixel_size", "y_pixel_size")

FIELD_RULES = (
    FieldRule(
        "NXMX-015",
        "detector-missing",
        E,
        Field(DETECTOR, need=NXDL),
        """>= 1 NXdetector in NXinstrument

        Spec: NXmx NXinstrument/NXdetector
        Hint: add instrument/detector with NX_class='NXdetector'""",
    ),
    FieldRule(
        "NXMX-016",
        "module-missing",
        E,
        Field(MODULE, need=NXDL),
        """Each NXdetector has >= 1 NXdetector_module

        Spec: NXmx NXdetector/NXdetector_module
        Hint: add detector/module (NX_class='NXdetector_module'), one covering the whole frame""",
    ),
    FieldRule(
        "NXMX-017",
        "module-origin-size",
        E,
        Field(MODULE, ("data_origin", "data_size"), need=NXDL, kind=NXDL, size=IMAGE_RANK),
        """data_origin, data_size are integer arrays of length (data rank - 1), slow→fast

        Spec: NXmx NXdetector_module data_origin/data_size
        Hint: write data_origin=[0, 0] and data_size=[ny, nx] as integer arrays (slow, fast)""",
    ),
    FieldRule(
        "NXMX-019",
        "pixel-direction",
        E,
        Field(
            MODULE,
            ("fast_pixel_direction", "slow_pixel_direction"),
            need=NXDL,
            units=TRANSLATION_UNITS,
            attributes=TRANSLATION,
        ),
        """fast/slow_pixel_direction present: length units, translation, vector, depends_on

        Spec: NXmx NXdetector_module fast/slow_pixel_direction
        Hint: write the pixel pitch with units, transformation_type='translation', vector,
        depends_on""",
    ),
    FieldRule(
        "NXMX-020",
        "module-offset",
        W,
        Field(MODULE, "module_offset", units=TRANSLATION_UNITS, attributes=TRANSLATION),
        """module_offset (if present) is a translation with vector and depends_on

        Spec: NXmx NXdetector_module/module_offset
        Hint: give module_offset units, transformation_type='translation', vector, depends_on""",
    ),
    FieldRule(
        "NXMX-021",
        "sensor-material-missing",
        E,
        Field(DETECTOR, "sensor_material", need=NXDL),
        """sensor_material present (string)

        Spec: NXmx NXdetector/sensor_material
        Hint: write detector/sensor_material, e.g. 'Si'""",
    ),
    FieldRule(
        "NXMX-022",
        "sensor-thickness-missing",
        E,
        Field(
            DETECTOR,
            "sensor_thickness",
            need=NXDL,
            units=Units((LENGTH,), known=True),
            positive=True,
        ),
        """sensor_thickness present with length units, finite > 0

        Spec: NXmx NXdetector/sensor_thickness
        Hint: write detector/sensor_thickness with units, e.g. 0.00032 with units='m'""",
    ),
    FieldRule(
        "NXMX-024",
        "detector-field-types",
        W,
        (
            Field(DETECTOR, DETECTOR.nxdl_names("NX_FLOAT") + PIXEL_SIZES, kind=FLOAT),
            Field(DETECTOR, DETECTOR.nxdl_names("NX_NUMBER", excluding=("data",)), kind=NUMERIC),
            Field(DETECTOR, DETECTOR.nxdl_names("NX_INT", excluding=("pixel_mask",)), kind=INTEGER),
            Field(
                DETECTOR,
                ("flatfield", "flatfield_errors", "angular_calibration"),
                shapes=((MORE, IMAGE),),
            ),
            Field(DETECTOR, "countrate_correction_lookup_table", shapes=((ANY,),)),
            Field(DETECTOR, (*PIXEL_SIZES, "count_time", "frame_time"), positive=True),
        ),
        """Detector fields, when present, have their NXDL type (NX_FLOAT is float) and shape;
        pixel sizes, count and frame times are finite and > 0

        Spec: NXmx NXdetector (field types and shapes)
        Hint: NX_FLOAT fields as floats, frame-shaped calibration arrays, 1-D countrate table""",
    ),
    FieldRule(
        "NXMX-025",
        "flatfield-error-deprecated",
        W,
        Field(DETECTOR, "flatfield_error", need=DEPRECATED),
        """Deprecated flatfield_error absent

        Spec: NXmx NXdetector/flatfield_error
        Hint: rename flatfield_error to flatfield_errors""",
    ),
    FieldRule(
        "NXMX-026",
        "pixel-mask-shape",
        W,
        Field(DETECTOR, "pixel_mask", kind=INTEGER, shapes=((IMAGE,), (ANY, IMAGE)), at_least=0),
        """pixel_mask integer, frame-shaped, values >= 0

        Spec: NXmx NXdetector/pixel_mask
        Hint: store pixel_mask as uint32 [ny, nx] (NeXus bit meanings)""",
    ),
)
register_rows(FIELD_RULES)


@rule("NXMX-014", "detector-group", W)
def detector_group(ctx: FileContext) -> Iterator[Issue]:
    """NXdetector_group present and consistent

    Spec: NXmx NXdetector_group (recommended)
    Hint: add instrument/detector_group with group_names, group_index (1..), group_parent (-1)
    """
    for instrument in ctx.instruments:
        if not ctx.children_of_class(instrument, "NXdetector_group"):
            yield Issue(instrument.name, "recommended NXdetector_group is missing")
    for group in ctx.detector_groups:
        missing = [
            n for n in ("group_names", "group_index", "group_parent") if ctx.missing(n, group)
        ]
        if missing:
            yield Issue(group.name, f"missing {', '.join(missing)}")
            continue
        index = ctx.array(ctx.dataset("group_index", group))
        parent = ctx.array(ctx.dataset("group_parent", group))
        if index is None or parent is None or index.dtype.kind not in "iu":
            yield Issue(group.name, "group_index/group_parent are not readable integers")
            continue
        index, parent = index.reshape(-1), parent.reshape(-1)
        if len(set(index.tolist())) != index.size or (index < 1).any():
            yield Issue(f"{group.name}/group_index", "group_index must be unique and >= 1")
        if parent.size != index.size or not (parent == -1).any():
            yield Issue(
                f"{group.name}/group_parent",
                "group_parent must match group_index in length and hold a -1",
            )


def _int_vector(ctx: FileContext, dataset: h5py.Dataset | None) -> np.ndarray | None:
    if dataset is None or dataset.dtype.kind not in "iu":
        return None
    value = ctx.array(dataset)
    return None if value is None else value.reshape(-1).astype(np.int64)


@rule("NXMX-018", "module-outside-frame", E)
def module_outside_frame(ctx: FileContext) -> Iterator[Issue]:
    """Module hyperslab lies inside the frame; a single module covers it all

    Spec: NXmx NXdetector_module hyperslab
    Hint: data_origin + data_size (slow, fast) must fit the image shape of /entry/data/data
    """
    frame = ctx.frame_shape
    if frame is None:
        return
    for detector in ctx.detectors:
        modules = ctx.children_of_class(detector, "NXdetector_module")
        for module in modules:
            origin, size, stride = (
                _int_vector(ctx, ctx.dataset(name, module))
                for name in ("data_origin", "data_size", "data_stride")
            )
            if origin is None or size is None or not origin.size == size.size == len(frame):
                continue
            if stride is None or stride.size != len(frame):
                stride = np.ones(len(frame), dtype=np.int64)
            end = origin + (size - 1) * stride + 1
            if (origin < 0).any() or (end > np.asarray(frame)).any():
                yield Issue(
                    module.name,
                    f"hyperslab origin {origin.tolist()} size "
                    f"{size.tolist()} exceeds the frame {list(frame)}",
                )
            elif len(modules) == 1 and (origin.any() or (end != np.asarray(frame)).any()):
                yield Issue(
                    module.name,
                    f"the only module covers {size.tolist()} of the frame {list(frame)}",
                )


@rule("NXMX-023", "detector-recommended", W)
def detector_recommended(ctx: FileContext) -> Iterator[Issue]:
    """Recommended detector fields present (description, distance, count_time, ...)

    One finding per detector listing what is missing; in the legacy layout the data_NNNNNN links
    stand in for the recommended ``data``.

    Spec: NXmx NXdetector (recommended fields)
    Hint: write the recommended NXdetector fields listed in the message
    """
    recommended = DETECTOR.nxdl_names(need="recommended")
    for detector in ctx.detectors:
        names = set(ctx.member_names(detector))
        missing = [n for n in recommended if n not in names]
        if ctx.layout == "legacy" and "data" in missing:
            missing.remove("data")
        if missing:
            yield Issue(detector.name, f"recommended fields missing: {', '.join(missing)}")


@rule("NXMX-034", "beam-center-geometry", I)
def beam_center_geometry(ctx: FileContext) -> Iterator[Issue]:
    """distance and beam_center_x/_y agree with the geometry chain

    Every detector: where the beam meets each module against ``beam_center_x/_y``, and the
    sample-to-beam-centre distance along the beam against ``distance``. Rotations anywhere in
    the chains are applied; one detector's gaps never stop the others' checks.

    Spec: NXmx beam_center_x/_y, distance
    Hint: keep distance and beam centre equal to what the depends_on chains place
    """
    for detector in ctx.detectors:
        hits = [
            (module, _module_beam_centre(ctx, module))
            for module in ctx.children_of_class(detector, "NXdetector_module")
        ]
        yield from _distance_against_chain(ctx, detector, [h for _m, h in hits if h is not None])
        yield from _beam_centre_against_modules(ctx, detector, hits)


def _distance_against_chain(
    ctx: FileContext, detector: h5py.Group, hits: list[tuple[float, float, float]]
) -> Iterator[Issue]:
    distance = ctx.dataset("distance", detector)
    if distance is None:
        return
    value, (_, unit) = ctx.number(distance), ctx.units(distance)
    if value is None or unit is None:
        return
    stated_m = value * unit.to_si
    if hits:  # coplanar modules agree; for others take the module the value describes
        placed_m = min((h[2] for h in hits), key=lambda t: abs(t - stated_m))
        where = "where the beam meets the detector"
    else:
        start = chains.of_group(ctx, detector)
        placed = None
        if start is not None and start.value.strip() != ".":
            placed = chains.transform(ctx, chains.walk(ctx, start))
        if placed is None:
            return
        placed_m, where = float(placed.shift_m[2]), "of the detector chain's origin along the beam"
    if abs(stated_m - placed_m) > 1e-4:
        yield Issue(
            distance.name,
            f"distance {stated_m:.5f} m differs from the chain's {placed_m:.5f} m ({where})",
        )


def _beam_centre_against_modules(
    ctx: FileContext,
    detector: h5py.Group,
    hits: list[tuple[h5py.Group, tuple[float, float, float] | None]],
) -> Iterator[Issue]:
    """Where the beam (+z through the origin) meets each module, against beam_center_x/_y."""
    centre = [ctx.dataset(n, detector) for n in ("beam_center_x", "beam_center_y")]
    if any(c is None or ctx.attr_text(c, "units") not in ("pixel", "pixels") for c in centre):
        return
    x, y = (ctx.number(c) for c in centre)
    if x is None or y is None:
        return
    for module, found in hits:
        if found is None:
            continue
        if max(abs(found[0] - x), abs(found[1] - y)) > 1.0:
            yield Issue(
                module.name,
                f"the geometry puts the beam at ({found[0]:.2f}, {found[1]:.2f}) px, "
                f"beam_center_x/_y say ({x:.2f}, {y:.2f})",
            )


def _module_beam_centre(ctx: FileContext, module: h5py.Group) -> tuple[float, float, float] | None:
    """(x, y) in pixels where the beam meets the module's plane, and the distance (m) from
    the sample to that point along the beam; ``None`` when the geometry is incomplete."""
    fast, slow = (ctx.dataset(n, module) for n in ("fast_pixel_direction", "slow_pixel_direction"))
    origin = ctx.array(ctx.dataset("data_origin", module))
    if fast is None or slow is None or origin is None or origin.size < 2:
        return None
    steps = []
    for axis in (fast, slow):
        vector, pitch = chains.float_vector(ctx.attr(axis, "vector")), ctx.number(axis)
        _, unit = ctx.units(axis)
        if vector is None or vector.size != 3 or pitch is None or unit is None:
            return None
        if not np.linalg.norm(vector):
            return None
        steps.append(vector / np.linalg.norm(vector) * pitch * unit.to_si)
    placed = chains.transform(ctx, chains.walk(ctx, chains.of_axis(ctx, fast)))
    if placed is None:
        return None
    rotation = placed.rotation
    matrix = np.column_stack([rotation @ steps[0], rotation @ steps[1], [0, 0, -1.0]])
    if abs(np.linalg.det(matrix)) < 1e-12:
        return None
    f, s, t = np.linalg.solve(matrix, -placed.shift_m)
    return float(origin.reshape(-1)[-1] + f), float(origin.reshape(-1)[-2] + s), float(t)
