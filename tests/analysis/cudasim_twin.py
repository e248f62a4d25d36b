"""Run by test_engine_twins.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (or on a GPU) and
PYTHONPATH at the project root:
analyses a tiny run with the GPU and the CPU engine and prints the comparison as JSON."""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from jfsim.analysis.analyse import ImageAnalyser
from jfsim.analysis.frames import FrameReader
from jfsim.analysis.nxmx_run import open_run
from jfsim.analysis.plan import analysis_plan
from jfsim.analysis.settings import ProcessSettings
from tests.analysis.runs import tiny_experiment, write_run

SETTINGS = {
    "spot_finding": {"photon_count_threshold": 3, "min_pix_per_spot": 1},
    "azim_int": {"q_spacing": 0.05, "azimuthal_bins": 2},
    "roi": {
        "box": {
            "rois": [
                {"name": "box", "min_x_pxl": 5, "max_x_pxl": 30, "min_y_pxl": 10, "max_y_pxl": 60}
            ]
        },
        "circle": {
            "rois": [{"name": "disc", "center_x_pxl": 40, "center_y_pxl": 70, "radius_pxl": 9}]
        },
        "azim": {"rois": [{"name": "ring", "q_min_recipA": 0.8, "q_max_recipA": 1.6}]},
    },
}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


def main() -> int:
    warnings.simplefilter("ignore", RuntimeWarning)  # uint64 wrap-around in the simulator
    n_images = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    with tempfile.TemporaryDirectory() as folder:
        master = write_run(tiny_experiment(n_images=n_images), Path(folder))
        run = open_run(master)
        plan = analysis_plan(run, ProcessSettings.from_mapping(SETTINGS))
        gpu = ImageAnalyser(plan, device="gpu")
        cpu = ImageAnalyser(plan, device="cpu")
        report: dict = {"engines": [gpu.engine_name, cpu.engine_name], "images": []}
        with FrameReader(run) as reader:
            for image in range(n_images):
                pixels = reader.read(image).pixels.copy()
                pixels[3, 3:6] = run.saturation_value  # lost pixels: both engines take them out
                on_gpu, on_cpu = gpu.analyse(image, pixels), cpu.analyse(image, pixels)
                report["images"].append(
                    {
                        "spots": len(on_cpu.spots),
                        "strong_pixels": [on_gpu.spots.strong_pixels, on_cpu.spots.strong_pixels],
                        "spots_identical": all(
                            _same(getattr(on_gpu.spots, name), getattr(on_cpu.spots, name))
                            for name in ("x", "y", "intensity", "n_pixels", "d_A", "ice_ring")
                        ),
                        "azimuthal_identical": all(
                            _same(getattr(on_gpu.azimuthal, name), getattr(on_cpu.azimuthal, name))
                            for name in ("mean", "std", "count")
                        ),
                        "azimuthal_max_rel_diff": float(
                            np.nanmax(
                                np.abs(on_gpu.azimuthal.mean - on_cpu.azimuthal.mean)
                                / np.abs(on_cpu.azimuthal.mean)
                            )
                        ),
                        "pixels_identical": on_gpu.pixels == on_cpu.pixels,
                        "saturated": on_cpu.pixels.saturated_pixels,
                        "rois_identical": on_gpu.rois == on_cpu.rois,
                        "roi_pixels": [roi.npixel for roi in on_cpu.rois.values()],
                    }
                )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
