"""Reader-profile rules (RD): what CrystFEL, DIALS/dxtbx, Neggia and Durin need (§5, §7.8).

Warnings become errors under ``--profile`` for their reader, as do the I rules marked
``raisable``; the other I rules stay informational. A defect is a warning once: where a
specification rule (or another reader's rule) already reports it at warning or above, the
reader's restatement is information, still raised to an error by that reader's profile.
"""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from jfconform.context import FileContext, ImageStore
from jfconform.model import I, Issue, W
from jfconform.registry import rule
from jfconform.rules._common import all_depends_on, units_of, walk_chain
from jfconform.rules.h5 import (
    BITSHUFFLE,
    LZ4,
    ZSTD_IN_BITSHUFFLE,
    filters_of,
    image_filter_problem,
    single_chunk_index,
    written_frames,
)
from jfconform.units import LENGTH

DXTBX_MATERIALS = ("Si", "Silicon", "CdTe", "GaAs")
DURIN_LENGTHS = frozenset(
    """m metres meters metre meter cm centimetres centimeters mm millimetres millimeters um
    microns micrometres micrometers""".split()
)


def _specific_missing(ctx: FileContext, name: str) -> bool:
    """Nothing named ``name`` in any detectorSpecific (unreadable is H5-013's, not missing)."""
    return all(ctx.missing(f"detectorSpecific/{name}", d) for d in ctx.detectors)


def _detector_specific(ctx: FileContext, name: str) -> h5py.Dataset | None:
    for detector in ctx.detectors:
        dataset = ctx.dataset(f"detectorSpecific/{name}", detector)
        if dataset is not None:
            return dataset
    return None


@rule(
    "RD-DIALS-001",
    "dials-wavelength-units",
    I,
    spec="DIALS nxmx (pint units); restates NXG-006",
    summary="incident_wavelength units parse in pint ('angstrom' or 'Å', not 'Angstrom'/'A')",
    hint="write units='angstrom'",
    raisable=True,
)
def dials_wavelength_units(ctx: FileContext) -> Iterator[Issue]:
    for instrument in ctx.instruments:
        for beam in ctx.children_of_class(instrument, "NXbeam"):
            dataset = ctx.dataset("incident_wavelength", beam)
            if dataset is None:
                continue
            text, unit = units_of(ctx, dataset)
            if text is not None and (unit is None or unit.dimension != LENGTH):
                yield Issue(dataset.name, f"units {text!r} do not parse as a length in pint")


@rule(
    "RD-DIALS-002",
    "dials-units-present",
    W,
    spec="DIALS nxmx (no default units)",
    summary="units on distance, frame_time, sensor_thickness, incident_wavelength, chain axes",
    hint="add a units attribute to each listed dataset",
    raisable=True,
)
def dials_units_present(ctx: FileContext) -> Iterator[Issue]:
    targets: list[h5py.Dataset] = []
    for detector in ctx.detectors:
        targets += [
            d
            for n in ("distance", "frame_time", "sensor_thickness")
            if (d := ctx.dataset(n, detector)) is not None
        ]
    for instrument in ctx.instruments:
        for beam in ctx.children_of_class(instrument, "NXbeam"):
            if (d := ctx.dataset("incident_wavelength", beam)) is not None:
                targets.append(d)
    seen = set()
    for start in all_depends_on(ctx):
        for axis_path in walk_chain(ctx, start).axes:
            if axis_path not in seen and (d := ctx.dataset(axis_path)) is not None:
                seen.add(axis_path)
                values = ctx.value(d)
                if values is None or (values != 0).any():
                    targets.append(d)
    for dataset in targets:
        if ctx.attr(dataset, "units") is None:
            yield Issue(dataset.name, "no units attribute (DIALS has no default here)")


