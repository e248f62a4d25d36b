"""Frames rendered from an experiment (``--preset`` / ``--experiment``) for the pool.

The pool holds the first K images of the series (32 unless chosen), rendered by ``jfsim.sim``
and compressed as the experiment's dataset says; each carries the analysis fields made from
its ground truth (``analysis_source = "jfsim-truth"``). Image ``k`` gets its own id and
timing from ``jfsim.series.image_fields`` and the pixels and analysis of image ``k % K``;
``write_truth`` writes the ground truth of exactly that (``jfsim.stream.truth_out``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jfsim.experiment import Experiment
from jfsim.image_truth import UniqueReflections
from jfsim.protocol import Compression, Message, PixelArray
from jfsim.series import analysis_fields, end_message, image_fields, start_message
from jfsim.sim import Renderer
from jfsim.stream.errors import StreamOptionError
from jfsim.stream.frames import FramePool, PoolFrame
from jfsim.stream.sources import PoolProgress
from jfsim.stream.truth_out import FrameTruth, write_streamed_truth
from jfsim.truth import pixel_sha256
from jfsim.truth_analysis import analysis_from_truth

__all__ = ["DEFAULT_POOL_FRAMES", "ExperimentSource"]

#: Frames rendered for the pool when the user does not choose (``--pool``).
DEFAULT_POOL_FRAMES = 32


class ExperimentSource:
    """A ``FrameSource`` rendering the pool from an experiment with ``jfsim.sim``."""

    frame_noun = "rendered frame"

    def __init__(self, experiment: Experiment, *, device: str = "auto") -> None:
        try:
            self._compression = Compression(experiment.dataset.compression)
        except ValueError:
            allowed = ", ".join(c.value for c in Compression)
            raise StreamOptionError(
                f"experiment {experiment.name}: dataset compression "
                f"{experiment.dataset.compression!r} cannot be streamed; use one of {allowed}"
            ) from None
        self.experiment = experiment
        self.device = device
        self.description = f"experiment {experiment.name}"
        self._frame_truths: list[FrameTruth] = []
        self._max_lattices = 1
        self._unique_reflections: UniqueReflections | None = None

    def _with_images(self, number_of_images: int) -> Experiment:
        dataset = dataclasses.replace(self.experiment.dataset, number_of_images=number_of_images)
        return dataclasses.replace(self.experiment, dataset=dataset)

    def default_number_of_images(self) -> int:
        return self.experiment.dataset.number_of_images

    def default_pool_size(self) -> int:
        return DEFAULT_POOL_FRAMES

    def images_per_file(self) -> int:
        return self.experiment.dataset.images_per_file

    def start_message(self, number_of_images: int) -> Message:
        return start_message(self._with_images(number_of_images))

    def calibration_messages(self) -> Sequence[Message]:
        return ()

    def build_pool(self, pool_size: int, on_progress: PoolProgress | None) -> FramePool:
        renderer = Renderer(self.experiment, device=self.device)
        max_spots = self.experiment.dataset.max_spot_count
        checksum_dtype = self.experiment.detector.image_dtype
        pool = []
        self._frame_truths = []
        self._max_lattices = renderer.scene.max_lattices
        self._unique_reflections = renderer.scene.unique_reflections()
        for image_id in range(pool_size):
            image = renderer.render(image_id)
            pixels = PixelArray.from_numpy(image.pixels, self._compression)
            analysis = analysis_from_truth(image.truth, self.experiment)
            pool.append(PoolFrame(pixels, analysis_fields(analysis, max_spots)))
            checksum = pixel_sha256(image.pixels, checksum_dtype)
            self._frame_truths.append(FrameTruth(image.truth, checksum))
            if on_progress is not None:
                on_progress(image_id + 1, pool_size)
        return FramePool(pool)

    def write_truth(
        self,
        path: str | Path,
        number_of_images: int,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Path:
        """Write the ground truth of images ``0 … number_of_images − 1`` as streamed from
        the pool (``build_pool`` first): ``<prefix>_truth.h5``, scored like a simulation's."""
        return write_streamed_truth(
            path,
            self.experiment,
            self._frame_truths,
            number_of_images,
            max_lattices=self._max_lattices,
            unique_reflections=self._unique_reflections,
            on_progress=on_progress,
        )

    def image_fields(self, image_id: int) -> dict[str, Any]:
        return image_fields(self.experiment, image_id)

    def end_message(self, images_collected: int) -> Message:
        return end_message(self.experiment, images_collected)
