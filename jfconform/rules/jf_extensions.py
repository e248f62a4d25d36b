"""Jungfraujoch extension-group rules (JF-017 … JF-031): azint, roi, image, profiling, xfel,
user, detectorSpecific, detector extras, goniometer, units, run summaries
(Jungfraujoch HDF5.md §3-§4).

Split from :mod:`jfconform.rules.jf` (same family).
"""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from jfconform.context import FileContext
from jfconform.model import I, Issue, W
from jfconform.registry import rule
from jfconform.rules._common import DependsOn, leaf, walk_chain
from jfconform.rules.cxi import mx_dataset, mx_group
from jfconform.rules.h5 import written_frames

#: Datasets that Jungfraujoch HDF5.md lists with units (relative to the entry).
UNITS_REQUIRED = (
    "instrument/beam/incident_wavelength",
    "instrument/beam/total_flux",
    "instrument/detector/distance",
    "instrument/detector/count_time",
    "instrument/detector/frame_time",
    "instrument/detector/sensor_thickness",
    "instrument/detector/beam_center_x",
    "instrument/detector/beam_center_y",
    "instrument/detector/x_pixel_size",
    "instrument/detector/y_pixel_size",
    "instrument/detector/detector_distance",
    "MX/peakXPosRaw",
    "MX/peakYPosRaw",
    "MX/peakTotalIntensity",
    "MX/latticeIndexed",
)


@rule(
    "JF-017",
    "azint-shapes",
    W,
    spec="Jungfraujoch HDF5.md §4.3",
    summary="/entry/azint bin maps share [phi, q]; image arrays [n, phi, q]",
    hint="bin_to_* are [phi_bins, q_bins]; image/image_std/image_count are [n, phi, q]",
)
def azint_shapes(ctx: FileContext) -> Iterator[Issue]:
    group = None if ctx.entry is None else ctx.group("azint", ctx.entry)
    if group is None:
        return
    maps = {
        n: d
        for n in ("bin_to_q", "bin_to_two_theta", "bin_to_phi")
        if (d := ctx.dataset(n, group)) is not None
    }
    shapes = {d.shape for d in maps.values()}
    if len(shapes) > 1 or any(len(s) != 2 for s in shapes):
        yield Issue(group.name, f"bin maps have shapes {sorted(shapes)}")
        return
    grid = next(iter(shapes), None)
    for name in ("image", "image_std", "image_count"):
        dataset = ctx.dataset(name, group)
        if dataset is not None and grid is not None and dataset.shape[1:] != grid:
            yield Issue(dataset.name, f"{name} shape {dataset.shape}, expected [n, *{grid}]")


@rule(
    "JF-018",
    "roi-definitions",
    W,
    spec="Jungfraujoch HDF5.md §4.4",
    summary="ROI results [n]; roi_defs type in {box, circle, azim}; bit_index unique < 16",
    hint="one ROI per bit of the uint16 roi_map; type box, circle or azim",
)
def roi_definitions(ctx: FileContext) -> Iterator[Issue]:
    defs = None if ctx.entry is None else ctx.group("roi_defs", ctx.entry)
    if defs is None:
        return
    bits: list[int] = []
    for name in ctx.member_names(defs):
        group = ctx.group(name, defs)
        if group is None:
            continue
        kind = ctx.text(ctx.dataset("type", group))
        if kind not in ("box", "circle", "azim"):
            yield Issue(group.name, f"ROI type {kind!r} is not box, circle or azim")
        bit = ctx.number(ctx.dataset("bit_index", group))
        if bit is not None:
            bits.append(int(bit))
    if len(bits) != len(set(bits)) or any(b < 0 or b >= 16 for b in bits):
        yield Issue(defs.name, f"bit_index values {bits} are not unique values 0..15")
    roi_map = ctx.dataset("roi_map", defs)
    if roi_map is not None and (roi_map.dtype != np.uint16 or roi_map.shape != ctx.frame_shape):
        yield Issue(
            roi_map.name,
            f"roi_map is {roi_map.dtype} {roi_map.shape}, expected uint16 {ctx.frame_shape}",
        )


def _vectors_rule(ctx: FileContext, group_name: str) -> Iterator[Issue]:
    group = None if ctx.entry is None else ctx.group(group_name, ctx.entry)
    if group is None:
        return
    for name in ctx.member_names(group):
        dataset = ctx.dataset(name, group)
        if dataset is not None and dataset.ndim != 1:
            yield Issue(dataset.name, f"{name} has rank {dataset.ndim}, expected [n]")