@rule(
    "RD-DIALS-003",
    "dials-beam-source-place",
    I,
    spec="DIALS nxmx find_classes; restates NXMX-027, NXMX-032",
    summary="NXbeam in NXinstrument; NXsource in NXentry",
    hint="DIALS looks for the beam only in the instrument and the source only in the entry",
    raisable=True,
)
def dials_beam_source_place(ctx: FileContext) -> Iterator[Issue]:
    if ctx.entry is None:
        return
    if ctx.instruments and not any(ctx.children_of_class(i, "NXbeam") for i in ctx.instruments):
        yield Issue(ctx.instruments[0].name, "no NXbeam in the instrument")
    if not ctx.in_entry("NXsource"):
        yield Issue(ctx.entry.name, "no NXsource directly in the entry")


@rule(
    "RD-DIALS-004",
    "dials-detector-depends-on",
    I,
    spec="DIALS nxmx (AttributeError on '.'); restates NXT-008",
    summary="NXdetector depends_on names a dataset (not '.')",
    hint="point detector/depends_on at an axis dataset",
    raisable=True,
)
def dials_detector_depends_on(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        dataset = ctx.dataset("depends_on", detector)
        text = ctx.text(dataset)
        if dataset is not None and (text is None or text.strip() == "."):
            yield Issue(dataset.name, "detector depends_on is '.'; DIALS nxmx fails on it")


@rule(
    "RD-DIALS-005",
    "dials-module-arrays",
    W,
    spec="DIALS nxmx (asserts arrays)",
    summary="data_origin, data_size are arrays, not scalars",
    hint="write data_origin/data_size as 1-D arrays",
    raisable=True,
)
def dials_module_arrays(ctx: FileContext) -> Iterator[Issue]:
    for module in ctx.modules:
        for name in ("data_origin", "data_size"):
            dataset = ctx.dataset(name, module)
            if dataset is not None and dataset.ndim == 0:
                yield Issue(dataset.name, f"{name} is a scalar")


@rule(
    "RD-DIALS-006",
    "dials-scale-factor-name",
    I,
    spec="DIALS nxmx reads data_scale_factor",
    summary="data_scaling_factor is invisible to nxmx (it reads data_scale_factor)",
    hint="write data_scale_factor too if DIALS must apply it",
)
def dials_scale_factor_name(ctx: FileContext) -> Iterator[Issue]:
    group = ctx.data_group
    if group is not None and "data_scaling_factor" in ctx.member_names(group):
        if "data_scale_factor" not in ctx.member_names(group):
            yield Issue(f"{group.name}/data_scaling_factor", "DIALS will not apply this scale")


@rule(
    "RD-DXTBX-001",
    "dxtbx-sensor-material",
    W,
    spec="dxtbx FormatNXmx",
    summary="sensor_material in {Si, Silicon, CdTe, GaAs}",
    hint="spell the material Si, Silicon, CdTe or GaAs",
)
def dxtbx_sensor_material(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        dataset = ctx.dataset("sensor_material", detector)
        text = ctx.text(dataset)
        if dataset is not None and text not in DXTBX_MATERIALS:
            yield Issue(dataset.name, f"dxtbx does not know material {text!r}")


@rule(
    "RD-DXTBX-002",
    "dxtbx-pixel-mask",
    W,
    spec="dxtbx static mask",
    summary="NXdetector/pixel_mask exists (I: NXMX-023 reports it) and is 2-D (W)",
    hint="write detector/pixel_mask [ny, nx]",
)
def dxtbx_pixel_mask(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        mask = ctx.dataset("pixel_mask", detector)
        if mask is None:
            yield Issue(f"{detector.name}/pixel_mask", "no pixel_mask in the detector", severity=I)
        elif mask.ndim != 2:
            yield Issue(mask.name, f"pixel_mask has rank {mask.ndim}; dxtbx needs 2-D")


@rule(
    "RD-DXTBX-003",
    "dxtbx-signal",
    I,
    spec="dxtbx raw data lookup; restates NXG-011",
    summary="NXdata @signal set (otherwise the first child by name is used)",
    hint="set /entry/data/@signal",
    raisable=True,
)
def dxtbx_signal(ctx: FileContext) -> Iterator[Issue]:
    group = ctx.data_group
    if group is None or not ctx.member_names(group):
        return  # nothing to signal: the missing data is JF-003's finding
    if ctx.attr(group, "signal") is None:
        yield Issue(group.name, "no @signal; dxtbx takes the first child")


@rule(
    "RD-NEGGIA-001",
    "neggia-nimages",
    W,
    spec="Neggia H5ToXds",
    summary="detectorSpecific/nimages integer > 0; ntrigger integer > 0 if present",
    hint="write detectorSpecific/nimages (and ntrigger) as positive integers",
    raisable=True,
)
def neggia_nimages(ctx: FileContext) -> Iterator[Issue]:
    if not ctx.detectors:
        return
    for name, required in (("nimages", True), ("ntrigger", False)):
        dataset = _detector_specific(ctx, name)
        if dataset is None:
            if required and _specific_missing(ctx, name):
                yield Issue(f"{ctx.detectors[0].name}/detectorSpecific/{name}", "missing")
            continue
        value = ctx.number(dataset)
        if dataset.dtype.kind not in "iu" or value is None or value <= 0:
            yield Issue(dataset.name, f"{name} must be an integer > 0")


@rule(
    "RD-NEGGIA-002",
    "neggia-pixel-mask",
    W,
    spec="Neggia (mask defines nx, ny; unchunked)",
    summary="detectorSpecific/pixel_mask 2-D integer, unchunked, frame-shaped",
    hint="write an unchunked uint32 detectorSpecific/pixel_mask [ny, nx]",
    raisable=True,
)
def neggia_pixel_mask(ctx: FileContext) -> Iterator[Issue]:
    if not ctx.detectors:
        return
    mask = _detector_specific(ctx, "pixel_mask")
    if mask is None:
        if _specific_missing(ctx, "pixel_mask"):
            yield Issue(f"{ctx.detectors[0].name}/detectorSpecific/pixel_mask", "missing")
        return
    if mask.ndim != 2:
        yield Issue(mask.name, f"rank {mask.ndim}")
    elif ctx.frame_shape is not None and tuple(mask.shape) != tuple(ctx.frame_shape):
        yield Issue(mask.name, f"shape {mask.shape} != frame {ctx.frame_shape}")
    # Chunks and the element type are H5-009's and NXMX-026's findings: restated as info.
    restated = []
    if mask.dtype.kind not in "iu" or mask.dtype.itemsize not in (1, 2, 4, 8):
        restated.append(f"{mask.dtype} elements")
    if mask.chunks is not None:
        restated.append("chunked")
    if restated:
        yield Issue(mask.name, f"{'; '.join(restated)}: Neggia cannot read it", severity=I)


@rule(
    "RD-NEGGIA-003",
    "neggia-no-vds",
    I,
    spec="Neggia (virtual layout unsupported)",
    summary="Images via data_NNNNNN links or a real /entry/data/data (no VDS)",
    hint="use the legacy or integrated layout for XDS with Neggia",
    raisable=True,
)
def neggia_no_vds(ctx: FileContext) -> Iterator[Issue]:
    if ctx.layout == "vds":
        yield Issue(ctx.image_dataset.name, "virtual dataset: Neggia cannot read it")


@rule(
    "RD-NEGGIA-004",
    "neggia-image-type",
    W,
    spec="Neggia (unsigned 1/2/4-byte integers)",
    summary="Image dtype integer of 1, 2 or 4 bytes (W); signed data with negative counts read "
    "as unsigned (I, E under --profile neggia); only the error value negative (I)",
    hint="Neggia reads pixels as unsigned: read this run with Durin for XDS, or store the "
    "images unsigned (e.g. uint16 with the error value as 65535)",
    raisable=True,
    roles=("master", "data"),
)
def neggia_image_type(ctx: FileContext) -> Iterator[Issue]:
    for store in ctx.image_stores[:1]:
        dtype = store.dataset.dtype
        if dtype.kind not in "iu" or dtype.itemsize not in (1, 2, 4):
            yield Issue(
                store.dataset.name, f"image dtype {dtype} unsupported", file=store.file_name
            )
        elif dtype.kind == "i":
            yield _signed_images(ctx, store)


def _signed_images(ctx: FileContext, store: ImageStore) -> Issue:
    """Signed images: harmless for Neggia when the sampled frames hold no negative value but
    the error sentinel (JUNGFRAU int16: −32768, read as 32768), else a real problem."""
    dtype = store.dataset.dtype
    error_value = _error_value(ctx, dtype)
    frames, lowest = _sampled_negatives(ctx, store, error_value)
    if frames and lowest is None:
        as_unsigned = error_value % 2 ** (8 * dtype.itemsize)
        return Issue(
            store.dataset.name,
            f"{dtype} images: no negative value but the error value {error_value} in "
            f"{frames} sampled frame(s); Neggia reads it as {as_unsigned}",
            "nothing to do for Neggia: keep those pixels in pixel_mask so XDS ignores them",
            severity=I,
            file=store.file_name,
            profile_raises=False,
        )
    what = (
        f"negative counts (lowest {lowest}) in {frames} sampled frame(s)"
        if frames
        else "frames that could not be sampled (--sample 0 or unreadable)"
    )
    return Issue(
        store.dataset.name,
        f"{dtype} images with {what}: Neggia reads them as large unsigned counts",
        severity=I,
        file=store.file_name,
    )


def _error_value(ctx: FileContext, dtype: np.dtype) -> int:
    for detector in ctx.detectors:
        value = ctx.number(ctx.dataset("error_value", detector))
        if value is not None:
            return int(value)
    return int(np.iinfo(dtype).min)


def _sampled_negatives(
    ctx: FileContext, store: ImageStore, error_value: int
) -> tuple[int, int | None]:
    """(frames sampled, lowest negative count other than ``error_value`` or ``None``)."""
    dataset = store.dataset
    if dataset.ndim != 3:
        return 0, None
    written = written_frames(dataset)
    if written is not None:
        candidates = [int(f) for f in written.chunk_starts[: ctx.sample]]
    else:
        candidates = list(range(min(ctx.sample, int(dataset.shape[0]))))
    sampled, lowest = 0, None
    for frame in candidates:
        pixels = ctx.rows(dataset, frame, frame + 1, image_frames=True)
        if pixels is None:
            continue
        sampled += 1
        negative = pixels[(pixels < 0) & (pixels != error_value)]
        if negative.size:
            found = int(negative.min())
            lowest = found if lowest is None else min(lowest, found)
    return sampled, lowest


@rule(
    "RD-NEGGIA-005",
    "neggia-filter",
    W,
    spec="Neggia (none / LZ4 / bitshuffle+LZ4)",
    summary="Filter none, LZ4 or bitshuffle+LZ4 (no Zstd)",
    hint="use bitshuffle with LZ4 for Neggia",
    raisable=True,
    roles=("master", "data"),
)
def neggia_filter(ctx: FileContext) -> Iterator[Issue]:
    for store in ctx.image_stores:
        pipeline = filters_of(store.dataset)
        ok = not pipeline or (
            len(pipeline) == 1
            and (
                pipeline[0][0] == LZ4
                or (
                    pipeline[0][0] == BITSHUFFLE
                    and len(pipeline[0][1]) > 4
                    and pipeline[0][1][4] == 2
                )
            )
        )
        if not ok:
            yield Issue(
                store.dataset.name,
                f"filters {pipeline} are not readable by Neggia",
                file=store.file_name,
                # a pipeline H5-003 already rejects is restated; Zstd is Neggia's own problem
                severity=None if image_filter_problem(store.dataset) is None else I,
            )


@rule(
    "RD-NEGGIA-006",
    "neggia-pixel-size",
    W,
    spec="Neggia (x/y_pixel_size float, metres)",
    summary="x_pixel_size, y_pixel_size float scalars in metres",
    hint="write x/y_pixel_size as float64 scalars with units='m'",
)
def neggia_pixel_size(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        for name in ("x_pixel_size", "y_pixel_size"):
            dataset = ctx.dataset(name, detector)
            if dataset is None and ctx.missing(name, detector):
                # missing in detectorSpecific too: RD-DURIN-002's warning, restated here
                elsewhere = ctx.dataset(f"detectorSpecific/{name}", detector) is not None
                yield Issue(
                    f"{detector.name}/{name}",
                    "missing (Neggia passes 0 to XDS)",
                    severity=None if elsewhere else I,
                )
            elif dataset.dtype.kind != "f" or dataset.size != 1:
                yield Issue(dataset.name, f"{name} is {dataset.dtype} {dataset.shape}")
            elif ctx.attr_text(dataset, "units") not in ("m", None):
                yield Issue(dataset.name, "Neggia passes the value unconverted: store metres")


@rule(
    "RD-NEGGIA-007",
    "neggia-chunk-index",
    I,
    spec="Neggia (no single-chunk index); restates H5-005",
    summary="Chunk index is fixed/extensible array or B-tree (not single chunk)",
    hint="create image datasets with maxshape=(None, ny, nx)",
    raisable=True,
    roles=("master", "data"),
)
def neggia_chunk_index(ctx: FileContext) -> Iterator[Issue]:
    for store in ctx.image_stores:
        if single_chunk_index(store.dataset):
            yield Issue(store.dataset.name, "single-chunk index", file=store.file_name)


@rule(
    "RD-DURIN-001",
    "durin-single-groups",
    W,
    spec="Durin H5Ovisit (last one wins)",
    summary="At most one NXdata and one NXdetector reachable by hard links",
    hint="avoid extra NXdata/NXdetector groups; Durin takes the last one visited",
)
def durin_single_groups(ctx: FileContext) -> Iterator[Issue]:
    counts = {"NXdata": [], "NXdetector": []}
    for path, obj in ctx.walk():
        if isinstance(obj, h5py.Group) and ctx.nx_class(obj) in counts:
            counts[ctx.nx_class(obj)].append(path)
    for name, paths in counts.items():
        if len(paths) > 1:  # none at all is NXMX-005's / NXMX-015's finding
            yield Issue("/", f"{len(paths)} {name} groups ({', '.join(paths[:3])})")


@rule(
    "RD-DURIN-002",
    "durin-pixel-size",
    W,
    spec="Durin (pixel size required)",
    summary="x_pixel_size/y_pixel_size present with m/mm/cm/um units",
    hint="write x/y_pixel_size with units='m'",
    raisable=True,
)
def durin_pixel_size(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        for name in ("x_pixel_size", "y_pixel_size"):
            dataset = ctx.dataset(name, detector)
            if dataset is None:
                dataset = ctx.dataset(f"detectorSpecific/{name}", detector)
            if dataset is None:
                if ctx.missing(name, detector) and ctx.missing(
                    f"detectorSpecific/{name}", detector
                ):
                    yield Issue(f"{detector.name}/{name}", "missing; Durin cannot run")
            elif ctx.attr_text(dataset, "units") not in DURIN_LENGTHS:
                yield Issue(
                    dataset.name,
                    f"units {ctx.attr_text(dataset, 'units')!r} are read as metres by Durin",
                )


@rule(
    "RD-DURIN-003",
    "durin-pixel-mask",
    W,
    spec="Durin mask lookup",
    summary="Pixel mask in NXdetector or detectorSpecific",
    hint="write detector/pixel_mask",
)
def durin_pixel_mask(ctx: FileContext) -> Iterator[Issue]:
    for detector in ctx.detectors:
        if (
            ctx.dataset("pixel_mask", detector) is None
            and _detector_specific(ctx, "pixel_mask") is None
        ):
            yield Issue(detector.name, "no pixel_mask: Durin applies no masking")


@rule(
    "RD-DURIN-004",
    "durin-image-rank",
    W,
    spec="Durin (rank 3)",
    summary="Image datasets rank 3",
    hint="store images as [frames, ny, nx]",
    raisable=True,
    roles=("master", "data"),
)
def durin_image_rank(ctx: FileContext) -> Iterator[Issue]:
    for store in ctx.image_stores:
        if store.dataset.ndim != 3:
            yield Issue(store.dataset.name, f"rank {store.dataset.ndim}", file=store.file_name)


@rule(
    "RD-DURIN-005",
    "durin-zstd",
    W,
    spec="Durin direct-chunk path (LZ4 only)",
    summary="Bitshuffle with Zstd is misdecoded on Durin's fast path",
    hint="use bitshuffle with LZ4 for Durin",
    raisable=True,
    roles=("master", "data"),
)
def durin_zstd(ctx: FileContext) -> Iterator[Issue]:
    for store in ctx.image_stores:
        for code, values in filters_of(store.dataset):
            if code == BITSHUFFLE and len(values) > 4 and values[4] == ZSTD_IN_BITSHUFFLE:
                yield Issue(store.dataset.name, "bitshuffle+Zstd chunks", file=store.file_name)


@rule(
    "RD-DURIN-006",
    "durin-sign-extension",
    I,
    spec="Durin (sign extension)",
    summary="Unsigned 16-bit counts >= 32768 become negative after sign extension",
    hint="keep counts below 32768 or use 32-bit images for Durin",
    roles=("master", "data"),
)
def durin_sign_extension(ctx: FileContext) -> Iterator[Issue]:
    for store in ctx.image_stores[:1]:
        if store.dataset.dtype.kind == "u" and store.dataset.dtype.itemsize == 2:
            yield Issue(
                store.dataset.name,
                "uint16 images: values >= 32768 read as negative",
                file=store.file_name,
            )


@rule(
    "RD-CFL-001",
    "crystfel-geometry",
    W,
    spec="CrystFEL geometry (conformance.md §4.4)",
    summary="With /entry/MX, the master offers /entry/data/data of rank 3 for dim0 = %",
    hint="CrystFEL needs data = /entry/data/data, dim0 = %, peak_list = /entry/MX",
)
def crystfel_geometry(ctx: FileContext) -> Iterator[Issue]:
    if ctx.entry is None or ctx.group("MX", ctx.entry) is None:
        return
    if ctx.image_dataset is None and not ctx.legacy_links:
        return  # no image data at all is JF-003's finding
    if ctx.image_dataset is None or ctx.image_dataset.ndim != 3:
        yield Issue("/entry/data", "/entry/MX exists but /entry/data/data is not a 3-D stack")


@rule(
    "RD-CFL-002",
    "crystfel-header-arrays",
    W,
    spec="CrystFEL header cache",
    summary="Per-frame header arrays have one value per frame",
    hint="write per-frame wavelength/distance arrays with one value per frame",
)
def crystfel_header_arrays(ctx: FileContext) -> Iterator[Issue]:
    n = ctx.n_frames
    if not n:
        return
    candidates = []
    for instrument in ctx.instruments:
        for beam in ctx.children_of_class(instrument, "NXbeam"):
            candidates.append(ctx.dataset("incident_wavelength", beam))
    candidates += [ctx.dataset("distance", d) for d in ctx.detectors]
    for dataset in candidates:
        if dataset is not None and dataset.size > 1 and dataset.shape[0] < n:
            yield Issue(dataset.name, f"{dataset.shape[0]} values for {n} frames")


@rule(
    "RD-CFL-003",
    "crystfel-integer-sentinels",
    I,
    spec="CrystFEL (only float NaN auto-masked)",
    summary="Integer image sentinels need a mask or flag directive",
    hint="add flag_lessthan/flag_morethan or a mask to the CrystFEL geometry",
)
def crystfel_integer_sentinels(ctx: FileContext) -> Iterator[Issue]:
    stores = ctx.image_stores
    if stores and stores[0].dataset.dtype.kind in "iu":
        yield Issue(
            "/entry/data",
            f"{stores[0].dataset.dtype} images: mask the fill value in the CrystFEL geometry",
        )
