"""HDF5 storage rules (H5): files, chunks, filters, VDS and external links (libhdf5)."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator

import h5py
import numpy as np

from jfconform.context import FileContext
from jfconform.model import E, I, Issue, W
from jfconform.registry import BOTH, DATA, MASTER, Rule, register, rule
from jfconform.storage import (
    BITSHUFFLE,
    LEGACY_LINK,
    LZ4,
    LZ4_IN_BITSHUFFLE,
    MAX_INDEXED_FRAMES,
    READ_ERRORS,
    ZSTD_IN_BITSHUFFLE,
    filters_of,
    single_chunk_index,
    written_frames,
)


@rule("H5-001", "file-unreadable", E, roles=BOTH)
def file_unreadable(ctx: FileContext) -> Iterator[Issue]:
    """The file and every file it links to open as HDF5

    Spec: libhdf5
    Hint: the file is truncated or not HDF5: re-copy or rewrite it
    """
    try:
        superblock = ctx.h5.id.get_create_plist().get_version()[0]
    except READ_ERRORS:
        superblock = None
    if superblock is not None and superblock not in (0, 2, 3):
        yield Issue(
            "/",
            f"superblock version {superblock}; Neggia reads only 0, 2 and 3",
            "write with h5py/libhdf5 defaults or libver bounds up to v112",
            severity=I,
        )
    seen = set()
    for ref in ctx.references() if ctx.role == MASTER else []:
        if ref.resolved is None or ref.resolved in seen or ref.file_name == ".":
            continue
        seen.add(ref.resolved)
        if ref.resolved.is_file() and ctx.open_related(ref.resolved) is None:
            reason = ctx.open_errors.get(ref.resolved.resolve(), "unknown error")
            yield Issue(ref.path, f"linked file {ref.file_name!r} cannot be opened: {reason}")


@rule("H5-002", "image-chunking", E, roles=BOTH)
def image_chunking(ctx: FileContext) -> Iterator[Issue]:
    """Image datasets are chunked (1, ny, nx)

    Spec: Jungfraujoch docs/HDF5.md §2; Neggia; Durin fast path
    Hint: create images with chunks=(1, ny, nx) (one image per chunk)
    """
    for store in ctx.image_stores:
        dataset = store.dataset
        wanted = (1, *dataset.shape[1:])
        if dataset.chunks is None or tuple(dataset.chunks) != wanted:
            yield store.issue(f"chunks {dataset.chunks}, expected {wanted}")


@rule("H5-003", "image-filter", E, roles=BOTH)
def image_filter(ctx: FileContext) -> Iterator[Issue]:
    """Exactly one filter: bitshuffle with cd_values[4] in {2,3} and cd_values[2] = element
    size, or LZ4

    Spec: HDF5 registered filters (bitshuffle 32008, LZ4 32004); Neggia; Durin
    Hint: use hdf5plugin.Bitshuffle(cname='lz4') and nothing else in the pipeline
    """
    for store in ctx.image_stores:
        problem = image_filter_problem(store.dataset)
        if problem is not None:
            yield store.issue(problem)


def image_filter_problem(dataset: h5py.Dataset) -> str | None:
    """What H5-003 finds wrong with an image dataset's filter pipeline, ``None`` if fine."""
    pipeline = filters_of(dataset)
    if len(pipeline) != 1:
        return f"{len(pipeline)} filters {[f[0] for f in pipeline]}, expected exactly one"
    code, values = pipeline[0]
    if code == LZ4:
        return None
    if code != BITSHUFFLE:
        return f"filter {code} is neither bitshuffle nor LZ4"
    if len(values) < 5 or values[4] not in (LZ4_IN_BITSHUFFLE, ZSTD_IN_BITSHUFFLE):
        return f"bitshuffle cd_values {values}: compression (index 4) must be 2 (LZ4) or 3 (Zstd)"
    if values[2] != dataset.dtype.itemsize:
        return f"bitshuffle element size {values[2]} != {dataset.dtype.itemsize}"
    return None


