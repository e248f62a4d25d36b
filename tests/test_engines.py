"""Choosing an engine where numba sees a CUDA device but cannot compile for it (observed:
numba-cuda 0.30.4 with numpy 2.5 fails at its first compilation). ``--device auto`` must
fall back to the CPU and ``--device gpu`` fail with one line, never crash after the
choice. Runs in the CUDA simulator, where a device is "present", with numba's compiler
made to fail the way numba-cuda does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json
from numba import cuda


def broken_jit(*args, **kwargs):
    raise AttributeError("module 'numpy' has no attribute 'row_stack'")


cuda.jit = broken_jit
from jfsim.analysis.analyse import select_engine
from jfsim.errors import EngineUnavailable
from jfsim.sim import select_engine as select_renderer

report = {"auto": select_engine("auto").NAME, "render_auto": select_renderer("auto").NAME}
try:
    select_engine("gpu")
except EngineUnavailable as error:
    report["gpu_error"] = str(error)
print(json.dumps(report))
"""


def test_a_cuda_target_that_cannot_compile_makes_auto_fall_back_and_gpu_a_clear_error() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_ENABLE_CUDASIM": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["auto"] == "cpu"
    assert report["render_auto"] == "cpu"
    error = report["gpu_error"]
    assert error.startswith("gpu: numba cannot compile for CUDA (AttributeError: ")
    assert "row_stack" in error and "numba-cuda" in error
    assert "\n" not in error
