"""NXmx detector rules (NXMX-014 … NXMX-026): detector, modules, pixel directions, mask.

Split from :mod:`jfconform.rules.nxmx` (same family, same catalogue, conformance.md §1.5-§1.7).
"""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from jfconform.context import FileContext
from jfconform.model import E, Issue, W
from jfconform.registry import rule
from jfconform.rules._common import units_of
from jfconform.units import LENGTH

NX_FLOAT_DETECTOR = (
    "distance",
    "beam_center_x",
    "beam_center_y",
    "sensor_thickness",
    "x_pixel_size",
    "y_pixel_size",
    "frame_time",
    "dead_time",
    "detector_readout_time",
    "threshold_energy",
)


RECOMMENDED_DETECTOR = (
    "description",
    "distance",
    "distance_derived",
    "count_time",
    "beam_center_x",
    "beam_center_y",
    "pixel_mask",
    "bit_depth_readout",
)


@rule(
    "NXMX-014",
    "detector-group",
    W,
    spec="NXmx NXdetector_group (recommended)",
    summary="NXdetector_group present and consistent",
    hint="add instrument/detector_group with group_names, group_index (1..), group_parent (-1)",
)
def detector_group(ctx: FileContext) -> Iterator[Issue]:
    for instrument in ctx.instruments:
        groups = ctx.children_of_class(instrument, "NXdetector_group")
        if not groups:
            yield Issue(instrument.name, "recommended NXdetector_group is missing")
        for group in groups:
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


@rule(
    "NXMX-015",
    "detector-missing",
    E,
    spec="NXmx NXinstrument/NXdetector",
    summary=">= 1 NXdetector in NXinstrument",
    hint="add instrument/detector with NX_class='NXdetector'",
)
def detector_missing(ctx: FileContext) -> Iterator[Issue]:
    for instrument in ctx.instruments:
        if not ctx.children_of_class(instrument, "NXdetector"):
            yield Issue(instrument.name, "the instrument has no NXdetector group")