def _frame_list(frames: np.ndarray, shown: int = 5) -> str:
    listed = ", ".join(str(int(f)) for f in frames[:shown])
    return listed + (", ..." if len(frames) > shown else "")


@rule("H5-004", "chunk-decode", W, roles=BOTH)
def chunk_decode(ctx: FileContext) -> Iterator[Issue]:
    """Sampled written chunks decode; the bitshuffle header holds the chunk's byte count

    Spec: Durin chunk header check; bitshuffle HDF5 filter (chunk header)
    Hint: rewrite the chunks: their header or payload is corrupt
    """
    for store in ctx.image_stores:
        dataset = store.dataset
        if dataset.ndim != 3 or dataset.chunks is None or dataset.is_virtual:
            continue
        written = written_frames(dataset)
        if written is None:
            yield store.issue(
                "the chunk index is unreadable: cannot tell which frames were written"
            )
            continue
        expected = int(np.prod(dataset.chunks)) * dataset.dtype.itemsize
        pipeline = [f[0] for f in filters_of(dataset)]
        for frame in written.chunk_starts[: ctx.sample]:
            frame = int(frame)
            where = f"{frame} (run frame {store.first_frame + frame})"
            try:
                _mask, chunk = dataset.id.read_direct_chunk((frame, 0, 0))
            except (*READ_ERRORS, MemoryError) as error:
                yield store.issue(f"chunk of frame {where} unreadable: {error}")
                continue
            if pipeline in ([BITSHUFFLE], [LZ4]) and len(chunk) >= 12:
                (size,) = struct.unpack(">Q", chunk[:8])
                if size != expected:
                    yield store.issue(
                        f"frame {where}: chunk header says {size} bytes, expected {expected}"
                    )
                    continue
            try:
                dataset[frame]
            except (*READ_ERRORS, MemoryError) as error:
                yield store.issue(f"frame {where} does not decode: {error}")


@rule("H5-005", "single-chunk-index", W, roles=BOTH)
def single_chunk(ctx: FileContext) -> Iterator[Issue]:
    """Image datasets do not use a single-chunk/implicit index

    Spec: HDF5 chunk indexes (no single-chunk index); Neggia
    Hint: create image datasets with maxshape=(None, ny, nx)
    """
    for store in ctx.image_stores:
        if single_chunk_index(store.dataset):
            yield store.issue(
                "fixed-size dataset of one chunk (single-chunk index, unreadable by Neggia)"
            )


@rule("H5-006", "vds-source", E)
def vds_source(ctx: FileContext) -> Iterator[Issue]:
    """VDS sources exist, match dtype and frame shape, tile [0, n) once, relative names

    Spec: HDF5 virtual datasets (RFC)
    Hint: write the data files next to the master, named relatively, and map each frame once
    """
    for path, obj in ctx.walk():
        if not isinstance(obj, h5py.Dataset) or not obj.is_virtual:
            continue
        sources = ctx.vds_sources(obj)
        n_frames = int(obj.shape[0]) if obj.ndim else 1
        # Tiling is checked frame by frame only for extents that can be enumerated.
        tiled = n_frames <= MAX_INDEXED_FRAMES and all(s.frames is not None for s in sources)
        coverage = np.zeros(n_frames if tiled else 0, dtype=np.int64)
        frame_points = math.prod(int(n) for n in obj.shape[1:]) if obj.ndim > 1 else 1
        whole_frames = tiled  # module-wise mappings (part of a frame each) are not tiled here
        for source in sources:
            where = f"{source.file_name}:{source.dset_name}"
            if tiled and source.frames is not None:
                mapped = source.frames
                np.add.at(coverage, mapped[(mapped >= 0) & (mapped < coverage.size)], 1)
                whole_frames &= source.virtual_points == len(mapped) * frame_points
            if source.file_name.startswith("/"):
                yield Issue(path, f"source file name {source.file_name!r} is absolute")
            if source.resolved is None or not source.resolved.is_file():
                yield Issue(
                    path,
                    f"source file {source.file_name!r} does not exist; the "
                    "region reads as the fill value",
                )
                continue
            if source.dataset is None:
                yield Issue(path, f"source {where} cannot be opened")
                continue
            if source.dataset.dtype != obj.dtype:
                yield Issue(path, f"source {where} is {source.dataset.dtype}, VDS is {obj.dtype}")
            if tuple(source.dataset.shape[1:]) != tuple(obj.shape[1:]):
                yield Issue(
                    path,
                    f"source {where} frame shape {source.dataset.shape[1:]} != {obj.shape[1:]}",
                )
            if source.source_points != source.virtual_points:
                yield Issue(
                    path,
                    f"mapping {where} selects {source.source_points} source "
                    f"points for {source.virtual_points} virtual points",
                )
        if sources and whole_frames and coverage.size and (coverage != 1).any():
            problems = []
            if (holes := int((coverage == 0).sum())) > 0:
                problems.append(f"leave {holes} frames unmapped (read as fill value)")
            if (doubles := int((coverage > 1).sum())) > 0:
                problems.append(f"map {doubles} frames more than once")
            yield Issue(path, f"the mappings {' and '.join(problems)}")


