"""``jfsim process`` as a library call: analyse a run's images, write ``_process.h5``.

:func:`process_run` opens the run, resolves the settings against its geometry, analyses
the selected images with ``threads`` threads (each with its own prepared engine; frames are
read and decoded in the same threads) or on a Dask cluster (:mod:`jfsim.analysis.distributed`),
and writes ``<prefix>_process.h5``. A frame that cannot be read is skipped, counted and
named in the summary and the file; everything else that goes wrong stops the run with a
one-line :class:`jfsim.errors.JfsimError` and leaves no file under the final name.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from jfsim.analysis.analyse import ImageAnalyser, select_engine
from jfsim.analysis.errors import AnalysisInputError, FrameError
from jfsim.analysis.frames import FrameReader
from jfsim.analysis.indexing.summary import IndexingSummary, IndexingTally
from jfsim.analysis.merged_files import merged_file_path, write_merged_file
from jfsim.analysis.merging import MergeResult
from jfsim.analysis.message_fields import image_message_fields
from jfsim.analysis.nxmx_run import open_run
from jfsim.analysis.plan import AnalysisPlan, analysis_plan
from jfsim.analysis.process_file import (
    ProcessFileWriter,
    RunRecord,
    process_file_path,
)
from jfsim.analysis.reflections import IntegratedReflections
from jfsim.analysis.result import ImageAnalysis, SkippedImage
from jfsim.analysis.run_merge import MergeOutcome, merge_run
from jfsim.analysis.settings import ProcessSettings
from jfsim.writer.per_image import AnalysisBuffer

__all__ = ["ProcessSummary", "ProgressCallback", "analyse_images", "process_run"]

_log = logging.getLogger(__name__)

#: Called as images complete with (images done, images in total).
ProgressCallback = Callable[[int, int], None]
#: Images in flight per thread (bounds memory: results are recorded as they complete).
_IN_FLIGHT_PER_THREAD = 4


@dataclass(frozen=True)
class ProcessSummary:
    """What one ``jfsim process`` run did (the CLI's summary table and ``--json``)."""

    input_path: Path
    output_path: Path
    engine: str
    threads: int
    images_selected: int
    images_analysed: int
    skipped: tuple[SkippedImage, ...]
    seconds: float
    spots_per_image: float
    strong_pixels_per_image: float
    distributed: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    indexing: IndexingSummary | None = None
    images_integrated: int = 0
    reflections_integrated: int = 0
    merge: MergeResult | None = None
    merged_file: Path | None = None
    merge_error: str | None = None

    @property
    def images_per_s(self) -> float:
        return self.images_analysed / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> bool:
        """Some work was lost: images skipped, or ``-M`` could not merge."""
        return bool(self.skipped) or self.merge_error is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": str(self.input_path),
            "output": str(self.output_path),
            "engine": self.engine,
            "threads": self.threads,
            "dask_scheduler": self.distributed,
            "images_selected": self.images_selected,
            "images_analysed": self.images_analysed,
            "images_skipped": len(self.skipped),
            "skipped": [{"row": s.position, "reason": s.reason} for s in self.skipped],
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_s, 2),
            "spots_per_image": round(self.spots_per_image, 2),
            "strong_pixels_per_image": round(self.strong_pixels_per_image, 1),
            "indexing": None if self.indexing is None else self.indexing.as_dict(),
            "images_integrated": self.images_integrated,
            "reflections_integrated": self.reflections_integrated,
            **self._merge_dict(),
            "notes": list(self.notes),
        }

    def _merge_dict(self) -> dict[str, Any]:
        if self.merge is None:
            return {"merge_error": self.merge_error} if self.merge_error else {}
        merge = self.merge
        return {
            "merged_file": str(self.merged_file),
            "space_group": merge.space_group,
            "unit_cell": [round(value, 4) for value in merge.cell],
            "reflections_merged": len(merge.merged),
            "observations_merged": merge.observations_merged,
            "merge_statistics": merge.statistics.as_dict(),
        }


def analyse_images(
    plan: AnalysisPlan,
    image_numbers: Sequence[int],
    *,
    threads: int = 1,
    device: str = "auto",
    progress: ProgressCallback | None = None,
) -> Iterator[ImageAnalysis | SkippedImage]:
    """Analyse images ``image_numbers`` of ``plan.run`` with ``threads`` threads; yields a
    result (or a skipped image) per image, in order, ``position`` = its index in
    ``image_numbers``."""
    if threads < 1:
        raise AnalysisInputError(f"-N: must be >= 1, got {threads}")
    chosen = str(select_engine(device).NAME)  # an unusable device fails before any work
    local = threading.local()
    reader = FrameReader(plan.run)

    def analyser() -> ImageAnalyser:
        if not hasattr(local, "analyser"):
            local.analyser = ImageAnalyser(plan, device=chosen)
        found: ImageAnalyser = local.analyser
        return found

    def one(position: int) -> ImageAnalysis | SkippedImage:
        number = int(image_numbers[position])
        try:
            frame = reader.read(number)
        except FrameError as error:
            return SkippedImage(position, str(error))
        return analyser().analyse(
            position,
            frame.pixels,
            preprocessing_s=frame.read_s + frame.decode_s,
            image_number=number,
        )

    total = len(image_numbers)
    done = 0
    try:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="process") as pool:
            pending: list[Future[ImageAnalysis | SkippedImage]] = []
            next_position = 0
            while next_position < total or pending:
                while next_position < total and len(pending) < threads * _IN_FLIGHT_PER_THREAD:
                    pending.append(pool.submit(one, next_position))
                    next_position += 1
                first = pending.pop(0)
                yield first.result()
                done += 1
                if progress is not None:
                    progress(done, total)
    finally:
        reader.close()