@rule(
    "JF-019",
    "image-statistics-shape",
    W,
    spec="Jungfraujoch HDF5.md §4.5",
    summary="/entry/image statistics are [n] vectors",
    hint="write one value per image",
)
def image_statistics_shape(ctx: FileContext) -> Iterator[Issue]:
    yield from _vectors_rule(ctx, "image")


@rule(
    "JF-020",
    "profiling-shape",
    I,
    spec="Jungfraujoch HDF5.md §4.6",
    summary="/entry/profiling timings are [n] vectors in seconds",
    hint="write one timing per image with units='s'",
)
def profiling_shape(ctx: FileContext) -> Iterator[Issue]:
    yield from _vectors_rule(ctx, "profiling")


@rule(
    "JF-021",
    "xfel-shape",
    I,
    spec="Jungfraujoch HDF5.md §4.8",
    summary="/entry/xfel pulseID, eventCode are [n]",
    hint="write one value per image",
)
def xfel_shape(ctx: FileContext) -> Iterator[Issue]:
    yield from _vectors_rule(ctx, "xfel")


@rule(
    "JF-022",
    "user-not-scalar",
    W,
    spec="Jungfraujoch HDF5.md §4.11 (header_appendix.hdf5)",
    summary="/entry/user holds only scalars",
    hint="store only scalar strings and numbers",
)
def user_not_scalar(ctx: FileContext) -> Iterator[Issue]:
    group = None if ctx.entry is None else ctx.group("user", ctx.entry)
    if group is None:
        return
    for name in ctx.member_names(group):
        obj = ctx.get(name, group)
        if not isinstance(obj, h5py.Dataset) or obj.shape != ():
            yield Issue(f"{group.name}/{name}", "entry is not a scalar dataset")


def _stored_frames(ctx: FileContext) -> int | None:
    """Frames actually written to the image stores (missed images excluded), if known."""
    total = 0
    for store in ctx.image_stores:
        written = written_frames(store.dataset)
        if written is None:
            return None
        total += written.count()
    return total


@rule(
    "JF-023",
    "detector-specific",
    W,
    spec="Jungfraujoch HDF5.md §4.9; [ours] relations",
    summary="detectorSpecific pixel counts and image counts match the data",
    hint="x/y_pixels_in_detector = image width/height; nimages_written = frames "
    "(or the frames actually written, when images were missed)",
)
def detector_specific(ctx: FileContext) -> Iterator[Issue]:
    frame, n = ctx.frame_shape, ctx.n_frames
    for detector in ctx.detectors:
        group = ctx.group("detectorSpecific", detector)
        if group is None:
            continue

        def number(name: str, where: h5py.Group = group) -> float | None:
            return ctx.number(ctx.dataset(name, where))

        if frame is not None:
            for name, wanted in (
                ("x_pixels_in_detector", frame[-1]),
                ("y_pixels_in_detector", frame[-2]),
            ):
                value = number(name)
                if value is not None and int(value) != wanted:
                    yield Issue(
                        f"{group.name}/{name}", f"{name} = {int(value)}, image has {wanted}"
                    )
        written = number("nimages_written")
        if written is not None and n is not None and int(written) not in (n, _stored_frames(ctx)):
            yield Issue(
                f"{group.name}/nimages_written",
                f"nimages_written = {int(written)}, the data holds {n} frames",
            )
        collected, nimages = number("nimages_collected"), number("nimages")
        ntrigger = number("ntrigger") or 1
        if collected is not None and nimages is not None and collected > nimages * ntrigger:
            yield Issue(f"{group.name}/nimages_collected", "more images collected than planned")


