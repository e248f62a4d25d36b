"""How the master file reaches the data files: NXmxLegacy, NXmxVDS or NXmxIntegrated (S1 §2).

* legacy: ``/entry/data/data_NNNNNN`` external links, one per data file, each to that file's
  ``/entry/data/data``; the per-image analysis arrays are copied into the master (VDS would
  need HDF5 1.10) from the writer's memory, except ROI results which stay in the data files.
* vds: one virtual ``/entry/data/data`` over all data files, and one virtual dataset per
  per-image analysis array; reflections through external links.
* integrated: everything is already in the one file; nothing to link.

Link targets and VDS sources are bare final file names (never ``.tmp``), resolved against
the master's directory. With several writers (one per image socket) the master links every
data file of the series, including those another writer writes (``DataFileRecord.remote``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h5py
import numpy as np

from jfsim.writer.h5tree import H5Tree
from jfsim.writer.per_image import DatasetSpec
from jfsim.writer.plan import FileFormat, SeriesPlan


@dataclass(frozen=True, slots=True)
class DataFileRecord:
    """A closed data file as the master sees it (name relative to the master's folder)."""

    file_index: int  # 0-based; the name carries file_index + 1
    file_name: str
    first_image_id: int
    n_images: int
    n_written: int
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    reflection_groups: tuple[str, ...] = ()
    #: The per-image arrays by path (legacy masters copy them); empty when not kept.
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    #: Written by another writer: its content is unknown here, so legacy masters keep the
    #: sentinels for its rows and VDS masters assume the datasets of this writer's files.
    remote: bool = False


def link_data_files(master: h5py.File, plan: SeriesPlan, records: list[DataFileRecord]) -> None:
    """Fill the master's ``/entry/data`` (and analysis groups for VDS) for ``plan``'s layout."""
    tree = H5Tree()
    tree.require_group("entry", "NXentry")
    tree.group("entry/data", "NXdata")
    records = sorted(records, key=lambda record: record.file_index)
    if plan.file_format is FileFormat.LEGACY:
        for record in records:
            tree.external_link(
                f"entry/data/data_{record.file_index + 1:06d}",
                record.file_name,
                "/entry/data/data",
            )
        if records:
            tree.attrs("entry/data", signal=f"data_{records[0].file_index + 1:06d}")
        _copy_analysis(tree, records, plan.n_images)
        tree.write(master)
    elif plan.file_format is FileFormat.VDS:
        tree.attrs("entry/data", signal="data")
        _virtual(
            tree,
            "entry/data/data",
            records,
            "/entry/data/data",
            DatasetSpec(plan.image_dtype, plan.image_shape, plan.error_value, None),
            plan.n_images,
        )
        tree.attrs(
            "entry/data/data", image_nr_low=np.int64(1), image_nr_high=np.int64(plan.n_images)
        )
        _link_analysis(tree, records, plan.n_images)
        tree.write(master)
        link_detector_data(master)


def _copy_analysis(tree: H5Tree, records: list[DataFileRecord], n_images: int) -> None:
    """Legacy masters get real copies of the per-image arrays (VDS needs HDF5 1.10), from
    the arrays the writer kept in memory (no read-back); ROI results stay in the data files
    (S1 §4.4). Each array is written file by file into a chunked dataset whose fill value is
    the sentinel, so rows of files that never arrived cost neither memory nor disk."""
    for path, spec in sorted(_union_specs(records).items()):
        if path.startswith("roi/"):
            continue
        parent_path, _, _name = path.rpartition("/")
        rows = min(n_images, max((r.n_images for r in records), default=1)) or 1
        tree.require_group(f"entry/{parent_path}", "NXcollection")
        dataset = tree.chunked_dataset(
            f"entry/{path}",
            (n_images, *spec.row_shape),
            spec.dtype,
            chunks=(rows, *spec.row_shape) if n_images else None,
            fill_value=spec.fill_value,
            units=spec.units,
        )
        for record in records:
            array = record.arrays.get(path)
            end = min(record.first_image_id + record.n_images, n_images)
            if (
                array is not None
                and array.shape[1:] == spec.row_shape
                and end > record.first_image_id
            ):
                tree.write_rows(
                    dataset, record.first_image_id, array[: end - record.first_image_id]
                )


def _union_specs(records: list[DataFileRecord]) -> dict[str, DatasetSpec]:
    specs: dict[str, DatasetSpec] = {}
    for record in records:
        if record.remote:
            continue
        for path, spec in record.datasets.items():
            specs.setdefault(path, spec)
    return specs


def vds_file_name(file_name: str) -> str:
    """A source file name as HDF5's VDS expects it: ``%`` starts a format specifier there
    (``%b`` = block number), so a literal one is written ``%%``."""
    return file_name.replace("%", "%%")


def link_detector_data(h5: h5py.File) -> None:
    """``NXdetector/data`` (recommended by NXmx) as a hard link to ``/entry/data/data``."""
    detector = h5.get("/entry/instrument/detector")
    if detector is not None and "data" not in detector and "/entry/data/data" in h5:
        detector["data"] = h5["/entry/data/data"]


def _virtual(
    tree: H5Tree,
    path: str,
    records: list[DataFileRecord],
    source_path: str,
    spec: DatasetSpec,
    n_images: int,
) -> None:
    sources = [
        (record.first_image_id, record.n_images, vds_file_name(record.file_name), source_path)
        for record in records
    ]
    tree.virtual_dataset(
        path, (n_images, *spec.row_shape), spec.dtype, spec.fill_value, sources, spec.units
    )


def _link_analysis(tree: H5Tree, records: list[DataFileRecord], n_images: int) -> None:
    """One virtual dataset per per-image array present in any data file (same row shape)."""
    for path, spec in sorted(_union_specs(records).items()):
        sources = [
            record
            for record in records
            if record.remote
            or (path in record.datasets and record.datasets[path].row_shape == spec.row_shape)
        ]
        parent_path, _, _name = path.rpartition("/")
        tree.require_group(f"entry/{parent_path}", "NXcollection")
        _virtual(tree, f"entry/{path}", sources, f"/entry/{path}", spec, n_images)
    for record in records:
        for group_path in record.reflection_groups:
            tree.group("entry/reflections", "NXcollection")
            name = group_path.rpartition("/")[2]
            tree.external_link(
                f"entry/reflections/{name}", record.file_name, f"/entry/{group_path}"
            )