def process_run(
    master: Path,
    prefix: str | Path,
    settings: ProcessSettings,
    *,
    threads: int = 1,
    device: str = "auto",
    dask_scheduler: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> ProcessSummary:
    """Analyse ``master``'s images as ``settings`` say and write ``<prefix>_process.h5``."""
    started = time.perf_counter()
    output = process_file_path(prefix)
    if output.exists() and output.resolve() == master.resolve():
        raise AnalysisInputError(f"-o {prefix}: would overwrite the input {master}")
    merged_output = merged_file_path(prefix, settings.scaling.output_format)
    if settings.scaling.merge and merged_output.exists() and not overwrite:
        raise AnalysisInputError(
            f"{merged_output}: exists; choose another -o prefix or --overwrite"
        )
    run = open_run(master)
    if settings.scaling.merge and settings.scaling.partiality_model == "rot":
        if run.geometry.rotation_axis is None:
            raise AnalysisInputError(
                f"-P rot: {master.name} holds stills (no rotation axis): use -P fixed or unity"
            )
    numbers = settings.images.image_numbers(run.n_images)
    with FrameReader(run) as reader:
        reader.check()
    height, width = run.image_shape
    _log.info(
        "%s: %d images of %d x %d %s in %d data block(s); analysing %d",
        master.name,
        run.n_images,
        width,
        height,
        run.image_dtype,
        len(run.blocks),
        len(numbers),
    )
    plan = analysis_plan(run, settings)
    _log.info(
        "plan: %d q x %d phi bins, %d ROIs, %d sensitive pixels, %.1f s",
        plan.azimuthal.n_q,
        plan.azimuthal.n_phi,
        plan.rois.n_rois,
        plan.sensitive_pixels,
        time.perf_counter() - started,
    )
    plan, rotation_message = _first_pass(plan, numbers, threads=threads, device=device)
    tally = (
        None
        if plan.indexing is None
        else IndexingTally(plan.indexing.algorithm, plan.indexing.refinement)
    )
    buffer = AnalysisBuffer(
        len(numbers), max_spots=settings.max_spots, azint_shape=plan.azimuthal.shape
    )
    skipped: list[SkippedImage] = []
    engines: set[str] = set()
    spots = strong = truncated = 0
    integrated: list[IntegratedReflections] = []
    lattices: list[npt.NDArray[np.float64]] = []
    integrated_per_row: dict[int, int] = {}
    with ProcessFileWriter(output, overwrite=overwrite) as writer:
        if dask_scheduler is not None:
            from jfsim.analysis.distributed import analyse_on_dask

            results = analyse_on_dask(
                dask_scheduler, plan, numbers, threads=threads, device=device, progress=progress
            )
        else:
            results = analyse_images(
                plan, numbers, threads=threads, device=device, progress=progress
            )
        for result in results:
            if isinstance(result, SkippedImage):
                skipped.append(result)
                continue
            engines.add(result.engine)
            if tally is not None and result.indexing is not None:
                tally.add(result.indexing)
            truncated += result.candidates_truncated
            spots += len(result.spots)
            strong += result.spots.strong_pixels
            number = int(numbers[result.position])
            problems = buffer.record(
                result.position, image_message_fields(result, int(run.image_numbers[number]))
            )
            if problems:  # our own fields: a problem here is a bug, not bad input
                raise RuntimeError(f"image {number}: {'; '.join(problems)}")
            if result.integration is not None:
                table = result.integration.reflections
                lattices.extend(lattice.ub_invA for lattice in result.integration.lattices)
                integrated_per_row[result.position] = len(table)
                integrated.append(table)
        skipped.sort(key=lambda item: item.position)
        outcome = MergeOutcome()
        if settings.scaling.merge:
            reflections = IntegratedReflections.concatenate(integrated)
            outcome = merge_run(reflections, lattices, settings, prefix=prefix)
            if outcome.error:
                _log.warning("%s", outcome.error)
        _record_reflection_counts(buffer, numbers, integrated_per_row, outcome.result)
        analysed = len(numbers) - len(skipped)
        notes = run.notes + outcome.notes + ((outcome.error,) if outcome.error else ())
        notes += (rotation_message,) if rotation_message else ()
        indexing = None if tally is None else _indexing_summary(tally, plan, rotation_message)
        if indexing is not None and indexing.images and not indexing.indexed:
            notes += (_nothing_indexed(indexing),)
        if truncated:
            notes += (
                f"{truncated} images had more pixels above the photon threshold than the "
                f"{plan.spots.max_candidates} the spot finder tests: their spots are incomplete; "
                "raise --spot-threshold",
            )
        engine = ",".join(sorted(engines)) or select_engine(device).NAME
        seconds = time.perf_counter() - started
        _log.info("writing %s (%d images analysed, %d skipped)", output, analysed, len(skipped))
        writer.write(
            plan,
            numbers,
            buffer,
            RunRecord(
                engine,
                threads,
                analysed,
                tuple(skipped),
                seconds,
                dask_scheduler,
                notes[len(run.notes) :],
                indexing,
            ),
            reflections=integrated,
            merge=outcome.result,
            scaling=settings.scaling,
            merged_file=outcome.path if outcome.result is not None else None,
        )
    if outcome.result is not None and outcome.path is not None:
        write_merged_file(
            outcome.path,
            outcome.result,
            settings.scaling.output_format,
            wavelength_A=run.geometry.wavelength_A,
        )
    return ProcessSummary(
        input_path=master,
        output_path=output,
        engine=engine,
        threads=threads,
        images_selected=len(numbers),
        images_analysed=analysed,
        skipped=tuple(skipped),
        seconds=time.perf_counter() - started,
        spots_per_image=spots / analysed if analysed else float(np.nan),
        strong_pixels_per_image=strong / analysed if analysed else float(np.nan),
        distributed=dask_scheduler,
        notes=notes,
        indexing=indexing,
        images_integrated=len(integrated_per_row),
        reflections_integrated=sum(integrated_per_row.values()),
        merge=outcome.result,
        merged_file=outcome.path if outcome.result is not None else None,
        merge_error=outcome.error,
    )


def _first_pass(
    plan: AnalysisPlan, numbers: Sequence[int], *, threads: int, device: str
) -> tuple[AnalysisPlan, str]:
    """Two-pass rotation indexing's first pass (``-R[=N]``): find spots on the first N
    selected images, index them as one wedge and put the sweep's lattice into the plan;
    returns the plan and a sentence saying what the first pass found ("" when there was no
    first pass)."""
    indexing = plan.indexing
    if indexing is None or not indexing.two_pass or indexing.run_lattice is not None:
        return plan, ""
    from jfsim.analysis.indexing.indexer import select_scoring
    from jfsim.analysis.indexing.rotation import index_wedge

    first = list(numbers[: indexing.config.rotation_images])
    _log.info("-R: first pass over %d images", len(first))
    spot_lists = [
        (int(first[result.position]), result.spots)
        for result in analyse_images(
            replace(plan, indexing=None), first, threads=threads, device=device
        )
        if isinstance(result, ImageAnalysis)
    ]
    engine = select_scoring(device).prepare(None)
    wedge = index_wedge(spot_lists, indexing, engine)
    _log.info("-R: %s", wedge.message)
    message = f"two-pass rotation indexing: {wedge.message}"
    return replace(plan, indexing=indexing.with_run_lattice(wedge.run_lattice)), message


def _nothing_indexed(indexing: IndexingSummary) -> str:
    """The note of a run where no image indexed: why, and what to try next."""
    steps = ", ".join(f"{n} {step}" for step, n in indexing.failures.items())
    advice = (
        "check -C and -S, or try -X fft without a cell"
        if indexing.algorithm == "ffbidx"
        else "check the geometry (beam centre, distance), or give the cell with -C"
    )
    if indexing.failures.get("too_few_spots") == indexing.images:
        advice = "too few spots on every image: lower --spot-sigma / --spot-threshold"
    return f"no image indexed ({steps}): {advice}"


def _indexing_summary(
    tally: IndexingTally, plan: AnalysisPlan, rotation_message: str
) -> IndexingSummary:
    indexing = plan.indexing
    lattice = None if indexing is None or indexing.run_lattice is None else indexing.run_lattice
    return tally.summary(
        rotation_lattice_A=None if lattice is None else tuple(lattice.vectors_A),
        rotation_message=rotation_message,
    )


def _record_reflection_counts(
    buffer: AnalysisBuffer,
    numbers: Sequence[int],
    integrated_per_row: dict[int, int],
    merged: MergeResult | None,
) -> None:
    """Per-image ``integratedReflections`` and, after merging, ``imageScaleFactor`` and
    ``imageScaleCC`` (seed 001 §4.1) of the rows that have them."""
    scales: dict[int, tuple[float, float]] = {}
    if merged is not None:
        scales = {
            int(number): (float(scale), float(cc))
            for number, scale, cc in zip(
                merged.image_numbers, merged.image_scales, merged.image_cc, strict=True
            )
        }
    for position, count in integrated_per_row.items():
        fields: dict[str, Any] = {"integrated_reflections": count}
        if int(numbers[position]) in scales:
            scale, cc = scales[int(numbers[position])]
            fields["image_scale_factor"] = scale
            fields["image_scale_cc"] = cc
        buffer.record(position, fields)
