"""Small experiments for fast simulator tests (a 2-module, 160 × 172 pixel detector)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

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
)
from jfsim.units import angstrom_to_kev

#: Two 160 × 80 modules with a 12-row gap, 0.3 mm pixels: 2θ up to ~30° at 60 mm.
SMALL_DETECTOR = grid_detector(
    name="TEST2M",
    description="two small test modules",
    family="EIGER2",
    n_modules=2,
    modules_per_row=1,
    module_fast_pxl=160,
    module_slow_pxl=80,
    gap_fast_pxl=0,
    gap_slow_pxl=12,
    image_dtype="int16",
    pixel_size_mm=0.3,
)


def small_experiment(
    *,
    scan: object | None = None,
    background: Background | None = None,
    seed: int = 3,
    image_dtype: str = "int16",
    intensity_scale_photons: float = 3000.0,
    mosaicity_deg: float = 0.05,
    bandwidth_fraction: float = 2e-3,
    domain_size_A: float = 1000.0,
) -> Experiment:
    return Experiment(
        detector=SMALL_DETECTOR.with_image_dtype(image_dtype),
        beam=Beam(
            energy_keV=angstrom_to_kev(1.0),
            divergence_rad=0.0,
            bandwidth_fraction=bandwidth_fraction,
        ),
        position=DetectorPosition(distance_mm=60.0, beam_x_pxl=80.5, beam_y_pxl=86.0),
        crystal=Crystal(
            unit_cell=UnitCell(79.1, 79.1, 37.9, 90.0, 90.0, 90.0),
            space_group_number=96,
            mosaicity_rad=math.radians(mosaicity_deg),
            domain_size_A=domain_size_A,
            resolution_limit_A=1.5,
            intensity_scale_photons=intensity_scale_photons,
        ),
        scan=scan or RotationScan(start_rad=0.0, step_rad=math.radians(0.5)),
        background=background or Background(),
        dataset=replace(Dataset(), number_of_images=4, file_prefix="small/test"),
        seed=seed,
        name="test-small",
    )


@pytest.fixture
def rotation_experiment() -> Experiment:
    return small_experiment()


@pytest.fixture
def stills_experiment() -> Experiment:
    return small_experiment(scan=StillsScan(hit_rate=1.0, lattices_per_hit=1))


@pytest.fixture
def make_experiment():
    """The factory ``small_experiment(scan=, background=, seed=, image_dtype=, ...)``."""
    return small_experiment
