"""CXI peak-list rules (CXI) for /entry/MX as CrystFEL reads it, conformance.md §4 and §7.5."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from jfconform.context import FileContext
from jfconform.model import E, I, Issue, W
from jfconform.registry import DATA, MASTER, rule

PEAK_ARRAYS = ("peakXPosRaw", "peakYPosRaw", "peakTotalIntensity")
CXI_DATASETS = ("nPeaks", *PEAK_ARRAYS)


def mx_group(ctx: FileContext) -> h5py.Group | None:
    return None if ctx.entry is None else ctx.group("MX", ctx.entry)


def mx_dataset(ctx: FileContext, name: str) -> h5py.Dataset | None:
    """A dataset of /entry/MX, ``None`` when absent."""
    group = mx_group(ctx)
    return None if group is None else ctx.dataset(name, group)


def _cxi(ctx: FileContext) -> dict[str, h5py.Dataset]:
    group = mx_group(ctx)
    if group is None:
        return {}
    found = {}
    for name in CXI_DATASETS:
        dataset = ctx.dataset(name, group)
        if dataset is not None:
            found[name] = dataset
    return found


def peak_table(ctx: FileContext) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """nPeaks and the three peak arrays as numpy, when their shapes are usable."""
    found = _cxi(ctx)
    if len(found) != 4 or found["nPeaks"].ndim != 1:
        return None
    if any(found[n].ndim != 2 for n in PEAK_ARRAYS):
        return None
    counts = ctx.value(found["nPeaks"])
    arrays = {n: ctx.value(found[n]) for n in PEAK_ARRAYS}
    if counts is None or any(a is None for a in arrays.values()):
        return None
    rows = {counts.shape[0], *(a.shape[0] for a in arrays.values())}
    if len(rows) != 1 or len({a.shape[1] for a in arrays.values()}) != 1:
        return None
    return np.asarray(counts), {n: np.asarray(a, dtype=float) for n, a in arrays.items()}


def _valid_mask(counts: np.ndarray, width: int) -> np.ndarray:
    clipped = np.clip(counts.astype(np.int64), 0, width)
    return np.arange(width)[None, :] < clipped[:, None]


@rule(
    "CXI-001",
    "cxi-datasets-missing",
    E,
    spec="CrystFEL image_hdf5_read_peaks_cxi; Jungfraujoch HDF5.md",
    summary="/entry/MX holds nPeaks, peakXPosRaw, peakYPosRaw, peakTotalIntensity",
    hint="write all four CXI datasets under /entry/MX",
    roles=(MASTER, DATA),
)
def cxi_datasets_missing(ctx: FileContext) -> Iterator[Issue]:
    group = mx_group(ctx)
    if group is None:
        return
    missing = [n for n in CXI_DATASETS if ctx.missing(n, group)]
    if missing:
        yield Issue(group.name, f"missing {', '.join(missing)}")


@rule(
    "CXI-002",
    "cxi-rank",
    E,
    spec="CrystFEL read_peak_count/read_peak_line",
    summary="nPeaks rank 1; the three peak arrays rank 2",
    hint="nPeaks is [n_images]; peak arrays are [n_images, max_spots]",
    roles=(MASTER, DATA),
)
def cxi_rank(ctx: FileContext) -> Iterator[Issue]:
    for name, dataset in _cxi(ctx).items():
        wanted = 1 if name == "nPeaks" else 2
        if dataset.ndim != wanted:
            yield Issue(dataset.name, f"{name} has rank {dataset.ndim}, CrystFEL needs {wanted}")


@rule(
    "CXI-003",
    "cxi-rows-frames",
    E,
    spec="CrystFEL event //n reads row n; Jungfraujoch HDF5.md",
    summary="First dimension of the four CXI datasets = frames of /entry/data/data",
    hint="write one row per frame, row n describing frame n",
    roles=(MASTER, DATA),
)
def cxi_rows_frames(ctx: FileContext) -> Iterator[Issue]:
    n = ctx.n_frames
    if n is None:
        return
    for name, dataset in _cxi(ctx).items():
        if dataset.ndim >= 1 and dataset.shape[0] != n:
            yield Issue(dataset.name, f"{name} has {dataset.shape[0]} rows for {n} frames")


@rule(
    "CXI-004",
    "cxi-width",
    E,
    spec="CrystFEL read_peak_line (width >= nPeaks)",
    summary="Peak arrays share max_spots and max(nPeaks) <= max_spots",
    hint="allocate the peak arrays at least as wide as the largest nPeaks",
    roles=(MASTER, DATA),
)
def cxi_width(ctx: FileContext) -> Iterator[Issue]:
    found = _cxi(ctx)
    arrays = [found[n] for n in PEAK_ARRAYS if n in found and found[n].ndim == 2]
    widths = {d.shape[1] for d in arrays}
    if len(widths) > 1:
        yield Issue(arrays[0].parent.name, f"peak arrays disagree on max_spots: {sorted(widths)}")
        return
    counts_ds = found.get("nPeaks")
    if not widths or counts_ds is None or counts_ds.dtype.kind not in "iuf":
        return
    counts = ctx.value(counts_ds)
    if counts is not None and np.asarray(counts).size and np.max(counts) > min(widths):
        yield Issue(
            counts_ds.name,
            f"max nPeaks {int(np.max(counts))} exceeds the array width "
            f"{min(widths)}; CrystFEL drops the whole image",
        )


@rule(
    "CXI-005",
    "npeaks-invalid",
    E,
    spec="CrystFEL read_peak_count",
    summary="nPeaks integer and >= 0",
    hint="store nPeaks as non-negative integers",
    roles=(MASTER, DATA),
)
def npeaks_invalid(ctx: FileContext) -> Iterator[Issue]:
    dataset = _cxi(ctx).get("nPeaks")
    if dataset is None:
        return
    if dataset.dtype.kind not in "iu":
        yield Issue(dataset.name, f"nPeaks is {dataset.dtype}, not an integer type")
        return
    counts = ctx.value(dataset)
    if counts is not None and (np.asarray(counts) < 0).any():
        bad = int(np.argmax(np.asarray(counts).reshape(-1) < 0))
        yield Issue(dataset.name, f"nPeaks is negative (first at row {bad})")


@rule(
    "CXI-006",
    "peak-outside-image",
    W,
    spec="CrystFEL slab→panel mapping",
    summary="Listed peaks are finite and inside the image (index convention, −0.5 margin)",
    hint="store positions as pixel indices (first pixel centre = 0), X fast, Y slow",
    roles=(MASTER, DATA),
)
def peak_outside_image(ctx: FileContext) -> Iterator[Issue]:
    table, frame = peak_table(ctx), ctx.frame_shape
    if table is None or frame is None:
        return
    counts, arrays = table
    width = arrays["peakXPosRaw"].shape[1]
    valid = _valid_mask(counts, width)
    valid[(counts < 0) | (counts > width)] = False  # impossible counts are CXI-004/005's
    x, y, intensity = (arrays[n][valid] for n in PEAK_ARRAYS)
    ny, nx = frame[-2], frame[-1]
    bad = ~np.isfinite(x) | ~np.isfinite(y) | ~np.isfinite(intensity)
    bad |= (x < -0.5) | (x >= nx - 0.5) | (y < -0.5) | (y >= ny - 0.5)
    if bad.any():
        yield Issue(
            mx_group(ctx).name,
            f"{int(bad.sum())} of {bad.size} listed peaks are "
            f"non-finite or outside the {nx}x{ny} image",
        )


@rule(
    "CXI-007",
    "peak-padding-sentinel",
    I,
    spec="Jungfraujoch HDF5.md §4 (NaN padding)",
    summary="Padding beyond nPeaks is NaN",
    hint="fill unused peak slots with NaN",
    roles=(MASTER, DATA),
)
def peak_padding_sentinel(ctx: FileContext) -> Iterator[Issue]:
    table = peak_table(ctx)
    if table is None:
        return
    counts, arrays = table
    padding = ~_valid_mask(counts, arrays["peakXPosRaw"].shape[1])
    for name, values in arrays.items():
        if (~np.isnan(values[padding])).any():
            yield Issue(f"{mx_group(ctx).name}/{name}", "slots beyond nPeaks are not NaN")


@rule(
    "CXI-008",
    "cxi-types",
    W,
    spec="CrystFEL (HDF5 conversion to int/float)",
    summary="nPeaks integer; positions and intensity floating point",
    hint="store nPeaks as int32 and peak arrays as float32",
    roles=(MASTER, DATA),
)
def cxi_types(ctx: FileContext) -> Iterator[Issue]:
    for name, dataset in _cxi(ctx).items():
        if name != "nPeaks" and dataset.dtype.kind != "f":
            yield Issue(dataset.name, f"{name} is {dataset.dtype}, expected floating point")


@rule(
    "CXI-010",
    "cxi-legacy-master",
    I,
    spec="CrystFEL path placeholders (conformance.md §4.4)",
    summary="Legacy layout: CrystFEL reads CXI peaks only from the data files",
    hint="use the VDS or integrated layout to read peaks from the master",
)
def cxi_legacy_master(ctx: FileContext) -> Iterator[Issue]:
    if ctx.layout == "legacy":
        yield Issue("/entry/data", "legacy master: point CrystFEL at the data files for peaks")


@rule(
    "CXI-011",
    "cxi-axes-swapped",
    I,
    spec="CrystFEL X = fast scan, Y = slow scan",
    summary="X is the fast (last) axis, Y the slow axis",
    hint="peakXPosRaw is the column (fast) index, peakYPosRaw the row (slow) index",
    roles=(MASTER, DATA),
)
def cxi_axes_swapped(ctx: FileContext) -> Iterator[Issue]:
    table, frame = peak_table(ctx), ctx.frame_shape
    if table is None or frame is None or frame[-1] == frame[-2]:
        return
    counts, arrays = table
    valid = _valid_mask(counts, arrays["peakXPosRaw"].shape[1])
    x, y = arrays["peakXPosRaw"][valid], arrays["peakYPosRaw"][valid]
    ny, nx = frame[-2], frame[-1]
    fits = ((x < nx) & (y < ny)).all()
    swapped = ((x < ny) & (y < nx)).all()
    if x.size and not fits and swapped:
        yield Issue(mx_group(ctx).name, "positions fit the image only with X and Y swapped")
