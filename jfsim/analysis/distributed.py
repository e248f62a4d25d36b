"""Beyond one machine: chunks of images analysed on a Dask distributed cluster.

The per-image work is the same as with threads; Dask only places it (never a home-made
scheduler, analysis.md §6). Each task gets the master file's path, the settings JSON and a
chunk of image numbers; a worker builds the analysis plan once per (file, settings) and
keeps it for later chunks, reads the frames from the shared file system and returns the
results, which the caller records in order. Workers must see the files under the same path
as the caller. ``address = "local"`` starts a local cluster of ``threads`` single-threaded
worker processes (how the tests run it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from jfsim.analysis.errors import AnalysisInputError
from jfsim.analysis.plan import AnalysisPlan
from jfsim.analysis.result import ImageAnalysis, SkippedImage
from jfsim.analysis.settings import ProcessSettings

__all__ = ["CHUNK_IMAGES", "analyse_on_dask"]

#: Images per task: large enough to amortise a task's overhead, small enough to balance.
CHUNK_IMAGES = 16
#: Seconds to wait for a scheduler (or a local cluster) to answer.
CONNECT_TIMEOUT_S = 60

_PLANS: dict[tuple[str, str], AnalysisPlan] = {}
_PLANS_LOCK = threading.Lock()
_ANALYSERS = threading.local()


def _worker_plan(master: str, settings_json: str) -> AnalysisPlan:
    """The plan for (master, settings), built once per worker process."""
    from jfsim.analysis.nxmx_run import open_run
    from jfsim.analysis.plan import analysis_plan
    from jfsim.analysis.settings import ProcessSettings

    key = (master, settings_json)
    with _PLANS_LOCK:
        plan = _PLANS.get(key)
        if plan is None:
            settings = ProcessSettings.from_json(settings_json)
            plan = analysis_plan(open_run(Path(master)), settings)
            _PLANS.clear()  # one run at a time per worker: free the previous maps
            _PLANS[key] = plan
        return plan


def analyse_chunk(
    master: str,
    settings_json: str,
    positions: Sequence[int],
    numbers: Sequence[int],
    device: str,
) -> list[ImageAnalysis | SkippedImage]:
    """One task: analyse images ``numbers`` (rows ``positions``) of ``master`` on a worker."""
    from jfsim.analysis.analyse import ImageAnalyser
    from jfsim.analysis.errors import FrameError
    from jfsim.analysis.frames import FrameReader

    plan = _worker_plan(master, settings_json)
    key = (master, settings_json, device)
    if getattr(_ANALYSERS, "key", None) != key:
        _ANALYSERS.key = key
        _ANALYSERS.analyser = ImageAnalyser(plan, device=device)
    analyser: ImageAnalyser = _ANALYSERS.analyser
    results: list[ImageAnalysis | SkippedImage] = []
    with FrameReader(plan.run) as reader:
        for position, number in zip(positions, numbers, strict=True):
            try:
                frame = reader.read(int(number))
            except FrameError as error:
                results.append(SkippedImage(int(position), str(error)))
                continue
            results.append(
                analyser.analyse(
                    int(position),
                    frame.pixels,
                    preprocessing_s=frame.read_s + frame.decode_s,
                    image_number=int(number),
                )
            )
    return results


def _client(address: str, threads: int) -> tuple[Any, Any]:
    """A connected Client (and the LocalCluster it owns, or None)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as error:
        raise AnalysisInputError(
            "--dask needs the 'distributed' package: pip install 'dask[distributed]'"
        ) from error
    if address == "local":
        cluster = LocalCluster(
            n_workers=threads, threads_per_worker=1, processes=True, dashboard_address=None
        )
        return Client(cluster, timeout=CONNECT_TIMEOUT_S), cluster
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S), None
    except (OSError, TimeoutError) as error:
        raise AnalysisInputError(
            f"--dask {address}: no scheduler answered ({error}); start one with "
            "'dask scheduler' or use --dask alone for a local cluster"
        ) from error


def _worker_settings(plan: AnalysisPlan) -> ProcessSettings:
    """The plan's settings, with a two-pass run's sweep lattice (found by the caller's first
    pass) given as ``rotation_indexing.lattice_A``, so that workers need no first pass."""
    settings = plan.settings
    if plan.indexing is None or plan.indexing.run_lattice is None:
        return settings
    forced = tuple(plan.indexing.run_lattice.vectors_A)
    return replace(settings, indexing=replace(settings.indexing, rotation_lattice_A=forced))


def analyse_on_dask(
    address: str,
    plan: AnalysisPlan,
    image_numbers: Sequence[int],
    *,
    threads: int = 1,
    device: str = "auto",
    progress: Any = None,
) -> Iterator[ImageAnalysis | SkippedImage]:
    """Like :func:`jfsim.analysis.process.analyse_images`, on a Dask cluster; results come
    back chunk by chunk, in order."""
    client, cluster = _client(address, threads)
    master = str(plan.run.master_path.resolve())
    settings_json = _worker_settings(plan).to_json()
    total = len(image_numbers)
    done = 0
    try:
        futures = [
            client.submit(
                analyse_chunk,
                master,
                settings_json,
                list(range(first, min(first + CHUNK_IMAGES, total))),
                [int(n) for n in image_numbers[first : first + CHUNK_IMAGES]],
                device,
                pure=False,
            )
            for first in range(0, total, CHUNK_IMAGES)
        ]
        for future in futures:
            chunk = future.result()
            yield from chunk
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