@rule(
    "JF-024",
    "pixel-mask-link",
    W,
    spec="Jungfraujoch HDF5.md §3 (hard link)",
    summary="detector/pixel_mask and detectorSpecific/pixel_mask are the same object",
    hint="hard-link detectorSpecific/pixel_mask to detector/pixel_mask",
)
def pixel_mask_link(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        first = ctx.dataset("pixel_mask", detector)
        second = ctx.dataset("detectorSpecific/pixel_mask", detector)
        if first is not None and second is not None and first.id != second.id:
            yield Issue(second.name, "a separate copy, not a hard link to detector/pixel_mask")


@rule(
    "JF-025",
    "detector-extension-fields",
    I,
    spec="Jungfraujoch HDF5.md §4.10",
    summary="detector_distance = distance; bit_depth_image fits the dtype; acquisition_type",
    hint="keep the Dectris-style duplicates consistent with the standard fields",
)
def detector_extension_fields(ctx: FileContext) -> Iterator[Issue]:
    dtype = ctx.image_dataset.dtype if ctx.image_dataset is not None else None
    if dtype is None and ctx.image_stores:
        dtype = ctx.image_stores[0].dataset.dtype
    for detector in ctx.detectors:
        distance = ctx.number(ctx.dataset("distance", detector))
        duplicate = ctx.number(ctx.dataset("detector_distance", detector))
        if distance is not None and duplicate is not None and abs(distance - duplicate) > 1e-9:
            yield Issue(f"{detector.name}/detector_distance", "differs from distance")
        depth = ctx.number(ctx.dataset("bit_depth_image", detector))
        if depth is not None and dtype is not None and int(depth) != dtype.itemsize * 8:
            yield Issue(
                f"{detector.name}/bit_depth_image", f"says {int(depth)} but the images are {dtype}"
            )
        kind = ctx.text(ctx.dataset("acquisition_type", detector))
        if kind is not None and kind != "triggered":
            yield Issue(f"{detector.name}/acquisition_type", f"is {kind!r}, expected 'triggered'")


#: Jungfraujoch's detector chain (HDF5.md §3), from the detector's depends_on outwards,
#: with each axis's transformation type: depends_on → rot3 → rot2 → rot1 → translation → ".".
JUNGFRAUJOCH_DETECTOR_CHAIN = (
    ("rot3", "rotation"),
    ("rot2", "rotation"),
    ("rot1", "rotation"),
    ("translation", "translation"),
)


@rule(
    "JF-026",
    "detector-chain-names",
    I,
    spec="Jungfraujoch HDF5.md §3 (PONI axes)",
    summary="Detector chain depends_on → rot3 → rot2 → rot1 → translation → '.'",
    hint="Jungfraujoch names the detector axes rot3 → rot2 → rot1 → translation (PONI)",
)
def detector_chain_names(ctx: FileContext) -> Iterator[Issue]:
    expected = " → ".join(name for name, _kind in JUNGFRAUJOCH_DETECTOR_CHAIN)
    for detector in ctx.detectors:
        text = ctx.text(ctx.dataset("depends_on", detector))
        if text is None or text.strip() == ".":
            continue
        chain = walk_chain(ctx, DependsOn(f"{detector.name}/depends_on", text, detector.name))
        found = [leaf(path) for path in chain.axes]
        kinds = [ctx.attr_text(ctx.dataset(path), "transformation_type") for path in chain.axes]
        if chain.end != "dot" or list(zip(found, kinds, strict=True)) != list(
            JUNGFRAUJOCH_DETECTOR_CHAIN
        ):
            shown = " → ".join(f"{name} ({kind})" for name, kind in zip(found, kinds, strict=True))
            yield Issue(
                f"{detector.name}/depends_on",
                f"chain is {shown or 'empty'}, not {expected} → '.'",
            )


@rule(
    "JF-027",
    "rotation-axis-summaries",
    W,
    spec="Jungfraujoch HDF5.md §3 NXsample",
    summary="Rotation scans: <axis> and <axis>_end [n]; range_average/total consistent",
    hint="write <axis>_end and <axis>_range_total = n × <axis>_range_average",
)
def rotation_axis_summaries(ctx: FileContext) -> Iterator[Issue]:
    n = ctx.n_frames
    for sample in ctx.in_entry("NXsample"):
        for group in ctx.children_of_class(sample, "NXtransformations"):
            for name in ctx.member_names(group):
                axis = ctx.dataset(name, group)
                if axis is None or ctx.attr_text(axis, "transformation_type") != "rotation":
                    continue
                if n and axis.size == n and n > 1 and ctx.missing(f"{name}_end", group):
                    yield Issue(axis.name, f"{name}_end is missing")
                average = ctx.number(ctx.dataset(f"{name}_range_average", group))
                total = ctx.number(ctx.dataset(f"{name}_range_total", group))
                if average is not None and total is not None and n:
                    if abs(average * n - total) > 1e-6 * max(1.0, abs(total)):
                        yield Issue(
                            f"{group.name}/{name}_range_total", f"{total} != {n} × {average}"
                        )


@rule(
    "JF-028",
    "goniometer-link",
    I,
    spec="Jungfraujoch HDF5.md §3 (sample/goniometer hard link)",
    summary="/entry/sample/goniometer is a hard link to the sample transformations",
    hint="hard-link sample/goniometer to sample/transformations",
)
def goniometer_link(ctx: FileContext) -> Iterator[Issue]:
    for sample in ctx.in_entry("NXsample"):
        gonio = ctx.group("goniometer", sample)
        transformations = ctx.group("transformations", sample)
        if gonio is not None and transformations is not None and gonio.id != transformations.id:
            yield Issue(gonio.name, "goniometer is not the same group as transformations")


@rule(
    "JF-029",
    "sample-cell-shapes",
    I,
    spec="Jungfraujoch HDF5.md §3; NXsample",
    summary="unit_cell has six numbers; ub_matrix is [1, 3, 3]",
    hint="unit_cell = [a, b, c, alpha, beta, gamma]; ub_matrix shape (1, 3, 3)",
)
def sample_cell_shapes(ctx: FileContext) -> Iterator[Issue]:
    for sample in ctx.in_entry("NXsample"):
        cell = ctx.dataset("unit_cell", sample)
        if cell is not None and cell.size != 6:
            yield Issue(cell.name, f"unit_cell has {cell.size} values, expected 6")
        ub = ctx.dataset("ub_matrix", sample)
        if ub is not None and ub.shape[-2:] != (3, 3):
            yield Issue(ub.name, f"ub_matrix shape {ub.shape}, expected (1, 3, 3)")


@rule(
    "JF-030",
    "units-missing",
    W,
    spec="Jungfraujoch HDF5.md (datasets listed with units)",
    summary="Datasets that Jungfraujoch HDF5.md lists with units carry a units attribute",
    hint="add the units attribute named in the Jungfraujoch HDF5 documentation",
)
def units_missing(ctx: FileContext) -> Iterator[Issue]:
    if ctx.entry is None:
        return
    for relative in UNITS_REQUIRED:
        dataset = ctx.dataset(relative, ctx.entry)
        if dataset is not None and not ctx.has_attr(dataset, "units"):
            yield Issue(dataset.name, "units attribute is missing")


@rule(
    "JF-015",
    "run-summaries",
    I,
    spec="Jungfraujoch HDF5.md §4.1 run-level summaries",
    summary="Master run summaries well formed (rotationLatticeIndexed [9], algorithm text)",
    hint="rotationLatticeIndexed is 9 floats (Å); indexing_algorithm is a string",
)
def run_summaries(ctx: FileContext) -> Iterator[Issue]:
    lattice = mx_dataset(ctx, "rotationLatticeIndexed")
    if lattice is not None and lattice.size != 9:
        yield Issue(lattice.name, f"rotationLatticeIndexed has {lattice.size} values, not 9")
    algorithm = mx_dataset(ctx, "indexing_algorithm")
    if algorithm is not None and ctx.text(algorithm) is None:
        yield Issue(algorithm.name, "indexing_algorithm is not a string")
    if (
        mx_dataset(ctx, "indexedLatticeCount") is not None
        and mx_dataset(ctx, "indexingLatticeCount") is not None
    ):
        yield Issue(mx_group(ctx).name, "both indexedLatticeCount and indexingLatticeCount exist")


@rule(
    "JF-031",
    "vds-extensions-exposed",
    I,
    spec="Jungfraujoch HDF5.md §2, §4 (VDS master exposes analysis arrays)",
    summary="A VDS master exposes the data files' /entry/MX through virtual datasets",
    hint="add virtual datasets under /entry/MX mapping the data files' arrays",
)
def vds_extensions_exposed(ctx: FileContext) -> Iterator[Issue]:
    if ctx.layout != "vds" or mx_group(ctx) is not None or not ctx.image_stores:
        return
    source_entry = ctx.group("/entry", ctx.image_stores[0].dataset.file)
    if source_entry is not None and "MX" in ctx.member_names(source_entry):
        yield Issue("/entry", "data files hold /entry/MX but the master does not expose it")
