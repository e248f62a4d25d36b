"""Frames rendered from an experiment (``--preset`` / ``--experiment``) for the pool.

The pool holds the first K images of the series, rendered by ``jfsim.sim`` and compressed as
the experiment's dataset says; each carries the analysis fields made from its ground truth
(``analysis_source = "jfsim-truth"``). Image ``k`` gets its own id and timing from
``jfsim.series.image_fields`` and the pixels and analysis of image ``k % K``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from jfsim.experiment import Experiment
from jfsim.protocol import Compression, Message, PixelArray
from jfsim.series import analysis_fields, end_message, image_fields, start_message
from jfsim.sim import Renderer, analysis_from_truth
from jfsim.stream.errors import StreamOptionError
from jfsim.stream.frames import PoolFrame
from jfsim.stream.sources import PoolProgress

__all__ = ["ExperimentSource"]


class ExperimentSource:
    """A ``FrameSource`` rendering the pool from an experiment with ``jfsim.sim``."""

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

    def _with_images(self, number_of_images: int) -> Experiment:
        dataset = dataclasses.replace(self.experiment.dataset, number_of_images=number_of_images)
        return dataclasses.replace(self.experiment, dataset=dataset)

    def default_number_of_images(self) -> int:
        return self.experiment.dataset.number_of_images

    def images_per_file(self) -> int:
        return self.experiment.dataset.images_per_file

    def start_message(self, number_of_images: int) -> Message:
        return start_message(self._with_images(number_of_images))

    def calibration_messages(self) -> Sequence[Message]:
        return ()

    def build_pool(self, pool_size: int, on_progress: PoolProgress | None) -> list[PoolFrame]:
        renderer = Renderer(self.experiment, device=self.device)
        max_spots = self.experiment.dataset.max_spot_count
        pool = []
        for image_id in range(pool_size):
            image = renderer.render(image_id)
            pixels = PixelArray.from_numpy(image.pixels, self._compression)
            analysis = analysis_from_truth(image.truth, self.experiment)
            pool.append(PoolFrame(pixels, analysis_fields(analysis, max_spots)))
            if on_progress is not None:
                on_progress(image_id + 1, pool_size)
        return pool

    def image_fields(self, image_id: int) -> dict[str, Any]:
        return image_fields(self.experiment, image_id)

    def end_message(self, images_collected: int) -> Message:
        return end_message(self.experiment, images_collected)