@rule("H5-007", "external-link", E)
def external_link(ctx: FileContext) -> Iterator[Issue]:
    """External links: relative name, target exists; data links are 3-D frames

    Spec: HDF5 external links; Neggia; Durin
    Hint: keep data files beside the master and link them by bare file name
    """
    frame = None
    for ref in ctx.references():
        if ref.kind != "external-link":
            continue
        if ref.file_name.startswith("/"):
            yield Issue(ref.path, f"link file name {ref.file_name!r} is absolute")
        if ref.resolved is None or not ref.resolved.is_file():
            yield Issue(ref.path, f"link target file {ref.file_name!r} does not exist")
            continue
        handle = ctx.open_related(ref.resolved)
        if handle is None:
            continue  # H5-001 reports unopenable files
        target = ctx.get(ref.object_path, handle)
        if target is None:
            yield Issue(ref.path, f"{ref.file_name}:{ref.object_path} does not exist")
            continue
        if LEGACY_LINK.match(ref.path.rsplit("/", 1)[-1]):
            if not isinstance(target, h5py.Dataset) or target.ndim != 3:
                yield Issue(ref.path, "link target is not a 3-D image dataset")
                continue
            frame = frame or tuple(target.shape[1:])
            if tuple(target.shape[1:]) != frame:
                yield Issue(ref.path, f"frame shape {target.shape[1:]} differs from {frame}")


@rule("H5-008", "legacy-file-blocks", W)
def legacy_file_blocks(ctx: FileContext) -> Iterator[Issue]:
    """Legacy links numbered from 000001; equal files; total = nimages × ntrigger

    Spec: Neggia/Durin (data files concatenated in name order)
    Hint: number data files 000001.. without gaps, equal length except the last
    """
    group = ctx.data_group
    if ctx.layout != "legacy" or group is None:
        return
    numbers = [int(name.removeprefix("data_")) for name in ctx.legacy_links]
    if numbers != list(range(1, len(numbers) + 1)):
        yield Issue(group.name, f"links numbered {numbers[:5]}..., expected 1..N")
    stores = ctx.image_stores
    lengths = [int(s.dataset.shape[0]) for s in stores if s.dataset.ndim == 3]
    if (len(lengths) > 1 and len(set(lengths[:-1])) > 1) or (lengths and lengths[-1] > lengths[0]):
        yield Issue(group.name, f"data files hold {lengths} frames; all but the last must be equal")
    for detector in ctx.detectors:
        nimages = ctx.number(ctx.dataset("detectorSpecific/nimages", detector))
        ntrigger = ctx.number(ctx.dataset("detectorSpecific/ntrigger", detector)) or 1
        if nimages is not None and lengths and len(stores) == len(ctx.legacy_links):
            if sum(lengths) != int(nimages * ntrigger):
                yield Issue(
                    group.name,
                    f"{sum(lengths)} frames linked, nimages × ntrigger = {int(nimages * ntrigger)}",
                )


