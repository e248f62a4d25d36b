"""Jungfraujoch extension-group rules (JF-017 … JF-031): azint, roi, image, profiling, xfel,
user, detectorSpecific, detector extras, goniometer, units, run summaries
(Jungfraujoch docs/HDF5.md §3-§4).

Split from :mod:`jfconform.rules.jf` (same family).
"""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from jfconform import chains
from jfconform.context import FileContext, leaf
from jfconform.field_rules import (
    ANY,
    BEAM,
    DETECTOR,
    MORE,
    MX,
    SAMPLE,
    Field,
    FieldRule,
    Place,
    Units,
    register_rows,
)
from jfconform.model import I, Issue, W
from jfconform.registry import rule
from jfconform.storage import written_frames

#: What Jungfraujoch's docs/HDF5.md lists with units.
UNITS_REQUIRED = (
    Field(BEAM, ("incident_wavelength", "total_flux"), units=Units()),
    Field(
        DETECTOR,
        (
            "distance",
            "count_time",
            "frame_time",
            "sensor_thickness",
            "beam_center_x",
            "beam_center_y",
            "x_pixel_size",
            "y_pixel_size",
            "detector_distance",
        ),
        units=Units(),
    ),
    Field(
        MX, ("peakXPosRaw", "peakYPosRaw", "peakTotalIntensity", "latticeIndexed"), units=Units()
    ),
)


def _vectors(group: str) -> Field:
    """Every dataset of an extension group holds one value per image."""
    return Field(Place(f"/entry/{group}"), ANY, shapes=((ANY,),))


FIELD_RULES = (
    FieldRule(
        "JF-019",
        "image-statistics-shape",
        W,
        _vectors("image"),
        """/entry/image statistics are [n] vectors

        Spec: Jungfraujoch docs/HDF5.md §4.5
        Hint: write one value per image""",
    ),
    FieldRule(
        "JF-020",
        "profiling-shape",
        I,
        _vectors("profiling"),
        """/entry/profiling timings are [n] vectors in seconds

        Spec: Jungfraujoch docs/HDF5.md §4.6
        Hint: write one timing per image with units='s'""",
    ),
    FieldRule(
        "JF-021",
        "xfel-shape",
        I,
        _vectors("xfel"),
        """/entry/xfel pulseID, eventCode are [n]

        Spec: Jungfraujoch docs/HDF5.md §4.8
        Hint: write pulseID and eventCode with one value per image""",
    ),
    FieldRule(
        "JF-024",
        "pixel-mask-link",
        W,
        Field(DETECTOR, "detectorSpecific/pixel_mask", same_as="pixel_mask"),
        """detector/pixel_mask and detectorSpecific/pixel_mask are the same object

        Spec: Jungfraujoch docs/HDF5.md §3 (hard link)
        Hint: hard-link detectorSpecific/pixel_mask to detector/pixel_mask""",
    ),
    FieldRule(
        "JF-028",
        "goniometer-link",
        I,
        Field(SAMPLE, "goniometer", same_as="transformations"),
        """/entry/sample/goniometer is a hard link to the sample transformations

        Spec: Jungfraujoch docs/HDF5.md §3 (sample/goniometer hard link)
        Hint: hard-link sample/goniometer to sample/transformations""",
    ),
    FieldRule(
        "JF-029",
        "sample-cell-shapes",
        I,
        (Field(SAMPLE, "unit_cell", size=6), Field(SAMPLE, "ub_matrix", shapes=((MORE, 3, 3),))),
        """unit_cell has six numbers; ub_matrix is [1, 3, 3]

        Spec: Jungfraujoch docs/HDF5.md §3; NXsample
        Hint: unit_cell = [a, b, c, alpha, beta, gamma]; ub_matrix shape (1, 3, 3)""",
    ),
    FieldRule(
        "JF-030",
        "units-missing",
        W,
        UNITS_REQUIRED,
        """Datasets that Jungfraujoch's docs/HDF5.md lists with units carry a units attribute

        Spec: Jungfraujoch docs/HDF5.md §3-§4 (datasets listed with units)
        Hint: add the units attribute named in the Jungfraujoch HDF5 documentation""",
    ),
)
register_rows(FIELD_RULES)


@rule("JF-017", "azint-shapes", W)
def azint_shapes(ctx: FileContext) -> Iterator[Issue]:
    """/entry/azint bin maps share [phi, q]; image arrays [n, phi, q]

    Spec: Jungfraujoch docs/HDF5.md §4.3
    Hint: bin_to_* are [phi_bins, q_bins]; image/image_std/image_count are [n, phi, q]
    """
    group = ctx.extension("azint")
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


@rule("JF-018", "roi-definitions", W)
def roi_definitions(ctx: FileContext) -> Iterator[Issue]:
    """ROI results [n]; roi_defs type in {box, circle, azim}; bit_index unique < 16

    Spec: Jungfraujoch docs/HDF5.md §4.4
    Hint: one ROI per bit of the uint16 roi_map; type box, circle or azim
    """
    defs = ctx.extension("roi_defs")
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


