"""``<prefix>_process.h5``: the analysis of a run, beside (not instead of) its images.

Layout (seed 001 §2 "Reprocessing output", §4; analysis.md §5):

* the raw master's NXmx metadata, copied (``/entry/instrument``, ``/entry/sample``, …);
  when a subset of images was analysed (``-s/-e/-t``), every per-image array is cut to it;
* ``/entry/data/data``: a virtual dataset over the *raw* images (no pixel is copied); its
  sources are the data files themselves, named relative to this file's folder;
* ``/entry/MX`` (spots, seed 001 §4.1), ``/entry/azint`` (§4.3), ``/entry/roi`` and
  ``/entry/roi_defs`` with ``roi_map`` (§4.4), ``/entry/image`` (§4.5), ``/entry/profiling``
  (§4.6), written by the writer's own per-image code from image-message fields;
  ``/entry/instrument/detector/detectorSpecific/number`` holds each row's image number in
  the original run;
* ``/entry/jfsim_process`` (NXprocess, seed 002 "v2"): ``program``, ``version``, ``date``,
  ``sequence_index`` and ``configuration`` (NXnote, ``type`` application/json, ``data`` the
  settings document), which ``jfsim process --settings-from`` reads back; ``results``
  summarises the run (images analysed, skipped and why, engine).

* ``/entry/reflections/image_NNNNNN`` (NXreflections, seed 001 §4.2): the reflections
  integrated on run image NNNNNN − 1 (:mod:`jfsim.analysis.nx_reflections`);
* with ``-M``, ``/entry/jfsim_scale_merge`` (NXprocess, ``sequence_index`` 2): the scaling
  configuration and, in ``results``, the space group, cell, per-shell statistics
  (``shells/*`` and ``overall/*``) and the merged reflections (``merged/h, k, l, d,
  intensity, sigma, multiplicity`` and, with ``-A``, I(+)/I(−)).

The file is written as ``<name>.tmp`` and renamed when complete (:class:`ProcessFileWriter`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from jfsim import __version__
from jfsim.analysis.errors import AnalysisInputError
from jfsim.analysis.indexing.summary import IndexingSummary
from jfsim.analysis.merging import MergeResult
from jfsim.analysis.nx_process import nx_process, write_text
from jfsim.analysis.nx_reflections import MERGE_GROUP, write_merge_process, write_reflections
from jfsim.analysis.nxmx_run import NxmxRun
from jfsim.analysis.plan import AnalysisPlan
from jfsim.analysis.reflection_settings import ScalingSettings
from jfsim.analysis.reflections import IntegratedReflections
from jfsim.analysis.result import SkippedImage
from jfsim.analysis.settings import ProcessSettings
from jfsim.atomic import CommittedHdf5File
from jfsim.writer.layout import link_detector_data
from jfsim.writer.nxmx import iso_time
from jfsim.writer.per_image import AnalysisBuffer

__all__ = [
    "CONFIGURATION_PATH",
    "MERGE_GROUP",
    "PROCESS_GROUP",
    "ProcessFileWriter",
    "RunRecord",
    "process_file_path",
    "settings_from_process_file",
]

#: The NXprocess group of ``jfsim process`` and its configuration note.
PROCESS_GROUP = "/entry/jfsim_process"
CONFIGURATION_PATH = f"{PROCESS_GROUP}/configuration/data"
PROGRAM = "jfsim process"
#: ``/entry`` members the analysis writes itself: never copied from the raw master.
_PRODUCED = frozenset(
    {
        "data",
        "MX",
        "azint",
        "roi",
        "roi_defs",
        "image",
        "profiling",
        "reflections",
        "jfsim_process",
        "jfsim_scale_merge",
    }
)
_DETECTOR = "/entry/instrument/detector"
_DETECTOR_SPECIFIC = f"{_DETECTOR}/detectorSpecific"
#: detectorSpecific counters that describe the images of the file.
_IMAGE_COUNTERS = ("nimages", "nimages_written", "nimages_collected")


def process_file_path(prefix: str | Path) -> Path:
    """``<prefix>_process.h5``."""
    return Path(f"{prefix}_process.h5")


@dataclass(frozen=True)
class RunRecord:
    """What happened in a run, for the NXprocess ``results`` group."""

    engine: str
    threads: int
    images_analysed: int
    skipped: tuple[SkippedImage, ...]
    seconds: float
    distributed: str | None = None
    notes: tuple[str, ...] = ()
    indexing: IndexingSummary | None = None


class ProcessFileWriter(CommittedHdf5File):
    """Writes one ``_process.h5``: open, :meth:`write`, then ``close()`` renames it into
    place (``abort()`` drops it). Refuses an existing file unless ``overwrite``."""

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        self.path = path
        if path.exists() and not overwrite:
            raise AnalysisInputError(f"{path}: exists; choose another -o prefix or --overwrite")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            self._file = h5py.File(self._tmp, "w", libver=("v110", "latest"))
        except OSError as error:
            raise AnalysisInputError(f"{path}: cannot create ({error})") from error

    def write(
        self,
        plan: AnalysisPlan,
        image_numbers: Sequence[int],
        buffer: AnalysisBuffer,
        record: RunRecord,
        *,
        reflections: Sequence[IntegratedReflections] = (),
        merge: MergeResult | None = None,
        scaling: ScalingSettings | None = None,
        merged_file: Path | None = None,
    ) -> None:
        """Everything: carried-over metadata, the VDS, the results and the provenance.

        Args:
            image_numbers: the run positions (0-based) analysed, one per output row.
            reflections: the integrated reflections of each image (``image`` = run image
                number; one table per image, as integration returns them), written per
                image as NXreflections.
            merge, scaling, merged_file: the scaling and merging step (``-M``), if any.
        """
        run = plan.run
        rows = np.asarray(image_numbers, dtype=np.int64)
        h5 = self._file
        with h5py.File(run.master_path, "r") as raw:
            _carry_over(raw, h5, run, rows)
        entry = h5.require_group("entry")
        _write_images_vds(entry, run, rows, self.path.parent)
        link_detector_data(h5)
        buffer.write(entry, detector_group="instrument/detector/detectorSpecific")
        _write_run_level(entry, plan, buffer)
        if record.indexing is not None:
            _write_indexing_summary(entry, record.indexing)
        _write_provenance(entry, plan.settings, run, record)
        if any(len(table) for table in reflections):
            write_reflections(entry, reflections, merge)
        if merge is not None and scaling is not None:
            write_merge_process(
                entry,
                merge,
                configuration=json.dumps(
                    {
                        "scaling": asdict(scaling),
                        "space_group_number": plan.settings.space_group_number,
                    }
                ),
                configuration_of=CONFIGURATION_PATH,
                merged_file=merged_file,
            )
        h5.attrs["NX_class"] = "NXroot"
        h5.attrs["default"] = "entry"
        h5.attrs["file_time"] = iso_time(datetime.now(timezone.utc))
        h5.attrs["HDF5_Version"] = h5py.version.hdf5_version
        h5.attrs["creator"] = f"{PROGRAM} {__version__}"
        h5.attrs["file_name"] = self.path.name


# -- the raw master's metadata ----------------------------------------------------------------
def _carry_over(raw: h5py.File, out: h5py.File, run: NxmxRun, rows: npt.NDArray[np.int64]) -> None:
    """Copy the raw master's entry (minus what the analysis produces); cut per-image arrays
    to ``rows`` and replace virtual datasets by their values (their sources are relative to
    the raw master, not to this file)."""
    for key, value in raw.attrs.items():
        if key not in ("file_time", "creator"):
            out.attrs[key] = value
    raw_entry = raw[run.entry_path]
    entry = out.create_group("entry")
    for key, value in raw_entry.attrs.items():
        entry.attrs[key] = value
    for name in raw_entry:
        if name in _PRODUCED:
            continue
        raw_entry.copy(name, entry, name=name)
    subset = not np.array_equal(rows, np.arange(run.n_images))
    changes: list[tuple[str, h5py.Dataset]] = []

    def collect(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            changes.append((name, obj))

    entry.visititems(collect)
    for name, dataset in changes:
        path = f"{entry.name}/{name}"
        if path == f"{_DETECTOR}/data" or path == f"{_DETECTOR_SPECIFIC}/number":
            del out[path]  # the image stack is re-linked; image numbers are rewritten
            continue
        per_image = _is_per_image(dataset, run)
        if not (dataset.is_virtual or (subset and per_image)):
            continue
        raw_path = f"{raw_entry.name}/{name}"
        values = np.asarray(raw[raw_path][()])
        if subset and per_image:
            values = values[rows]
        _replace(out, path, values)
    if subset:
        specific = out.get(_DETECTOR_SPECIFIC)
        for counter in _IMAGE_COUNTERS:
            if isinstance(specific, h5py.Group) and counter in specific:
                _replace(out, f"{_DETECTOR_SPECIFIC}/{counter}", np.int64(rows.size))
        for name, _dataset in changes:  # a scan axis's range over the images of this file
            if name.endswith("_range_total"):
                average = entry.get(name.removesuffix("_total") + "_average")
                if isinstance(average, h5py.Dataset) and average.size == 1:
                    total = float(np.asarray(average[()]).reshape(-1)[0]) * rows.size
                    _replace(out, f"{entry.name}/{name}", total)


def _is_per_image(dataset: h5py.Dataset, run: NxmxRun) -> bool:
    """A dataset whose first axis runs over the run's images (image-shaped maps excluded)."""
    shape = dataset.shape
    if not shape or shape[0] != run.n_images:
        return False
    return tuple(shape) != run.image_shape and tuple(shape[-2:]) != run.image_shape


