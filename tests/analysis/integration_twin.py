"""Run by test_reflection_steps.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (or on a GPU)
and PYTHONPATH at the project root: integrates a tiny rotation image with its true lattice
on the GPU and the CPU engine and prints the comparison as JSON."""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path

import gemmi
import numpy as np

from jfsim.analysis.frames import FrameReader
from jfsim.analysis.integration import integrate_image, integration_plan
from jfsim.analysis.nxmx_run import open_run
from jfsim.analysis.reflection_settings import IntegrationSettings
from tests.analysis.runs import tiny_experiment, write_run
from tests.analysis.truth_lattices import truth_lattices


def main() -> int:
    warnings.simplefilter("ignore", RuntimeWarning)  # uint64 wrap-around in the simulator
    n_images = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    with tempfile.TemporaryDirectory() as folder:
        master = write_run(tiny_experiment(n_images=n_images, rotation=True), Path(folder))
        truth = Path(folder) / "sim_truth.h5"
        run = open_run(master)
        settings = IntegrationSettings(
            signal_radius_pxl=2, background_inner_radius_pxl=3, background_outer_radius_pxl=5
        )
        plan = integration_plan(run, settings, space_group=gemmi.find_spacegroup_by_number(19))
        report: dict = {"images": []}
        with FrameReader(run) as reader:
            for image in range(n_images):
                pixels = reader.read(image).pixels.copy()
                pixels[20, 10:40] = run.saturation_value  # lost pixels: both engines skip them
                lattices = truth_lattices(run, truth, image)
                on_gpu = integrate_image(pixels, plan, image, lattices, device="gpu")
                on_cpu = integrate_image(pixels, plan, image, lattices, device="cpu")
                same = all(
                    np.array_equal(a, b, equal_nan=True)
                    for a, b in zip(
                        (on_gpu.hkl, on_gpu.intensity_photons, on_gpu.sigma_photons,
                         on_gpu.observed_x_pxl, on_gpu.background_photons),
                        (on_cpu.hkl, on_cpu.intensity_photons, on_cpu.sigma_photons,
                         on_cpu.observed_x_pxl, on_cpu.background_photons),
                        strict=True,
                    )
                )  # fmt: skip
                report["images"].append({"reflections": len(on_cpu), "identical": same})
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