@rule("H5-009", "pixel-mask-storage", W)
def pixel_mask_storage(ctx: FileContext) -> Iterator[Issue]:
    """pixel_mask stored contiguous, uint32 preferred

    Spec: Neggia (unchunked mask)
    Hint: write pixel_mask as a contiguous uint32 dataset (no chunks, no compression)
    """
    for detector in ctx.detectors:
        mask = ctx.dataset("pixel_mask", detector)
        if mask is None:
            continue
        if mask.chunks is not None:
            yield Issue(mask.name, f"pixel_mask is chunked {mask.chunks}")
        if mask.dtype != np.uint32:
            yield Issue(mask.name, f"pixel_mask is {mask.dtype}; uint32 preferred", severity=I)


@rule("H5-010", "fill-value-implicit", I, roles=BOTH)
def fill_value_implicit(ctx: FileContext) -> Iterator[Issue]:
    """Image fill values are set explicitly

    Spec: Jungfraujoch docs/HDF5.md §2
    Hint: pass fillvalue= when creating image datasets
    """
    for store in ctx.image_stores:
        try:
            defined = store.dataset.id.get_create_plist().fill_value_defined()
        except READ_ERRORS:
            continue
        if defined != h5py.h5d.FILL_VALUE_USER_DEFINED:
            yield store.issue("fill value is the library default")


@rule("H5-011", "legacy-not-hdf5-1-8", I)
def legacy_not_hdf5_1_8(ctx: FileContext) -> Iterator[Issue]:
    """Legacy data files keep pre-1.10 format features (superblock < 3)

    Spec: Jungfraujoch docs/HDF5.md §2 (legacy = HDF5 1.8 compatible); libhdf5 (format bounds)
    Hint: write legacy data files with libver=('earliest', 'v18') for HDF5 1.8 readers
    """
    if ctx.layout != "legacy":
        return
    for store in ctx.image_stores:
        try:
            superblock = store.dataset.file.id.get_create_plist().get_version()[0]
        except READ_ERRORS:
            continue
        if superblock >= 3:
            yield Issue(
                "/",
                f"superblock version {superblock}: HDF5 1.8 cannot open it",
                file=store.file_name,
            )


@rule("H5-012", "frames-never-written", I, roles=BOTH)
def frames_never_written(ctx: FileContext) -> Iterator[Issue]:
    """Frames whose chunks were never written (missed images) read as the fill value

    Spec: Jungfraujoch docs/HDF5.md §2 (missing images read as the fill value);
    HDF5 chunk allocation
    Hint: nothing to repair: missed images read as the fill value; check the collection log if
    they were not expected
    """
    for store in ctx.image_stores:
        written = written_frames(store.dataset)
        if written is None or written.all_written():
            continue
        shown = 5
        missing = written.first_missing(shown + 1)
        n_missing = written.n_frames - written.count()
        which = (
            f"frames {_frame_list(missing, shown)} of this file"
            if ctx.role == DATA
            else f"run frames {_frame_list(missing + store.first_frame, shown)}"
        )
        yield store.issue(
            f"{n_missing} of {written.n_frames} frames were never written (fill value): {which}"
        )


# Reported by the engine from what the context recorded while every other rule read the
# file (no check function of their own: they must see all the other rules' reads).
register(
    Rule(
        "H5-013",
        "object-unreadable",
        E,
        "libhdf5 (object headers and data)",
        "Objects that exist can be read (else the HDF5 error, never 'missing')",
        "the object is damaged: rewrite the file (or restore it from a good copy)",
        None,
        BOTH,
    )
)
register(
    Rule(
        "H5-014",
        "read-limit",
        I,
        "jfconform read bounds (--max-read-mb)",
        "Datasets larger than the read limit are not read; the rules that needed them say so",
        "raise --max-read-mb to check it, or repair a dataset declared larger than its content",
        None,
        BOTH,
    )
)
