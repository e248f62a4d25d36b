"""Write a simulated series to disk: a CBOR recording plus its ground-truth file.

This is where the simulator's frames meet the wire and the files (``jfsim.sim`` itself knows
nothing of messages, recordings or truth files). ``write_simulation`` is what
``jfsim simulate`` runs: start, image and end messages (pixels
compressed as the experiment's dataset says, analysis fields from the truth, marked
``analysis_source = "jfsim-truth"``) into ``<prefix>.cbors`` and the truth into
``<prefix>_truth.h5``. Both files appear under their final names only when complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from jfsim.errors import ConfigError
from jfsim.experiment import Experiment, GridScan
from jfsim.protocol import Compression, PixelArray
from jfsim.recording import RecordingWriter
from jfsim.series import end_message, image_message, start_message
from jfsim.sim.render import Renderer
from jfsim.truth import TruthWriter, pixel_sha256, truth_path
from jfsim.truth_analysis import analysis_from_truth

__all__ = ["ProgressCallback", "SimulationSummary", "recording_path", "write_simulation"]

#: Called after each image with (images done, images in total).
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    """What a ``write_simulation`` run produced. ``spots`` counts strong, unmasked
    reflections (≥ 20 expected photons) over all images; image messages carry at most
    ``max_spot_count`` of them each."""

    recording_path: Path
    truth_path: Path
    images: int
    reflections: int
    spots: int
    engine: str
    seconds: float
    recording_bytes: int

    @property
    def mean_spots_per_image(self) -> float:
        return self.spots / self.images if self.images else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def recording_path(prefix: str | Path) -> Path:
    """``<prefix>.cbors``."""
    return Path(f"{prefix}.cbors")


def write_simulation(
    experiment: Experiment,
    prefix: str | Path,
    *,
    n_images: int | None = None,
    device: str = "auto",
    noise_bank_frames: int = 0,
    progress: ProgressCallback | None = None,
) -> SimulationSummary:
    """Render ``n_images`` (default: the experiment's number) into a recording + truth file."""
    if n_images is not None:
        if n_images < 1:
            raise ConfigError(f"--images: must be >= 1, got {n_images}")
        experiment = replace(
            experiment, dataset=replace(experiment.dataset, number_of_images=n_images)
        )
    total = experiment.dataset.number_of_images
    scan = experiment.scan
    if isinstance(scan, GridScan) and total > scan.n_fast * scan.n_slow:
        raise ConfigError(
            f"--images: {total} exceeds the {scan.n_fast} x {scan.n_slow} grid positions; "
            "give fewer images or a larger [scan] grid"
        )
    prefix = Path(prefix)
    if prefix.name in ("", ".", ".."):
        raise ConfigError(f"-o {prefix}: give a file prefix such as out/run1, not a directory")
    try:
        prefix.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"-o {prefix}: cannot create {prefix.parent} ({error.strerror})"
        ) from error
    compression = (
        Compression.BSLZ4 if experiment.dataset.compression == "bslz4" else Compression.NONE
    )
    started = time.perf_counter()
    renderer = Renderer(experiment, device=device, noise_bank_frames=noise_bank_frames)
    reflections = 0
    spots = 0
    out_recording = recording_path(prefix)
    out_truth = truth_path(prefix)
    with (
        RecordingWriter(out_recording) as recording,
        TruthWriter(out_truth, experiment, max_lattices=renderer.scene.max_lattices) as truth_file,
    ):
        recording.write(start_message(experiment))
        truth_file.write_unique_reflections(renderer.scene.unique_reflections())
        for image_id in range(total):
            image = renderer.render(image_id)
            analysis = analysis_from_truth(image.truth, experiment)
            pixels = PixelArray.from_numpy(image.pixels, compression)
            recording.write(image_message(experiment, image_id, pixels, analysis))
            checksum = pixel_sha256(image.pixels, truth_file.pixel_dtype)
            truth_file.write(image.truth, pixel_sha256=checksum)
            reflections += len(image.truth.reflections)
            spots += len(analysis.spot_x_pxl)
            if progress is not None:
                progress(image_id + 1, total)
        recording.write(end_message(experiment, total))
    return SimulationSummary(
        recording_path=out_recording,
        truth_path=out_truth,
        images=total,
        reflections=reflections,
        spots=spots,
        engine=renderer.engine_name,
        seconds=time.perf_counter() - started,
        recording_bytes=out_recording.stat().st_size,
    )