def _replace(h5: h5py.File, path: str, values: Any) -> None:
    """Replace a dataset by ``values`` (same type), keeping its attributes."""
    old = h5[path]
    attributes = dict(old.attrs)
    dtype = old.dtype
    del h5[path]
    new = h5.create_dataset(path, data=np.asarray(values, dtype=dtype))
    for key, value in attributes.items():
        new.attrs[key] = value


# -- the images -------------------------------------------------------------------------------
def _write_images_vds(
    entry: h5py.Group, run: NxmxRun, rows: npt.NDArray[np.int64], folder: Path
) -> None:
    """``/entry/data/data``: rows → raw frames in the data files, as a virtual dataset."""
    data = entry.create_group("data")
    data.attrs["NX_class"] = "NXdata"
    data.attrs["signal"] = "data"
    height, width = run.image_shape
    layout = h5py.VirtualLayout(shape=(rows.size, height, width), dtype=run.image_dtype)
    for block in run.blocks:
        inside = np.flatnonzero(
            (rows >= block.first_image) & (rows < block.first_image + block.n_images)
        )
        if inside.size == 0:
            continue
        frames = rows[inside] - block.first_image + block.source_offset
        step = int(frames[1] - frames[0]) if frames.size > 1 else 1
        source = h5py.VirtualSource(
            _relative_name(block.file_path, folder),
            block.dataset_path,
            shape=(block.source_offset + block.n_images, height, width),
            dtype=run.image_dtype,
        )
        last = int(frames[-1]) + 1
        layout[int(inside[0]) : int(inside[-1]) + 1] = source[int(frames[0]) : last : step]
    images = data.create_virtual_dataset("data", layout, fillvalue=run.error_value)
    images.attrs["image_nr_low"] = np.int64(1)
    images.attrs["image_nr_high"] = np.int64(rows.size)


