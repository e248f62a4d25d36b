"""The front of the simulator: pick an engine, render frames of an experiment.

``simulate(experiment, device=..., image_ids=...)`` yields :class:`SimulatedImage` objects
(pixels of the detector's type plus the image's ground truth). ``Renderer`` is the same as a
reusable object (the streamer keeps one and asks for frames by number). Engines are selected
by ``device``: ``cpu``, ``gpu`` (fails with ``EngineUnavailable`` when there is no CUDA
device) or ``auto`` (GPU when usable, else CPU, with one INFO log line); the result records
which engine ran.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from jfsim import engines
from jfsim.errors import ConfigError
from jfsim.experiment import Experiment
from jfsim.image_truth import ImageTruth
from jfsim.sim.engines import cpu, gpu
from jfsim.sim.frame import FramePlan, SpotList
from jfsim.sim.scene import Scene

__all__ = ["DEVICES", "Renderer", "SimulatedImage", "render", "select_engine", "simulate"]

_log = logging.getLogger(__name__)

#: Allowed values of ``device`` / ``--device``.
DEVICES = engines.DEVICES
_ENGINES: dict[str, ModuleType] = {cpu.NAME: cpu, gpu.NAME: gpu}


@dataclass(frozen=True, slots=True)
class SimulatedImage:
    """One rendered frame: ``pixels`` ``[H, W]`` of the detector's image dtype (sentinels
    included), its ground truth, and the name of the engine that rendered it."""

    image_id: int
    pixels: np.ndarray
    truth: ImageTruth
    engine: str


def select_engine(device: str) -> ModuleType:
    """The engine module for ``device``; only ``auto`` falls back."""
    return engines.select_engine(device, _ENGINES)


def render(plan: FramePlan, spots: SpotList, image_id: int, *, device: str = "auto") -> np.ndarray:
    """Render one frame of ``plan`` with ``spots`` (one-off; use ``Renderer`` for series)."""
    engine = select_engine(device)
    return engine.run(engine.prepare(plan), spots, image_id)


class Renderer:
    """An experiment's scene plus a prepared engine: frames on demand, in any order.

    ``noise_bank_frames`` > 0 makes the CPU engine reuse that many pre-drawn background noise
    frames (spot pixels still get fresh noise); the GPU engine always draws fresh noise.
    """

    def __init__(
        self, experiment: Experiment, *, device: str = "auto", noise_bank_frames: int = 0
    ) -> None:
        if noise_bank_frames < 0:
            raise ConfigError(f"noise_bank_frames: must be >= 0, got {noise_bank_frames}")
        self.engine = select_engine(device)
        self.scene = Scene(experiment)
        self.plan = self.scene.frame_plan()
        if noise_bank_frames and self.engine is not cpu:
            _log.info("noise bank: the %s engine draws fresh noise; ignored", self.engine.NAME)
        options = cpu.CpuOptions(noise_bank_frames) if self.engine is cpu else None
        self._prepared = self.engine.prepare(self.plan, options)

    @property
    def engine_name(self) -> str:
        return str(self.engine.NAME)

    def truth(self, image_id: int) -> ImageTruth:
        """Ground truth of one image, without rendering it."""
        return self.scene.image(image_id)[0]

    def render(self, image_id: int) -> SimulatedImage:
        """Render image ``image_id`` (0-based) with fresh noise keyed by the experiment seed."""
        truth, spots = self.scene.image(image_id)
        pixels = self.engine.run(self._prepared, spots, image_id)
        return SimulatedImage(image_id, pixels, truth, self.engine_name)

    def expectation(self, image_id: int) -> np.ndarray:
        """Noise-free expected photons of image ``image_id`` (float32, before sentinels)."""
        _, spots = self.scene.image(image_id)
        return self.engine.expectation(self._prepared, spots)


def simulate(
    experiment: Experiment,
    *,
    device: str = "auto",
    image_ids: Iterable[int] | None = None,
    noise_bank_frames: int = 0,
) -> Iterator[SimulatedImage]:
    """Render images of ``experiment`` (default: all ``dataset.number_of_images``)."""
    renderer = Renderer(experiment, device=device, noise_bank_frames=noise_bank_frames)
    ids = range(experiment.dataset.number_of_images) if image_ids is None else image_ids
    for image_id in ids:
        yield renderer.render(int(image_id))
