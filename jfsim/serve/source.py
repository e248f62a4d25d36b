"""The frame source of a collection: ``jfsim stream``'s experiment source, plus what the
broker adds to the start message, plus a pool kept from one collection to the next.

Rendering a JF4M pool takes seconds; a beamline repeats collections with the same geometry,
so the last pool is kept and reused while the experiment differs only in per-run fields
(prefix, run number, sample name, number of images, file layout, appendices).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Sequence
from typing import Any

from jfsim.experiment import Dataset, Experiment, experiment_to_dict
from jfsim.protocol import Message
from jfsim.serve.plots import FrameMetrics
from jfsim.stream import FramePool
from jfsim.stream.experiment_source import ExperimentSource
from jfsim.stream.sources import PoolProgress

__all__ = ["BrokerSource", "PoolCache"]

#: Dataset fields that change the messages of a run but not its pixels or analysis fields.
_PER_RUN_FIELDS = (
    "number_of_images",
    "images_per_file",
    "file_prefix",
    "series_id",
    "series_unique_id",
    "sample_name",
    "experiment_group",
    "file_format",
    "header_appendix",
    "image_appendix",
    "source_name",
    "source_type",
    "instrument_name",
)


class PoolCache:
    """The pool of the last collection and its frame metrics, keyed by everything that
    shapes its frames (so the metrics' decompressed pixel pass is also done once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: str | None = None
        self._entry: tuple[FramePool, FrameMetrics] | None = None
        self.hits = 0

    @staticmethod
    def key(experiment: Experiment, pool_size: int, device: str) -> str:
        defaults = Dataset()
        dataset = dataclasses.replace(
            experiment.dataset, **{name: getattr(defaults, name) for name in _PER_RUN_FIELDS}
        )
        description = experiment_to_dict(dataclasses.replace(experiment, dataset=dataset))
        return json.dumps([description, pool_size, device], sort_keys=True, default=str)

    def get(self, key: str) -> tuple[FramePool, FrameMetrics] | None:
        with self._lock:
            if key == self._key:
                self.hits += 1
                return self._entry
            return None

    def put(self, key: str, pool: FramePool, metrics: FrameMetrics) -> None:
        with self._lock:
            self._key, self._entry = key, (pool, metrics)


class BrokerSource:
    """A ``FrameSource``: an ``ExperimentSource`` whose start message is made once, with
    ``start_fields`` added (``overwrite``, a file format the experiment cannot name)."""

    frame_noun = ExperimentSource.frame_noun

    def __init__(
        self,
        experiment: Experiment,
        *,
        device: str,
        start_fields: dict[str, Any],
        pool_cache: PoolCache,
    ) -> None:
        self._inner = ExperimentSource(experiment, device=device)
        self.experiment = experiment
        self.description = self._inner.description
        self._device = device
        self._start_fields = dict(start_fields)
        self._start: tuple[int, Message] | None = None
        self._pool_cache = pool_cache
        self.metrics: FrameMetrics | None = None

    def default_number_of_images(self) -> int:
        return self._inner.default_number_of_images()

    def default_pool_size(self) -> int:
        return self._inner.default_pool_size()

    def images_per_file(self) -> int:
        return self._inner.images_per_file()

    def start_message(self, number_of_images: int) -> Message:
        """The same message every time it is asked for (one ``arm_date``)."""
        if self._start is None or self._start[0] != number_of_images:
            inner = self._inner.start_message(number_of_images)
            self._start = (
                number_of_images,
                Message("start", {**inner.fields, **self._start_fields}),
            )
        return self._start[1]

    def calibration_messages(self) -> Sequence[Message]:
        return self._inner.calibration_messages()

    def build_pool(self, pool_size: int, on_progress: PoolProgress | None) -> FramePool:
        """The pool (reused when the last collection rendered the same frames); sets
        ``metrics``."""
        key = PoolCache.key(self.experiment, pool_size, self._device)
        cached = self._pool_cache.get(key)
        if cached is None:
            pool = self._inner.build_pool(pool_size, on_progress)
            cached = (pool, FrameMetrics(pool, self.experiment.detector))
            self._pool_cache.put(key, *cached)
        pool, self.metrics = cached
        return pool

    def image_fields(self, image_id: int) -> dict[str, Any]:
        return self._inner.image_fields(image_id)

    def end_message(self, images_collected: int) -> Message:
        return self._inner.end_message(images_collected)