def _relative_name(target: Path, folder: Path) -> str:
    """How this file names a data file: relative to its own folder (libhdf5 resolves VDS
    sources there), absolute when no relative path exists (another drive)."""
    try:
        return os.path.relpath(target.resolve(), folder.resolve())
    except ValueError:
        return str(target.resolve())


# -- run-level results ------------------------------------------------------------------------
def _write_run_level(entry: h5py.Group, plan: AnalysisPlan, buffer: AnalysisBuffer) -> None:
    mx = entry.require_group("MX")
    background = buffer.arrays().get("MX/bkgEstimate")
    if background is not None and np.isfinite(background).any():
        mean = mx.create_dataset("bkgEstimateMean", data=float(np.nanmean(background)))
        mean.attrs["units"] = "photons"
    azimuthal = plan.azimuthal
    azint = entry.require_group("azint")
    azint.attrs["NX_class"] = "NXcollection"
    for name, values, units in (
        ("bin_to_q", azimuthal.bin_to_q_recipA, "1/angstrom"),
        ("bin_to_two_theta", azimuthal.bin_to_two_theta_deg, "deg"),
        ("bin_to_phi", azimuthal.bin_to_phi_deg, "deg"),
    ):
        dataset = azint.create_dataset(name, data=values.astype(np.float32))
        dataset.attrs["units"] = units
    azint.create_dataset(
        "map", data=azimuthal.bin_map, chunks=True, compression="gzip", compression_opts=4
    )
    if plan.rois.n_rois:
        defs = entry.create_group("roi_defs")
        defs.attrs["NX_class"] = "NXcollection"
        for name, fields in zip(plan.rois.names, plan.rois.definitions, strict=True):
            group = defs.create_group(name)
            group.attrs["NX_class"] = "NXcollection"
            for key, value in fields.items():
                if isinstance(value, str):
                    group.create_dataset(key, data=value, dtype=h5py.string_dtype())
                elif key == "bit_index":
                    group.create_dataset(key, data=np.int32(value))
                else:
                    group.create_dataset(key, data=value)
        defs.create_dataset(
            "roi_map", data=plan.rois.roi_map, chunks=True, compression="gzip", compression_opts=4
        )


