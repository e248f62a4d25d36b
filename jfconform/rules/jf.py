"""Jungfraujoch layout and extension rules (JF), from Jungfraujoch's docs/HDF5.md."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from jfconform.context import FileContext, decode_text
from jfconform.field_rules import ANY, MX, Field, FieldRule, register_rows
from jfconform.model import E, I, Issue, W
from jfconform.registry import BOTH, DATA, MASTER, rule
from jfconform.rules.cxi import CXI_DATASETS, valid_slots
from jfconform.rules.nxr import IMAGE_GROUP
from jfconform.storage import (
    BITSHUFFLE,
    DATA_NAME,
    LEGACY_LINK,
    MASTER_NAME,
    PROCESS_NAME,
    expected_fill,
    filters_of,
)

EXTENSION_GROUPS = ("MX", "azint", "roi", "roi_defs", "image", "profiling", "xfel", "user")
MX_RUN_LEVEL = frozenset(
    """indexing_algorithm geom_refinement_algorithm rotationLatticeIndexed
    rotationLatticeIndexedExtra rotationLatticeNiggliClass imageIndexedMean bkgEstimateMean
    indexedLatticeCount""".split()
)
MX_PER_SPOT = (
    "peakIceRingRes",
    "peakH",
    "peakK",
    "peakL",
    "peakDistEwaldSphere",
    "peakIndexed",
    "peakLattice",
)
MX_PER_IMAGE = (
    "strongPixels",
    "peakCountUnfiltered",
    "peakCountLowRes",
    "peakCountIceRingRes",
    "peakCountIndexed",
    "imageIndexed",
    "indexingLatticeCount",
    "niggliClass",
    "bravaisLattice",
    "profileRadius",
    "mosaicity",
    "bFactor",
    "resolutionEstimate",
    "integratedReflections",
    "bkgEstimate",
    "beam_corr_x",
    "beam_corr_y",
    "imageScaleFactor",
    "imageScaleCC",
    "imageScaleMosaicity",
    "imageScaleBFactor",
)
BRAVAIS = frozenset("aP mP mC oP oC oI oF tP tI hP hR cP cI cF".split())

FIELD_RULES = (
    FieldRule(
        "JF-010",
        "per-image-rank",
        W,
        Field(MX, MX_PER_IMAGE, shapes=((ANY,),)),
        """/entry/MX per-image vectors are 1-D [n]

        Spec: Jungfraujoch docs/HDF5.md §4.1 per-image vectors
        Hint: write per-image quantities as 1-D arrays of length n""",
        roles=BOTH,
    ),
    FieldRule(
        "JF-013",
        "lattice-shape",
        W,
        (
            Field(MX, "latticeIndexed", shapes=((ANY, 9),)),
            Field(MX, "latticeIndexedExtra", shapes=((ANY, ANY, 9),)),
        ),
        """latticeIndexed [n, 9], latticeIndexedExtra [n, m, 9] (Å)

        Spec: Jungfraujoch docs/HDF5.md §4.1 latticeIndexed
        Hint: store the real-space lattice as 9 floats (a, b, c vectors) per image""",
        roles=BOTH,
    ),
)
register_rows(FIELD_RULES)


@rule("JF-001", "file-naming", E, roles=BOTH)
def file_naming(ctx: FileContext) -> Iterator[Issue]:
    """Files are <prefix>_master.h5 and <prefix>_data_NNNNNN.h5 (from 000001), linked by
    bare name, link data_NNNNNN to data file NNNNNN; reprocessing output <prefix>_process.h5
    points at a run's data or master files

    Spec: Jungfraujoch docs/HDF5.md §2
    Hint: name the master <prefix>_master.h5 and data files <prefix>_data_000001.h5, ...
    """
    if ctx.role == DATA:
        if not DATA_NAME.match(ctx.name):
            yield Issue("/", f"data file name {ctx.name!r} is not <prefix>_data_NNNNNN.h5")
        return
    master = MASTER_NAME.match(ctx.name)
    if master is None and PROCESS_NAME.match(ctx.name):
        for ref in ctx.references():
            base = ref.file_name.rsplit("/", 1)[-1]
            if ref.file_name != "." and not (DATA_NAME.match(base) or MASTER_NAME.match(base)):
                yield Issue(
                    ref.path, f"{ref.kind} target {ref.file_name!r} is not a run's data or master"
                )
        return
    if master is None:
        yield Issue("/", f"master file name {ctx.name!r} is not <prefix>_master.h5")
        return
    for ref in ctx.references():
        name = ref.file_name
        if name == "." or name.endswith(".tmp"):
            continue
        folder, _, base = name.rpartition("/")
        data = DATA_NAME.match(base)
        if data is None or data.group("prefix") != master.group("prefix"):
            yield Issue(
                ref.path,
                f"{ref.kind} target {name!r} is not {master.group('prefix')}_data_NNNNNN.h5",
            )
            continue
        if int(data.group("number")) < 1:
            yield Issue(ref.path, f"data file numbering starts at 000001, got {name!r}")
        if folder:  # e.g. another run's file of the same name, through ../
            yield Issue(
                ref.path, f"{ref.kind} target {name!r} is not a data file beside the master"
            )
        link = LEGACY_LINK.match(ref.path.rsplit("/", 1)[-1])
        if ref.kind == "external-link" and link and link.group(1) != data.group("number"):
            yield Issue(
                ref.path,
                f"link {link.group(0)} leads to {base}: frames would be read from the wrong "
                "data file (out of order, or twice)",
            )


@rule("JF-002", "tmp-leftover", E, roles=BOTH)
def tmp_leftover(ctx: FileContext) -> Iterator[Issue]:
    """No *.tmp left; no link, VDS source or file_name refers to a .tmp name

    Spec: Jungfraujoch docs/HDF5.md §2 (written as *.tmp, then renamed)
    Hint: finish the run (rename *.tmp to the final names) and remove stray .tmp files
    """
    if ctx.name.endswith(".tmp"):
        yield Issue("/", "the checked file itself has a .tmp name (not finalised)")
    file_name = ctx.attr_text(ctx.h5, "file_name")
    if file_name is not None and file_name.endswith(".tmp"):
        yield Issue("/", f"root file_name {file_name!r} is a temporary name")
    for ref in ctx.references() if ctx.role == MASTER else []:
        if ref.file_name.endswith(".tmp"):
            yield Issue(ref.path, f"{ref.kind} points at temporary file {ref.file_name!r}")
    master = MASTER_NAME.match(ctx.name) or DATA_NAME.match(ctx.name)
    if master is not None:
        prefix = master.group("prefix")
        try:
            strays = sorted(p.name for p in ctx.path.parent.glob(f"{prefix}_*.tmp"))
        except OSError:
            strays = []
        if strays:
            yield Issue("/", f"temporary files left beside the run: {', '.join(strays[:3])}")


@rule("JF-003", "layout-ambiguous", E)
def layout_ambiguous(ctx: FileContext) -> Iterator[Issue]:
    """Exactly one of legacy links, a virtual data, or a real chunked data

    Spec: Jungfraujoch docs/HDF5.md §2 (NXmxLegacy / NXmxVDS / NXmxIntegrated)
    Hint: write either /entry/data/data (VDS or real) or data_NNNNNN links, not both/neither
    """
    if ctx.entry is None or ctx.data_group is None:
        return
    if ctx.layout is None:
        what = "both data and data_NNNNNN links" if ctx.legacy_links else "no image data"
        yield Issue(ctx.data_group.name, f"/entry/data holds {what}")


@rule("JF-004", "image-nr-attributes", W)
def image_nr_attributes(ctx: FileContext) -> Iterator[Issue]:
    """/entry/data/data has image_nr_low = 1 and image_nr_high = n

    Spec: Jungfraujoch docs/HDF5.md §3 /entry/data
    Hint: set integer attributes image_nr_low=1 and image_nr_high=<frames>
    """
    dataset = ctx.image_dataset
    if dataset is None or ctx.n_frames is None:
        return
    low, high = ctx.attr(dataset, "image_nr_low"), ctx.attr(dataset, "image_nr_high")
    if not (ctx.has_attr(dataset, "image_nr_low") and ctx.has_attr(dataset, "image_nr_high")):
        yield Issue(dataset.name, "image_nr_low/image_nr_high attributes are missing")
    elif (
        int(np.asarray(low).reshape(-1)[0]) != 1
        or int(np.asarray(high).reshape(-1)[0]) != ctx.n_frames
    ):
        yield Issue(dataset.name, f"image_nr_low/high = {low}/{high}, expected 1/{ctx.n_frames}")


@rule("JF-005", "image-compression", E, roles=BOTH)
def image_compression(ctx: FileContext) -> Iterator[Issue]:
    """Images are compressed with bitshuffle (LZ4 or Zstd inside)

    Spec: Jungfraujoch docs/HDF5.md §2 (bitshuffle + LZ4 or Zstd)
    Hint: compress images with the bitshuffle filter (32008) using LZ4
    """
    for store in ctx.image_stores:
        ids = [f[0] for f in filters_of(store.dataset)]
        if BITSHUFFLE not in ids:
            yield store.issue(f"filters {ids} do not include bitshuffle (32008)")


@rule("JF-006", "fill-value", W, roles=BOTH)
def fill_value(ctx: FileContext) -> Iterator[Issue]:
    """Image and VDS fill value INTx_MIN / UINTx_MAX; error_value equals it

    Spec: Jungfraujoch docs/HDF5.md §2 (fill values)
    Hint: create image datasets with fillvalue=INTx_MIN (signed) or UINTx_MAX (unsigned)
    """
    datasets = [(s.dataset, s.file_name) for s in ctx.image_stores]
    if ctx.role == MASTER and ctx.image_dataset is not None and ctx.image_dataset.is_virtual:
        datasets.append((ctx.image_dataset, ctx.name))
    for dataset, file_name in datasets:
        wanted = expected_fill(dataset.dtype)
        fill = dataset.fillvalue
        if wanted is not None and int(fill) != wanted:
            yield Issue(
                dataset.name,
                f"fill value {fill}, expected {wanted} for {dataset.dtype}",
                file=file_name,
            )
    if ctx.role == MASTER and datasets:
        wanted = expected_fill(datasets[0][0].dtype)
        for detector in ctx.detectors:
            error_value = ctx.number(ctx.dataset("error_value", detector))
            if error_value is not None and wanted is not None and int(error_value) != wanted:
                yield Issue(
                    f"{detector.name}/error_value",
                    f"error_value {int(error_value)} differs from the fill value {wanted}",
                )


def _per_image_datasets(ctx: FileContext) -> Iterator[h5py.Dataset]:
    """Per-image arrays of the extension groups (CXI's four are judged by CXI-003)."""
    for group_name in ("MX", "image", "profiling", "xfel"):
        for name, dataset in ctx.datasets(ctx.extension(group_name)).items():
            if group_name != "MX" or name not in MX_RUN_LEVEL | set(CXI_DATASETS):
                yield dataset
    azint = ("image", "image_std", "image_count")
    yield from ctx.datasets(ctx.extension("azint"), azint).values()
    roi = ctx.extension("roi")
    for roi_name in ctx.member_names(roi) if roi is not None else []:
        yield from ctx.datasets(ctx.group(roi_name, roi)).values()


@rule("JF-007", "per-image-length", E, roles=BOTH)
def per_image_length(ctx: FileContext) -> Iterator[Issue]:
    """Every per-image array in the extension groups has first dimension n (frames)

    Spec: Jungfraujoch docs/HDF5.md §4 (arrays indexed by image number)
    Hint: pad per-image arrays to the run length with the sentinel (NaN, -1 or 0)
    """
    n = ctx.n_frames
    if n is None:
        return
    for dataset in _per_image_datasets(ctx):
        if dataset.ndim == 0 or dataset.shape[0] != n:
            yield Issue(dataset.name, f"first dimension {dataset.shape[:1]} != {n} frames")


@rule("JF-008", "extension-class", W)
def extension_class(ctx: FileContext) -> Iterator[Issue]:
    """Extension groups are NXcollection

    Spec: Jungfraujoch docs/HDF5.md §4 (NXcollection)
    Hint: set NX_class='NXcollection' on Jungfraujoch extension groups
    """
    candidates = [ctx.extension(n) for n in EXTENSION_GROUPS]
    for detector in ctx.detectors:
        candidates.append(ctx.group("detectorSpecific", detector))
    for group in candidates:
        if group is not None and ctx.nx_class(group) not in ("NXcollection", None):
            yield Issue(group.name, f"NX_class is {ctx.nx_class(group)!r}, expected NXcollection")


@rule("JF-009", "per-spot-width", E, roles=BOTH)
def per_spot_width(ctx: FileContext) -> Iterator[Issue]:
    """/entry/MX per-spot arrays are [n, max_spots] with one common max_spots

    Spec: Jungfraujoch docs/HDF5.md §4.1 per-spot arrays
    Hint: allocate every per-spot array with the same width as peakXPosRaw
    """
    reference = ctx.mx_dataset("peakXPosRaw")
    if reference is None or reference.ndim != 2:
        return
    for name in MX_PER_SPOT:
        dataset = ctx.mx_dataset(name)
        if dataset is not None and (dataset.ndim != 2 or dataset.shape[1] != reference.shape[1]):
            yield Issue(
                dataset.name, f"{name} shape {dataset.shape}, expected [n, {reference.shape[1]}]"
            )


@rule("JF-011", "per-spot-sentinel", W, roles=BOTH)
def per_spot_sentinel(ctx: FileContext) -> Iterator[Issue]:
    """Beyond nPeaks: NaN for floats, 0 for Miller indices, -1 for peakLattice

    Spec: Jungfraujoch docs/HDF5.md §4 sentinels
    Hint: pad unused spot slots with the documented sentinels
    """
    counts_ds, reference = ctx.mx_dataset("nPeaks"), ctx.mx_dataset("peakXPosRaw")
    if counts_ds is None or reference is None or counts_ds.ndim != 1 or reference.ndim != 2:
        return
    counts = ctx.value(counts_ds)
    if counts is None or np.asarray(counts).shape[0] != reference.shape[0]:
        return
    counts = np.asarray(counts)
    padding = ~valid_slots(counts, reference.shape[1])
    padding[(counts < 0) | (counts > reference.shape[1])] = False  # CXI-004/005's
    for name in MX_PER_SPOT:
        dataset = ctx.mx_dataset(name)
        if dataset is None or dataset.shape != reference.shape:
            continue
        stored = ctx.array(dataset)
        if stored is None:
            continue
        values = stored[padding]
        if dataset.dtype.kind == "f":
            bad = ~np.isnan(values)
        elif name == "peakLattice":
            bad = values != -1
        else:
            bad = values != 0
        if bad.any():
            yield Issue(dataset.name, f"{int(bad.sum())} padding slots hold non-sentinel values")


@rule("JF-012", "indexing-consistency", I, roles=BOTH)
def indexing_consistency(ctx: FileContext) -> Iterator[Issue]:
    """imageIndexed in {0,1}; indexingLatticeCount >= imageIndexed

    Spec: Jungfraujoch docs/HDF5.md §4.1; jfconform's own check
    Hint: keep the per-image indexing summaries consistent
    """
    indexed_ds, count_ds = ctx.mx_dataset("imageIndexed"), ctx.mx_dataset("indexingLatticeCount")
    indexed = ctx.array(indexed_ds)
    if indexed_ds is None or indexed is None:
        return
    if not np.isin(indexed, (0, 1)).all():
        yield Issue(indexed_ds.name, "imageIndexed holds values other than 0 and 1")
    count = ctx.array(count_ds)
    if count_ds is not None and count is not None and count.shape == indexed.shape:
        if (count < indexed).any():
            yield Issue(count_ds.name, "indexingLatticeCount < imageIndexed for some images")


@rule("JF-014", "bravais-niggli-codes", I, roles=BOTH)
def bravais_niggli_codes(ctx: FileContext) -> Iterator[Issue]:
    """bravaisLattice in the 14 short codes; niggliClass 1-44 (0 = none)

    Spec: Jungfraujoch docs/HDF5.md §4.1; ITA Table 3.1.3.1
    Hint: use aP mP mC oP oC oI oF tP tI hP hR cP cI cF and Niggli classes 1-44
    """
    bravais = ctx.mx_dataset("bravaisLattice")
    if bravais is not None:
        values = ctx.value(bravais)
        texts = (
            {decode_text(v) for v in np.asarray(values).reshape(-1)}
            if values is not None
            else set()
        )
        unknown = sorted(t for t in texts if t and t not in BRAVAIS)
        if unknown:
            yield Issue(bravais.name, f"unknown Bravais codes: {', '.join(unknown[:5])}")
    niggli = ctx.mx_dataset("niggliClass")
    if niggli is not None and niggli.dtype.kind in "iu":
        values = ctx.array(niggli)
        if values is None:
            return
        if ((values < 0) | (values > 44)).any():
            yield Issue(niggli.name, "niggliClass outside 0..44")


@rule("JF-016", "reflections-group-name", E)
def reflections_group_name(ctx: FileContext) -> Iterator[Issue]:
    """/entry/reflections members are named image_NNNNNN (6 digits)

    Spec: Jungfraujoch docs/HDF5.md §4.2 (image_NNNNNN)
    Hint: name each per-image group image_000001, image_000002, ...
    """
    root = ctx.extension("reflections")
    if root is None:
        return
    for name in ctx.member_names(root):
        if not IMAGE_GROUP.match(name):
            yield Issue(f"{root.name}/{name}", f"{name!r} is not image_NNNNNN")
