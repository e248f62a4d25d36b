"""Small runs written by jfsim's own simulator and writer, for the analysis tests."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from jfsim.detectors import grid_detector
from jfsim.experiment import (
    Background,
    Beam,
    Crystal,
    Dataset,
    DetectorPosition,
    Experiment,
    RotationScan,
    StillsScan,
    UnitCell,
    experiment_preset,
)
from jfsim.recording import read_recording
from jfsim.simulate import write_simulation
from jfsim.writer import SeriesState, SeriesWriter

#: Two 64 × 48 modules with an 8-row gap: 64 × 104 pixels, 0.3 mm pixels at 60 mm.
TINY_DETECTOR = grid_detector(
    name="TINY",
    description="two small test modules",
    family="EIGER2",
    n_modules=2,
    modules_per_row=1,
    module_fast_pxl=64,
    module_slow_pxl=48,
    gap_fast_pxl=0,
    gap_slow_pxl=8,
    image_dtype="int16",
    pixel_size_mm=0.3,
)


def tiny_experiment(
    *,
    n_images: int = 3,
    file_format: str = "vds",
    rotation: bool = False,
    poni_rot1_rad: float = 0.0,
    poni_rot2_rad: float = 0.0,
    seed: int = 5,
) -> Experiment:
    """A lysozyme-like crystal on a tiny detector: a few dozen spots per image, water ring."""
    scan = (
        RotationScan(start_rad=0.0, step_rad=math.radians(0.5))
        if rotation
        else StillsScan(hit_rate=1.0, lattices_per_hit=1)
    )
    return Experiment(
        detector=TINY_DETECTOR,
        beam=Beam(energy_keV=12.4, bandwidth_fraction=2e-3),
        position=DetectorPosition(
            distance_mm=60.0,
            beam_x_pxl=30.5,
            beam_y_pxl=50.0,
            poni_rot1_rad=poni_rot1_rad,
            poni_rot2_rad=poni_rot2_rad,
        ),
        crystal=Crystal(
            unit_cell=UnitCell(40.0, 45.0, 50.0, 90.0, 90.0, 90.0),
            space_group_number=19,
            mosaicity_rad=math.radians(0.1),
            domain_size_A=2000.0,
            resolution_limit_A=3.0,
            intensity_scale_photons=500.0,
        ),
        scan=scan,
        background=Background(constant_photons=1.0, water_ring_photons=20.0),
        dataset=Dataset(
            number_of_images=n_images,
            images_per_file=2,
            file_prefix="tiny/run",
            file_format=file_format,
        ),
        seed=seed,
        name="tiny",
    )


def write_run(experiment: Experiment, folder: Path, *, n_images: int | None = None) -> Path:
    """Simulate ``experiment`` and write it with jfsim's writer; returns the master file.

    The truth lands in ``folder/sim_truth.h5``; files below ``folder/files``.
    """
    summary = write_simulation(experiment, folder / "sim", n_images=n_images, device="cpu")
    messages = list(read_recording(summary.recording_path))
    writer = SeriesWriter(messages[0], folder / "files")
    for message in messages[1:-1]:
        writer.add_image(message)
    writer.finish(messages[-1], SeriesState.COMPLETED)
    prefix = experiment.dataset.file_prefix
    return folder / "files" / f"{prefix}_master.h5"


def preset_run(name: str, folder: Path, n_images: int, file_format: str = "vds") -> Path:
    """The first ``n_images`` of a bundled experiment, written by jfsim's writer."""
    experiment = experiment_preset(name)
    experiment = replace(
        experiment,
        dataset=replace(experiment.dataset, file_format=file_format, file_prefix=f"{name}/run"),
    )
    return write_run(experiment, folder, n_images=n_images)
