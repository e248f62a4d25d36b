"""Reader-profile rules (RD): what CrystFEL, DIALS/dxtbx, Neggia and Durin need (their sources).

Warnings become errors under ``--profile`` for their reader, as do the I rules marked
``raisable``; the other I rules stay informational. A defect is a warning once: where a
specification rule (or another reader's rule) already reports it at warning or above, the
reader's restatement is information, still raised to an error by that reader's profile.
"""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from jfconform import chains
from jfconform.context import FileContext
from jfconform.field_rules import (
    ANY,
    BEAM,
    DETECTOR,
    MODULE,
    MORE,
    Field,
    FieldRule,
    Units,
    register_rows,
)
from jfconform.model import I, Issue, W
from jfconform.registry import BOTH, rule
from jfconform.rules.h5 import image_filter_problem
from jfconform.storage import (
    BITSHUFFLE,
    LZ4,
    LZ4_IN_BITSHUFFLE,
    ZSTD_IN_BITSHUFFLE,
    ImageStore,
    filters_of,
    single_chunk_index,
    written_frames,
)
from jfconform.units import LENGTH

DXTBX_MATERIALS = ("Si", "Silicon", "CdTe", "GaAs")
DURIN_LENGTHS = frozenset(
    """m metres meters metre meter cm centimetres centimeters mm millimetres millimeters um
    microns micrometres micrometers""".split()
)

FIELD_RULES = (
    FieldRule(
        "RD-DIALS-001",
        "dials-wavelength-units",
        I,
        Field(BEAM, "incident_wavelength", units=Units((LENGTH,), required=False, known=True)),
        """incident_wavelength units parse in pint ('angstrom' or 'Å', not 'Angstrom'/'A')

        Spec: DIALS nxmx (pint units); restates NXG-006
        Hint: write units='angstrom'""",
        raisable=True,
    ),
    FieldRule(
        "RD-DIALS-004",
        "dials-detector-depends-on",
        I,
        Field(DETECTOR, "depends_on", not_dot=True),
        """NXdetector depends_on names a dataset (not '.')

        Spec: DIALS nxmx (AttributeError on '.'); restates NXT-008
        Hint: point detector/depends_on at an axis dataset""",
        raisable=True,
    ),
    FieldRule(
        "RD-DIALS-005",
        "dials-module-arrays",
        W,
        Field(MODULE, ("data_origin", "data_size"), shapes=((ANY, MORE),)),
        """data_origin, data_size are arrays, not scalars

        Spec: DIALS nxmx (asserts arrays)
        Hint: write data_origin/data_size as 1-D arrays""",
        raisable=True,
    ),
    FieldRule(
        "RD-DXTBX-001",
        "dxtbx-sensor-material",
        W,
        Field(DETECTOR, "sensor_material", values=DXTBX_MATERIALS),
        """sensor_material in {Si, Silicon, CdTe, GaAs}

        Spec: dxtbx FormatNXmx
        Hint: spell the material Si, Silicon, CdTe or GaAs""",
    ),
)
register_rows(FIELD_RULES)


def _specific_missing(ctx: FileContext, name: str) -> bool:
    """Nothing named ``name`` in any detectorSpecific (unreadable is H5-013's, not missing)."""
    return all(ctx.missing(f"detectorSpecific/{name}", d) for d in ctx.detectors)


@rule("RD-DIALS-002", "dials-units-present", W, raisable=True)
def dials_units_present(ctx: FileContext) -> Iterator[Issue]:
    """units on distance, frame_time, sensor_thickness, incident_wavelength, chain axes

    Spec: DIALS nxmx (no default units)
    Hint: add a units attribute to each listed dataset
    """
    targets: list[h5py.Dataset] = []
    for detector in ctx.detectors:
        targets += [
            d
            for n in ("distance", "frame_time", "sensor_thickness")
            if (d := ctx.dataset(n, detector)) is not None
        ]
    targets += [d for b in ctx.beams if (d := ctx.dataset("incident_wavelength", b)) is not None]
    seen = set()
    for start in chains.occurrences(ctx):
        for axis_path in chains.walk(ctx, start).axes:
            if axis_path not in seen and (d := ctx.dataset(axis_path)) is not None:
                seen.add(axis_path)
                values = ctx.value(d)
                if values is None or (values != 0).any():
                    targets.append(d)
    for dataset in targets:
        if ctx.attr(dataset, "units") is None:
            yield Issue(dataset.name, "no units attribute (DIALS has no default here)")


