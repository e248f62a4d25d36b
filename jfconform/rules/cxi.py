"""CXI peak-list rules (CXI) for /entry/MX as CrystFEL reads it (CrystFEL's image-hdf5.c)."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from jfconform.context import FileContext
from jfconform.field_rules import (
    ANY,
    FLOAT,
    FRAMES,
    INTEGER,
    MORE,
    MX,
    REQUIRED,
    Field,
    FieldRule,
    register_rows,
)
from jfconform.model import E, I, Issue, W
from jfconform.registry import BOTH, rule

PEAK_ARRAYS = ("peakXPosRaw", "peakYPosRaw", "peakTotalIntensity")
CXI_DATASETS = ("nPeaks", *PEAK_ARRAYS)

FIELD_RULES = (
    FieldRule(
        "CXI-001",
        "cxi-datasets-missing",
        E,
        Field(MX, CXI_DATASETS, need=REQUIRED),
        """/entry/MX holds nPeaks, peakXPosRaw, peakYPosRaw, peakTotalIntensity

        Spec: CrystFEL image_hdf5_read_peaks_cxi; Jungfraujoch docs/HDF5.md §4.1
        Hint: write all four CXI datasets under /entry/MX""",
        roles=BOTH,
    ),
    FieldRule(
        "CXI-002",
        "cxi-rank",
        E,
        (Field(MX, "nPeaks", shapes=((ANY,),)), Field(MX, PEAK_ARRAYS, shapes=((ANY, ANY),))),
        """nPeaks rank 1; the three peak arrays rank 2

        Spec: CrystFEL read_peak_count/read_peak_line
        Hint: nPeaks is [n_images]; peak arrays are [n_images, max_spots]""",
        roles=BOTH,
    ),
    FieldRule(
        "CXI-003",
        "cxi-rows-frames",
        E,
        Field(MX, CXI_DATASETS, shapes=((), (FRAMES, MORE))),
        """First dimension of the four CXI datasets = frames of /entry/data/data

        Spec: CrystFEL event //n reads row n; Jungfraujoch docs/HDF5.md §4.1
        Hint: write one row per frame, row n describing frame n""",
        roles=BOTH,
    ),
    FieldRule(
        "CXI-005",
        "npeaks-invalid",
        E,
        Field(MX, "nPeaks", kind=INTEGER, at_least=0),
        """nPeaks integer and >= 0

        Spec: CrystFEL read_peak_count
        Hint: store nPeaks as non-negative integers""",
        roles=BOTH,
    ),
    FieldRule(
        "CXI-008",
        "cxi-types",
        W,
        Field(MX, PEAK_ARRAYS, kind=FLOAT),
        """nPeaks integer; positions and intensity floating point

        Spec: CrystFEL (HDF5 conversion to int/float)
        Hint: store nPeaks as int32 and peak arrays as float32""",
        roles=BOTH,
    ),
)
register_rows(FIELD_RULES)


def _cxi(ctx: FileContext) -> dict[str, h5py.Dataset]:
    """The CXI datasets of /entry/MX that are there."""
    found = {name: ctx.mx_dataset(name) for name in CXI_DATASETS}
    return {name: dataset for name, dataset in found.items() if dataset is not None}


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


def valid_slots(counts: np.ndarray, width: int) -> np.ndarray:
    """Per row, which of ``width`` peak slots ``nPeaks`` says are used (clipped to 0..width)."""
    clipped = np.clip(counts.astype(np.int64), 0, width)
    return np.arange(width)[None, :] < clipped[:, None]


@rule("CXI-004", "cxi-width", E, roles=BOTH)
def cxi_width(ctx: FileContext) -> Iterator[Issue]:
    """Peak arrays share max_spots and max(nPeaks) <= max_spots

    Spec: CrystFEL read_peak_line (width >= nPeaks)
    Hint: allocate the peak arrays at least as wide as the largest nPeaks
    """
    found = _cxi(ctx)
    arrays = [found[n] for n in PEAK_ARRAYS if n in found and found[n].ndim == 2]
    widths = {d.shape[1] for d in arrays}
    if len(widths) > 1:
        yield Issue(arrays[0].parent.name, f"peak arrays disagree on max_spots: {sorted(widths)}")
        return
    counts_ds = found.get("nPeaks")
    if not widths or counts_ds is None or counts_ds.dtype.kind not in "iuf":
        return
    counts = ctx.array(counts_ds)
    widest = float(np.max(counts)) if counts is not None and counts.size else 0.0
    if widest > min(widths):  # NaN compares false
        drop = "CrystFEL drops the whole image"
        yield Issue(
            counts_ds.name, f"max nPeaks {widest:g} exceeds the width {min(widths)}; {drop}"
        )


@rule("CXI-006", "peak-outside-image", W, roles=BOTH)
def peak_outside_image(ctx: FileContext) -> Iterator[Issue]:
    """Listed peaks are finite and inside the image (index convention, −0.5 margin)

    Spec: CrystFEL slab→panel mapping
    Hint: store positions as pixel indices (first pixel centre = 0), X fast, Y slow
    """
    table, frame, mx = peak_table(ctx), ctx.frame_shape, ctx.mx
    if table is None or frame is None or mx is None:
        return
    counts, arrays = table
    width = arrays["peakXPosRaw"].shape[1]
    valid = valid_slots(counts, width)
    valid[(counts < 0) | (counts > width)] = False  # impossible counts are CXI-004/005's
    x, y, intensity = (arrays[n][valid] for n in PEAK_ARRAYS)
    ny, nx = frame[-2], frame[-1]
    bad = ~np.isfinite(x) | ~np.isfinite(y) | ~np.isfinite(intensity)
    bad |= (x < -0.5) | (x >= nx - 0.5) | (y < -0.5) | (y >= ny - 0.5)
    if bad.any():
        yield Issue(
            mx.name,
            f"{int(bad.sum())} of {bad.size} listed peaks are "
            f"non-finite or outside the {nx}x{ny} image",
        )


@rule("CXI-007", "peak-padding-sentinel", I, roles=BOTH)
def peak_padding_sentinel(ctx: FileContext) -> Iterator[Issue]:
    """Padding beyond nPeaks is NaN

    Spec: Jungfraujoch docs/HDF5.md §4 (NaN padding)
    Hint: fill unused peak slots with NaN
    """
    table, mx = peak_table(ctx), ctx.mx
    if table is None or mx is None:
        return
    counts, arrays = table
    padding = ~valid_slots(counts, arrays["peakXPosRaw"].shape[1])
    for name, values in arrays.items():
        if (~np.isnan(values[padding])).any():
            yield Issue(f"{mx.name}/{name}", "slots beyond nPeaks are not NaN")


@rule("CXI-010", "cxi-legacy-master", I)
def cxi_legacy_master(ctx: FileContext) -> Iterator[Issue]:
    """Legacy layout: CrystFEL reads CXI peaks only from the data files

    Spec: CrystFEL geometry file documentation (path placeholders)
    Hint: use the VDS or integrated layout to read peaks from the master
    """
    if ctx.layout == "legacy":
        yield Issue("/entry/data", "legacy master: point CrystFEL at the data files for peaks")


@rule("CXI-011", "cxi-axes-swapped", I, roles=BOTH)
def cxi_axes_swapped(ctx: FileContext) -> Iterator[Issue]:
    """X is the fast (last) axis, Y the slow axis

    Spec: CrystFEL X = fast scan, Y = slow scan
    Hint: peakXPosRaw is the column (fast) index, peakYPosRaw the row (slow) index
    """
    table, frame, mx = peak_table(ctx), ctx.frame_shape, ctx.mx
    if table is None or frame is None or mx is None or frame[-1] == frame[-2]:
        return
    counts, arrays = table
    valid = valid_slots(counts, arrays["peakXPosRaw"].shape[1])
    x, y = arrays["peakXPosRaw"][valid], arrays["peakYPosRaw"][valid]
    ny, nx = frame[-2], frame[-1]
    fits = ((x < nx) & (y < ny)).all()
    swapped = ((x < ny) & (y < nx)).all()
    if x.size and not fits and swapped:
        yield Issue(mx.name, "positions fit the image only with X and Y swapped")