def _write_indexing_summary(entry: h5py.Group, indexing: IndexingSummary) -> None:
    """The run-level indexing datasets of ``/entry/MX`` (seed 001 §4.1)."""
    mx = entry.require_group("MX")
    write_text(mx, "indexing_algorithm", indexing.algorithm_name)
    write_text(mx, "geom_refinement_algorithm", indexing.refinement)
    mx.create_dataset("imageIndexedMean", data=float(indexing.rate))
    if indexing.rotation_lattice_A is not None:
        lattice = mx.create_dataset(
            "rotationLatticeIndexed", data=np.asarray(indexing.rotation_lattice_A, dtype="f4")
        )
        lattice.attrs["units"] = "angstrom"


def _write_provenance(
    entry: h5py.Group, settings: ProcessSettings, run: NxmxRun, record: RunRecord
) -> None:
    process = nx_process(
        entry,
        PROCESS_GROUP.rpartition("/")[2],
        program=PROGRAM,
        sequence_index=1,
        description="jfsim process settings (jfjoch-client models); feed back "
        "with: jfsim process MASTER -o PREFIX --settings-from THIS_FILE",
        configuration=settings.to_json(),
    )
    results = process.create_group("results")
    results.attrs["NX_class"] = "NXcollection"
    write_text(results, "input_file", run.master_path.name)
    write_text(results, "engine", record.engine)
    results.create_dataset("threads", data=np.int64(record.threads))
    if record.distributed:
        write_text(results, "dask_scheduler", record.distributed)
    results.create_dataset("images_analysed", data=np.int64(record.images_analysed))
    results.create_dataset("images_skipped", data=np.int64(len(record.skipped)))
    results.create_dataset(
        "skipped_rows", data=np.array([s.position for s in record.skipped], dtype=np.int64)
    )
    results.create_dataset(
        "skipped_reasons",
        data=np.array([s.reason for s in record.skipped], dtype=h5py.string_dtype()),
    )
    if record.indexing is not None:
        indexing = results.create_group("indexing")
        indexing.attrs["NX_class"] = "NXcollection"
        indexing.create_dataset("images_indexed", data=np.int64(record.indexing.indexed))
        for step, count in record.indexing.failures.items():
            indexing.create_dataset(f"failed_{step}", data=np.int64(count))
    seconds = results.create_dataset("processing_time", data=float(record.seconds))
    seconds.attrs["units"] = "s"
    notes = [*run.notes, *record.notes]
    if notes:
        results.create_dataset("notes", data=np.array(notes, dtype=h5py.string_dtype()))


def settings_from_process_file(path: Path) -> ProcessSettings:
    """The settings of an earlier run, from its ``_process.h5`` (``--settings-from``)."""
    try:
        with h5py.File(path, "r") as h5:
            note = h5.get(CONFIGURATION_PATH)
            if not isinstance(note, h5py.Dataset):
                raise AnalysisInputError(
                    f"--settings-from {path}: no {CONFIGURATION_PATH}; give a _process.h5 "
                    "written by jfsim process"
                )
            text = note[()]
    except OSError as error:
        raise AnalysisInputError(f"--settings-from {path}: cannot read ({error})") from error
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return ProcessSettings.from_json(str(text), source=f"{path}:{CONFIGURATION_PATH}")