@rule("RD-DIALS-003", "dials-beam-source-place", I, raisable=True)
def dials_beam_source_place(ctx: FileContext) -> Iterator[Issue]:
    """NXbeam in NXinstrument; NXsource in NXentry

    Spec: DIALS nxmx find_classes; restates NXMX-027, NXMX-032
    Hint: DIALS looks for the beam only in the instrument and the source only in the entry
    """
    if ctx.entry is None:
        return
    if ctx.instruments and not ctx.beams:
        yield Issue(ctx.instruments[0].name, "no NXbeam in the instrument")
    if not ctx.sources:
        yield Issue(ctx.entry.name, "no NXsource directly in the entry")


@rule("RD-DIALS-006", "dials-scale-factor-name", I)
def dials_scale_factor_name(ctx: FileContext) -> Iterator[Issue]:
    """data_scaling_factor is invisible to nxmx (it reads data_scale_factor)

    Spec: DIALS nxmx reads data_scale_factor
    Hint: write data_scale_factor too if DIALS must apply it
    """
    group = ctx.data_group
    if group is not None and "data_scaling_factor" in ctx.member_names(group):
        if "data_scale_factor" not in ctx.member_names(group):
            yield Issue(f"{group.name}/data_scaling_factor", "DIALS will not apply this scale")


@rule("RD-DXTBX-002", "dxtbx-pixel-mask", W)
def dxtbx_pixel_mask(ctx: FileContext) -> Iterator[Issue]:
    """NXdetector/pixel_mask exists (I: NXMX-023 reports it) and is 2-D (W)

    Spec: dxtbx static mask
    Hint: write detector/pixel_mask [ny, nx]
    """
    for detector in ctx.detectors:
        mask = ctx.dataset("pixel_mask", detector)
        if mask is None:
            yield Issue(f"{detector.name}/pixel_mask", "no pixel_mask in the detector", severity=I)
        elif mask.ndim != 2:
            yield Issue(mask.name, f"pixel_mask has rank {mask.ndim}; dxtbx needs 2-D")


@rule("RD-DXTBX-003", "dxtbx-signal", I, raisable=True)
def dxtbx_signal(ctx: FileContext) -> Iterator[Issue]:
    """NXdata @signal set (otherwise the first child by name is used)

    Spec: dxtbx raw data lookup; restates NXG-011
    Hint: set /entry/data/@signal
    """
    group = ctx.data_group
    if group is None or not ctx.member_names(group):
        return  # nothing to signal: the missing data is JF-003's finding
    if ctx.attr(group, "signal") is None:
        yield Issue(group.name, "no @signal; dxtbx takes the first child")


@rule("RD-NEGGIA-001", "neggia-nimages", W, raisable=True)
def neggia_nimages(ctx: FileContext) -> Iterator[Issue]:
    """detectorSpecific/nimages integer > 0; ntrigger integer > 0 if present

    Spec: Neggia H5ToXds
    Hint: write detectorSpecific/nimages (and ntrigger) as positive integers
    """
    if not ctx.detectors:
        return
    for name, required in (("nimages", True), ("ntrigger", False)):
        dataset = ctx.detector_specific(name)
        if dataset is None:
            if required and _specific_missing(ctx, name):
                yield Issue(f"{ctx.detectors[0].name}/detectorSpecific/{name}", "missing")
            continue
        value = ctx.number(dataset)
        if dataset.dtype.kind not in "iu" or value is None or value <= 0:
            yield Issue(dataset.name, f"{name} must be an integer > 0")


@rule("RD-NEGGIA-002", "neggia-pixel-mask", W, raisable=True)
def neggia_pixel_mask(ctx: FileContext) -> Iterator[Issue]:
    """detectorSpecific/pixel_mask 2-D integer, unchunked, frame-shaped

    Spec: Neggia (mask defines nx, ny; unchunked)
    Hint: write an unchunked uint32 detectorSpecific/pixel_mask [ny, nx]
    """
    if not ctx.detectors:
        return
    mask = ctx.detector_specific("pixel_mask")
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


@rule("RD-NEGGIA-003", "neggia-no-vds", I, raisable=True)
def neggia_no_vds(ctx: FileContext) -> Iterator[Issue]:
    """Images via data_NNNNNN links or a real /entry/data/data (no VDS)

    Spec: Neggia (virtual layout unsupported)
    Hint: use the legacy or integrated layout for XDS with Neggia
    """
    image = ctx.image_dataset
    if ctx.layout == "vds" and image is not None:
        yield Issue(image.name, "virtual dataset: Neggia cannot read it")