@rule(
    "NXMX-016",
    "module-missing",
    E,
    spec="NXmx NXdetector/NXdetector_module",
    summary="Each NXdetector has >= 1 NXdetector_module",
    hint="add detector/module (NX_class='NXdetector_module'), one covering the whole frame",
)
def module_missing(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        if not ctx.children_of_class(detector, "NXdetector_module"):
            yield Issue(detector.name, "the detector has no NXdetector_module group")


def _int_vector(ctx: FileContext, dataset: h5py.Dataset | None) -> np.ndarray | None:
    if dataset is None or dataset.dtype.kind not in "iu":
        return None
    value = ctx.value(dataset)
    return None if value is None else np.asarray(value).reshape(-1).astype(np.int64)


@rule(
    "NXMX-017",
    "module-origin-size",
    E,
    spec="NXmx NXdetector_module data_origin/data_size",
    summary="data_origin, data_size are integer arrays of length (data rank - 1), slow→fast",
    hint="write data_origin=[0, 0] and data_size=[ny, nx] as integer arrays (slow, fast)",
)
def module_origin_size(ctx: FileContext) -> Iterator[Issue]:
    rank = len(ctx.frame_shape) if ctx.frame_shape else 2
    for module in ctx.modules:
        for name in ("data_origin", "data_size"):
            dataset = ctx.dataset(name, module)
            if ctx.missing(name, module):
                yield Issue(f"{module.name}/{name}", f"required field {name} is missing")
                continue
            if dataset is None:
                continue  # unreadable: H5-013
            vector = _int_vector(ctx, dataset)
            if vector is None:
                yield Issue(dataset.name, f"{name} is not an integer array ({dataset.dtype})")
            elif vector.size != rank:
                yield Issue(dataset.name, f"{name} has {vector.size} values, expected {rank}")


@rule(
    "NXMX-018",
    "module-outside-frame",
    E,
    spec="NXmx NXdetector_module hyperslab",
    summary="Module hyperslab lies inside the frame; a single module covers it all",
    hint="data_origin + data_size (slow, fast) must fit the image shape of /entry/data/data",
)
def module_outside_frame(ctx: FileContext) -> Iterator[Issue]:
    frame = ctx.frame_shape
    if frame is None:
        return
    for detector in ctx.detectors:
        modules = ctx.children_of_class(detector, "NXdetector_module")
        for module in modules:
            origin = _int_vector(ctx, ctx.dataset("data_origin", module))
            size = _int_vector(ctx, ctx.dataset("data_size", module))
            stride = _int_vector(ctx, ctx.dataset("data_stride", module))
            if (
                origin is None
                or size is None
                or origin.size != len(frame)
                or size.size != len(frame)
            ):
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


def _check_translation_field(ctx: FileContext, dataset: h5py.Dataset) -> list[str]:
    problems = []
    text, unit = units_of(ctx, dataset)
    if unit is None or unit.dimension != LENGTH:
        problems.append(f"units {text!r} are not a length")
    if ctx.attr_text(dataset, "transformation_type") != "translation":
        problems.append("transformation_type is not 'translation'")
    if ctx.attr(dataset, "vector") is None:
        problems.append("no vector attribute")
    if ctx.attr(dataset, "depends_on") is None:
        problems.append("no depends_on attribute")
    return problems


@rule(
    "NXMX-019",
    "pixel-direction",
    E,
    spec="NXmx NXdetector_module fast/slow_pixel_direction",
    summary="fast/slow_pixel_direction present: length units, translation, vector, depends_on",
    hint="write the pixel pitch with units, transformation_type='translation', vector, depends_on",
)
def pixel_direction(ctx: FileContext) -> Iterator[Issue]:
    for module in ctx.modules:
        for name in ("fast_pixel_direction", "slow_pixel_direction"):
            dataset = ctx.dataset(name, module)
            if ctx.missing(name, module):
                yield Issue(f"{module.name}/{name}", f"required field {name} is missing")
                continue
            if dataset is None:
                continue  # unreadable: H5-013
            problems = _check_translation_field(ctx, dataset)
            if problems:
                yield Issue(dataset.name, "; ".join(problems))


@rule(
    "NXMX-020",
    "module-offset",
    W,
    spec="NXmx NXdetector_module/module_offset",
    summary="module_offset (if present) is a translation with vector and depends_on",
    hint="give module_offset units, transformation_type='translation', vector, depends_on",
)
def module_offset(ctx: FileContext) -> Iterator[Issue]:
    for module in ctx.modules:
        dataset = ctx.dataset("module_offset", module)
        if dataset is not None:
            problems = _check_translation_field(ctx, dataset)
            if problems:
                yield Issue(dataset.name, "; ".join(problems))


@rule(
    "NXMX-021",
    "sensor-material-missing",
    E,
    spec="NXmx NXdetector/sensor_material",
    summary="sensor_material present (string)",
    hint="write detector/sensor_material, e.g. 'Si'",
)
def sensor_material_missing(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        if ctx.missing("sensor_material", detector):
            yield Issue(f"{detector.name}/sensor_material", "required field is missing")


@rule(
    "NXMX-022",
    "sensor-thickness-missing",
    E,
    spec="NXmx NXdetector/sensor_thickness",
    summary="sensor_thickness present with length units",
    hint="write detector/sensor_thickness with units, e.g. 0.00032 with units='m'",
)
def sensor_thickness_missing(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        if ctx.missing("sensor_thickness", detector):
            yield Issue(f"{detector.name}/sensor_thickness", "required field is missing")
            continue
        dataset = ctx.dataset("sensor_thickness", detector)
        if dataset is None:
            continue  # unreadable: H5-013
        text, unit = units_of(ctx, dataset)
        if unit is None or unit.dimension != LENGTH:
            yield Issue(dataset.name, f"sensor_thickness units {text!r} are not a length")


@rule(
    "NXMX-023",
    "detector-recommended",
    W,
    spec="NXmx NXdetector (recommended fields)",
    summary="Recommended detector fields present (description, distance, count_time, ...)",
    hint="write the recommended NXdetector fields listed in the message",
)
def detector_recommended(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        names = set(ctx.member_names(detector))
        missing = [n for n in RECOMMENDED_DETECTOR if n not in names]
        if "data" not in names and ctx.layout != "legacy":
            missing.append("data")
        if missing:
            yield Issue(detector.name, f"recommended fields missing: {', '.join(missing)}")


@rule(
    "NXMX-024",
    "detector-field-types",
    W,
    spec="NXmx NXdetector (field types and shapes)",
    summary="Detector fields, when present, have the right type (NX_FLOAT is float) and shape",
    hint="NX_FLOAT fields as floats, frame-shaped calibration arrays, 1-D countrate table",
)
def detector_optional_shape(ctx: FileContext) -> Iterator[Issue]:
    frame = ctx.frame_shape
    for detector in ctx.detectors:
        for name in ("flatfield", "flatfield_errors", "angular_calibration"):
            dataset = ctx.dataset(name, detector)
            if dataset is not None and frame and tuple(dataset.shape[-len(frame) :]) != frame:
                yield Issue(dataset.name, f"{name} shape {dataset.shape} is not frame-shaped")
        for name in NX_FLOAT_DETECTOR:
            dataset = ctx.dataset(name, detector)
            if dataset is not None and dataset.dtype.kind in "iub":
                yield Issue(dataset.name, f"{name} is NX_FLOAT but stored as {dataset.dtype}")
        table = ctx.dataset("countrate_correction_lookup_table", detector)
        if table is not None and table.ndim != 1:
            yield Issue(table.name, f"lookup table has rank {table.ndim}, expected 1")
        for name in (
            "dead_time",
            "detector_readout_time",
            "frame_time",
            "count_time",
            "threshold_energy",
            "saturation_value",
            "underload_value",
        ):
            dataset = ctx.dataset(name, detector)
            if dataset is not None and dataset.dtype.kind not in "iuf":
                yield Issue(dataset.name, f"{name} is not numeric ({dataset.dtype})")


@rule(
    "NXMX-025",
    "flatfield-error-deprecated",
    W,
    spec="NXmx NXdetector/flatfield_error",
    summary="Deprecated flatfield_error absent",
    hint="rename flatfield_error to flatfield_errors",
)
def flatfield_error_deprecated(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        if "flatfield_error" in ctx.member_names(detector):
            yield Issue(f"{detector.name}/flatfield_error", "deprecated field is present")


@rule(
    "NXMX-026",
    "pixel-mask-shape",
    W,
    spec="NXmx NXdetector/pixel_mask",
    summary="pixel_mask integer, frame-shaped, values >= 0",
    hint="store pixel_mask as uint32 [ny, nx] (NeXus bit meanings)",
)
def pixel_mask_shape(ctx: FileContext) -> Iterator[Issue]:
    frame = ctx.frame_shape
    for detector in ctx.detectors:
        mask = ctx.dataset("pixel_mask", detector)
        if mask is None:
            continue
        if mask.dtype.kind not in "iu":
            yield Issue(mask.name, f"pixel_mask is not integer ({mask.dtype})")
            continue
        if (frame and tuple(mask.shape[-len(frame) :]) != frame) or mask.ndim not in (2, 3):
            yield Issue(mask.name, f"pixel_mask shape {mask.shape} does not match frame {frame}")
        if mask.dtype.kind == "i":
            value = ctx.value(mask)
            if value is not None and (np.asarray(value) < 0).any():
                yield Issue(mask.name, "pixel_mask holds negative values")
