"""Run by test_engine_twins.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (or on a GPU):
renders a tiny experiment with the GPU and the CPU engine and prints the comparison as JSON."""

from __future__ import annotations

import json
import math
import sys
import warnings

import numpy as np

from jfsim.detectors import grid_detector
from jfsim.experiment import (
    Background,
    Beam,
    Crystal,
    Dataset,
    DetectorPosition,
    Experiment,
    StillsScan,
    UnitCell,
)
from jfsim.sim import Renderer


def tiny_experiment() -> Experiment:
    detector = grid_detector(
        name="TINY",
        description="48 x 40 test detector",
        family="EIGER2",
        n_modules=2,
        modules_per_row=1,
        module_fast_pxl=48,
        module_slow_pxl=16,
        gap_fast_pxl=0,
        gap_slow_pxl=8,
        image_dtype="int16",
        pixel_size_mm=0.8,
    )
    return Experiment(
        detector=detector,
        beam=Beam(energy_keV=12.398, bandwidth_fraction=2e-3),
        position=DetectorPosition(distance_mm=60.0, beam_x_pxl=24.0, beam_y_pxl=20.0),
        crystal=Crystal(
            unit_cell=UnitCell(60.0, 70.0, 80.0, 90.0, 90.0, 90.0),
            space_group_number=19,
            mosaicity_rad=math.radians(0.1),
            domain_size_A=2000.0,
            resolution_limit_A=4.0,
            intensity_scale_photons=5e4,
        ),
        scan=StillsScan(hit_rate=1.0, lattices_per_hit=1),
        background=Background(constant_photons=1.0, water_ring_photons=40.0),
        dataset=Dataset(number_of_images=2),
        seed=21,
    )


def main() -> int:
    warnings.simplefilter("ignore", RuntimeWarning)  # uint64 wrap-around in the simulator
    experiment = tiny_experiment()
    gpu = Renderer(experiment, device="gpu")
    cpu = Renderer(experiment, device="cpu")
    report: dict = {"engine": gpu.engine_name, "images": []}
    for image_id in range(2):
        expected_gpu = gpu.expectation(image_id)
        expected_cpu = cpu.expectation(image_id)
        pixels_gpu = gpu.render(image_id).pixels
        pixels_cpu = cpu.render(image_id).pixels
        scale = max(float(np.abs(expected_cpu).max()), 1.0)
        report["images"].append(
            {
                "spots": len(gpu.truth(image_id).reflections),
                "expected_sum_gpu": float(expected_gpu.sum(dtype=np.float64)),
                "expected_sum_cpu": float(expected_cpu.sum(dtype=np.float64)),
                "expected_max_rel_diff": float(np.abs(expected_gpu - expected_cpu).max() / scale),
                "pixels_differing_same_expectation": int(
                    np.count_nonzero((pixels_gpu != pixels_cpu) & (expected_gpu == expected_cpu))
                ),
                "pixels_differing": int(np.count_nonzero(pixels_gpu != pixels_cpu)),
                "max_count_difference": int(
                    np.abs(pixels_gpu.astype(np.int64) - pixels_cpu.astype(np.int64)).max()
                ),
                "pixels_total": int(pixels_cpu.size),
                "max_count": int(pixels_cpu.max()),
            }
        )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