@rule("RD-NEGGIA-004", "neggia-image-type", W, roles=BOTH, raisable=True)
def neggia_image_type(ctx: FileContext) -> Iterator[Issue]:
    """Image dtype integer of 1, 2 or 4 bytes (W); signed data with negative counts read as
    unsigned (I, E under --profile neggia); only the error value negative (I)

    Spec: Neggia (unsigned 1/2/4-byte integers)
    Hint: Neggia reads pixels as unsigned: read this run with Durin for XDS, or store the images
    unsigned (e.g. uint16 with the error value as 65535)
    """
    for store in ctx.image_stores[:1]:
        dtype = store.dataset.dtype
        if dtype.kind not in "iu" or dtype.itemsize not in (1, 2, 4):
            yield store.issue(f"image dtype {dtype} unsupported")
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
        return store.issue(
            f"{dtype} images: no negative value but the error value {error_value} in "
            f"{frames} sampled frame(s); Neggia reads it as {as_unsigned}",
            "nothing to do for Neggia: keep those pixels in pixel_mask so XDS ignores them",
            severity=I,
            profile_raises=False,
        )
    what = (
        f"negative counts (lowest {lowest}) in {frames} sampled frame(s)"
        if frames
        else "frames that could not be sampled (--sample 0 or unreadable)"
    )
    return store.issue(
        f"{dtype} images with {what}: Neggia reads them as large unsigned counts", severity=I
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


@rule("RD-NEGGIA-005", "neggia-filter", W, roles=BOTH, raisable=True)
def neggia_filter(ctx: FileContext) -> Iterator[Issue]:
    """Filter none, LZ4 or bitshuffle+LZ4 (no Zstd)

    Spec: Neggia (none / LZ4 / bitshuffle+LZ4)
    Hint: use bitshuffle with LZ4 for Neggia
    """
    for store in ctx.image_stores:
        pipeline = filters_of(store.dataset)
        ok = not pipeline or (
            len(pipeline) == 1
            and (
                pipeline[0][0] == LZ4
                or (
                    pipeline[0][0] == BITSHUFFLE
                    and len(pipeline[0][1]) > 4
                    and pipeline[0][1][4] == LZ4_IN_BITSHUFFLE
                )
            )
        )
        if not ok:
            yield store.issue(
                f"filters {pipeline} are not readable by Neggia",
                severity=None if image_filter_problem(store.dataset) is None else I,
            )


@rule("RD-NEGGIA-006", "neggia-pixel-size", W)
def neggia_pixel_size(ctx: FileContext) -> Iterator[Issue]:
    """x_pixel_size, y_pixel_size float scalars in metres

    Spec: Neggia (x/y_pixel_size float, metres)
    Hint: write x/y_pixel_size as float64 scalars with units='m'
    """
    for detector in ctx.detectors:
        for name in ("x_pixel_size", "y_pixel_size"):
            dataset = ctx.dataset(name, detector)
            if dataset is None:
                if ctx.missing(name, detector):  # unreadable is H5-013's
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


@rule("RD-NEGGIA-007", "neggia-chunk-index", I, roles=BOTH, raisable=True)
def neggia_chunk_index(ctx: FileContext) -> Iterator[Issue]:
    """Chunk index is fixed/extensible array or B-tree (not single chunk)

    Spec: Neggia (no single-chunk index); restates H5-005
    Hint: create image datasets with maxshape=(None, ny, nx)
    """
    for store in ctx.image_stores:
        if single_chunk_index(store.dataset):
            yield store.issue("single-chunk index")


@rule("RD-DURIN-001", "durin-single-groups", W)
def durin_single_groups(ctx: FileContext) -> Iterator[Issue]:
    """At most one NXdata and one NXdetector reachable by hard links

    Spec: Durin H5Ovisit (last one wins)
    Hint: avoid extra NXdata/NXdetector groups; Durin takes the last one visited
    """
    counts: dict[str | None, list[str]] = {"NXdata": [], "NXdetector": []}
    for path, obj in ctx.walk():
        if isinstance(obj, h5py.Group) and ctx.nx_class(obj) in counts:
            counts[ctx.nx_class(obj)].append(path)
    for name, paths in counts.items():
        if len(paths) > 1:  # none at all is NXMX-005's / NXMX-015's finding
            yield Issue("/", f"{len(paths)} {name} groups ({', '.join(paths[:3])})")


@rule("RD-DURIN-002", "durin-pixel-size", W, raisable=True)
def durin_pixel_size(ctx: FileContext) -> Iterator[Issue]:
    """x_pixel_size/y_pixel_size present with m/mm/cm/um units

    Spec: Durin (pixel size required)
    Hint: write x/y_pixel_size with units='m'
    """
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


@rule("RD-DURIN-003", "durin-pixel-mask", W)
def durin_pixel_mask(ctx: FileContext) -> Iterator[Issue]:
    """Pixel mask in NXdetector or detectorSpecific

    Spec: Durin mask lookup
    Hint: write detector/pixel_mask
    """
    for detector in ctx.detectors:
        if (
            ctx.dataset("pixel_mask", detector) is None
            and ctx.detector_specific("pixel_mask") is None
        ):
            yield Issue(detector.name, "no pixel_mask: Durin applies no masking")


@rule("RD-DURIN-004", "durin-image-rank", W, roles=BOTH, raisable=True)
def durin_image_rank(ctx: FileContext) -> Iterator[Issue]:
    """Image datasets rank 3

    Spec: Durin (rank 3)
    Hint: store images as [frames, ny, nx]
    """
    for store in ctx.image_stores:
        if store.dataset.ndim != 3:
            yield store.issue(f"rank {store.dataset.ndim}")


@rule("RD-DURIN-005", "durin-zstd", W, roles=BOTH, raisable=True)
def durin_zstd(ctx: FileContext) -> Iterator[Issue]:
    """Bitshuffle with Zstd is misdecoded on Durin's fast path

    Spec: Durin direct-chunk path (LZ4 only)
    Hint: use bitshuffle with LZ4 for Durin
    """
    for store in ctx.image_stores:
        for code, values in filters_of(store.dataset):
            if code == BITSHUFFLE and len(values) > 4 and values[4] == ZSTD_IN_BITSHUFFLE:
                yield store.issue("bitshuffle+Zstd chunks")


@rule("RD-DURIN-006", "durin-sign-extension", I, roles=BOTH)
def durin_sign_extension(ctx: FileContext) -> Iterator[Issue]:
    """Unsigned 16-bit counts >= 32768 become negative after sign extension

    Spec: Durin (sign extension)
    Hint: keep counts below 32768 or use 32-bit images for Durin
    """
    for store in ctx.image_stores[:1]:
        if store.dataset.dtype.kind == "u" and store.dataset.dtype.itemsize == 2:
            yield store.issue("uint16 images: values >= 32768 read as negative")


@rule("RD-CFL-001", "crystfel-geometry", W)
def crystfel_geometry(ctx: FileContext) -> Iterator[Issue]:
    """With /entry/MX, the master offers /entry/data/data of rank 3 for dim0 = %

    Spec: CrystFEL geometry file documentation
    Hint: CrystFEL needs data = /entry/data/data, dim0 = %, peak_list = /entry/MX
    """
    if ctx.entry is None or ctx.group("MX", ctx.entry) is None:
        return
    if ctx.image_dataset is None and not ctx.legacy_links:
        return  # no image data at all is JF-003's finding
    if ctx.image_dataset is None or ctx.image_dataset.ndim != 3:
        yield Issue("/entry/data", "/entry/MX exists but /entry/data/data is not a 3-D stack")


@rule("RD-CFL-002", "crystfel-header-arrays", W)
def crystfel_header_arrays(ctx: FileContext) -> Iterator[Issue]:
    """Per-frame header arrays have one value per frame

    Spec: CrystFEL header cache
    Hint: write per-frame wavelength/distance arrays with one value per frame
    """
    n = ctx.n_frames
    if not n:
        return
    candidates = [ctx.dataset("incident_wavelength", beam) for beam in ctx.beams]
    candidates += [ctx.dataset("distance", d) for d in ctx.detectors]
    for dataset in candidates:
        if dataset is not None and dataset.size > 1 and dataset.shape[0] < n:
            yield Issue(dataset.name, f"{dataset.shape[0]} values for {n} frames")


@rule("RD-CFL-003", "crystfel-integer-sentinels", I)
def crystfel_integer_sentinels(ctx: FileContext) -> Iterator[Issue]:
    """Integer image sentinels need a mask or flag directive

    Spec: CrystFEL (only float NaN auto-masked)
    Hint: add flag_lessthan/flag_morethan or a mask to the CrystFEL geometry
    """
    stores = ctx.image_stores
    if stores and stores[0].dataset.dtype.kind in "iu":
        yield Issue(
            "/entry/data",
            f"{stores[0].dataset.dtype} images: mask the fill value in the CrystFEL geometry",
        )
