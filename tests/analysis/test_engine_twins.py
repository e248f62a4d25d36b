"""The GPU analysis engine is the CPU engine's twin: identical spots, bins, ROIs, statistics.

Without a GPU the CUDA kernels run in numba's simulator (NUMBA_ENABLE_CUDASIM=1), in a
subprocess so the switch does not leak into other tests; they are also compiled to PTX for
a real GPU where the CUDA toolkit is installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _run(
    script: str, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(extra_env or {})}
    return subprocess.run(
        [sys.executable, str(HERE / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _assert_twins(report: dict, n_images: int) -> None:
    assert report["engines"] == ["gpu", "cpu"]
    assert len(report["images"]) == n_images
    for image in report["images"]:
        assert image["spots"] > 5
        assert image["strong_pixels"][0] == image["strong_pixels"][1]
        assert image["spots_identical"]
        # integer accumulators: equal; float32 rounding is all the contract allows
        assert image["azimuthal_max_rel_diff"] < 1e-6
        assert image["pixels_identical"]
        assert image["saturated"] >= 3
        assert image["rois_identical"]
        assert min(image["roi_pixels"]) > 50


@pytest.mark.slow
def test_gpu_engine_under_the_simulator_matches_the_cpu_engine() -> None:
    result = _run("cudasim_twin.py", "1", extra_env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_twins(json.loads(result.stdout.strip().splitlines()[-1]), 1)


@pytest.mark.gpu
def test_gpu_engine_on_a_real_gpu_matches_the_cpu_engine() -> None:
    from numba import cuda

    if os.environ.get("JFSIM_NO_GPU") == "1" or not cuda.is_available():
        pytest.skip("no CUDA device (numba.cuda.is_available() is false or JFSIM_NO_GPU=1)")
    result = _run("cudasim_twin.py", "3", extra_env={"NUMBA_ENABLE_CUDASIM": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_twins(json.loads(result.stdout.strip().splitlines()[-1]), 3)


def test_gpu_kernels_compile_to_ptx_for_a_real_gpu() -> None:
    """Types every kernel for the real CUDA target (the simulator runs them as Python)."""
    probe = subprocess.run(
        [sys.executable, "-c", "from numba.cuda.cudadrv import nvvm; nvvm.NVVM()"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("no CUDA toolkit libNVVM here: cannot compile PTX")
    result = _run("cuda_ptx_compile.py")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("bytes of PTX") == 10


def test_device_gpu_without_cuda_is_a_clear_error_and_auto_falls_back() -> None:
    from jfsim.analysis.analyse import select_engine
    from jfsim.analysis.engines import gpu
    from jfsim.errors import ConfigError, EngineUnavailable

    if gpu.probe() is None:
        pytest.skip("a CUDA device is present: nothing to fall back from")
    with pytest.raises(EngineUnavailable, match="gpu: no CUDA device"):
        select_engine("gpu")
    assert select_engine("auto").NAME == "cpu"
    with pytest.raises(ConfigError, match="cpu, gpu, auto"):
        select_engine("tpu")