@rule("JF-022", "user-not-scalar", W)
def user_not_scalar(ctx: FileContext) -> Iterator[Issue]:
    """/entry/user holds only scalars

    Spec: Jungfraujoch docs/HDF5.md §4.11 (header_appendix.hdf5)
    Hint: store only scalar strings and numbers
    """
    group = ctx.extension("user")
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


@rule("JF-023", "detector-specific", W)
def detector_specific(ctx: FileContext) -> Iterator[Issue]:
    """detectorSpecific pixel counts and image counts match the data

    Spec: Jungfraujoch docs/HDF5.md §4.9; relations: jfconform's own check
    Hint: x/y_pixels_in_detector = image width/height; nimages_written = frames (or the frames
    actually written, when images were missed)
    """
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


@rule("JF-025", "detector-extension-fields", I)
def detector_extension_fields(ctx: FileContext) -> Iterator[Issue]:
    """detector_distance = distance; bit_depth_image fits the dtype; acquisition_type

    Spec: Jungfraujoch docs/HDF5.md §4.10
    Hint: keep the Dectris-style duplicates consistent with the standard fields
    """
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


#: Jungfraujoch's detector chain (docs/HDF5.md §3), from the detector's depends_on outwards,
#: with each axis's transformation type: depends_on → rot3 → rot2 → rot1 → translation → ".".
JUNGFRAUJOCH_DETECTOR_CHAIN = (
    ("rot3", "rotation"),
    ("rot2", "rotation"),
    ("rot1", "rotation"),
    ("translation", "translation"),
)


@rule("JF-026", "detector-chain-names", I)
def detector_chain_names(ctx: FileContext) -> Iterator[Issue]:
    """Detector chain depends_on → rot3 → rot2 → rot1 → translation → '.'

    Spec: Jungfraujoch docs/HDF5.md §3 (PONI axes)
    Hint: Jungfraujoch names the detector axes rot3 → rot2 → rot1 → translation (PONI)
    """
    expected = " → ".join(name for name, _kind in JUNGFRAUJOCH_DETECTOR_CHAIN)
    for detector in ctx.detectors:
        start = chains.of_group(ctx, detector)
        if start is None or start.value.strip() == ".":
            continue
        chain = chains.walk(ctx, start)
        found = [leaf(path) for path in chain.axes]
        kinds = [ctx.attr_text(ctx.dataset(path), "transformation_type") for path in chain.axes]
        if chain.end != "dot" or list(zip(found, kinds, strict=True)) != list(
            JUNGFRAUJOCH_DETECTOR_CHAIN
        ):
            shown = " → ".join(f"{name} ({kind})" for name, kind in zip(found, kinds, strict=True))
            yield Issue(start.where, f"chain is {shown or 'empty'}, not {expected} → '.'")


@rule("JF-027", "rotation-axis-summaries", W)
def rotation_axis_summaries(ctx: FileContext) -> Iterator[Issue]:
    """Rotation scans: <axis> and <axis>_end [n]; range_average/total consistent

    Spec: Jungfraujoch docs/HDF5.md §3 NXsample
    Hint: write <axis>_end and <axis>_range_total = n × <axis>_range_average
    """
    n = ctx.n_frames
    for sample in ctx.samples:
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


@rule("JF-015", "run-summaries", I)
def run_summaries(ctx: FileContext) -> Iterator[Issue]:
    """Master run summaries well formed (rotationLatticeIndexed [9], algorithm text)

    Spec: Jungfraujoch docs/HDF5.md §4.1 run-level summaries
    Hint: rotationLatticeIndexed is 9 floats (Å); indexing_algorithm is a string
    """
    lattice = ctx.mx_dataset("rotationLatticeIndexed")
    if lattice is not None and lattice.size != 9:
        yield Issue(lattice.name, f"rotationLatticeIndexed has {lattice.size} values, not 9")
    algorithm = ctx.mx_dataset("indexing_algorithm")
    if algorithm is not None and ctx.text(algorithm) is None:
        yield Issue(algorithm.name, "indexing_algorithm is not a string")
    mx, both = ctx.mx, ("indexedLatticeCount", "indexingLatticeCount")
    if mx is not None and all(ctx.mx_dataset(name) is not None for name in both):
        yield Issue(mx.name, "both indexedLatticeCount and indexingLatticeCount exist")


@rule("JF-031", "vds-extensions-exposed", I)
def vds_extensions_exposed(ctx: FileContext) -> Iterator[Issue]:
    """A VDS master exposes the data files' /entry/MX through virtual datasets

    Spec: Jungfraujoch docs/HDF5.md §2, §4 (VDS master exposes analysis arrays)
    Hint: add virtual datasets under /entry/MX mapping the data files' arrays
    """
    if ctx.layout != "vds" or ctx.mx is not None or not ctx.image_stores:
        return
    source_entry = ctx.group("/entry", ctx.image_stores[0].dataset.file)
    if source_entry is not None and "MX" in ctx.member_names(source_entry):
        yield Issue("/entry", "data files hold /entry/MX but the master does not expose it")
