"""Run by test_engine_twins.py in a subprocess: compile every CUDA kernel of the GPU engine to
PTX for a real GPU (compute capability 8.0) without a GPU, using the CUDA toolkit's libNVVM.

The simulator (NUMBA_ENABLE_CUDASIM) runs kernels as Python and cannot catch typing errors of
the real CUDA target; this does. numba's device functions ask the current device for its
compute capability, so the script answers for it (there is no device here).
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numba.cuda.dispatcher
from numba import cuda, types

numba.cuda.dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=(8, 0))

from jfsim.sim.engines import gpu  # noqa: E402 - after the patch, which device functions need

IMAGE_F32 = types.Array(types.float32, 2, "C")
CLASSES = types.Array(types.uint8, 2, "C")
VALUES = types.Array(types.float64, 1, "C")
HALF_WIDTHS = types.Array(types.int64, 1, "C")


def main() -> int:
    kernels = gpu._kernels()
    signatures = {
        "copy_background": [(IMAGE_F32, IMAGE_F32)],
        "add_spots": [(IMAGE_F32, CLASSES, VALUES, VALUES, VALUES, VALUES, HALF_WIDTHS)],
        "finish": [
            (
                IMAGE_F32,
                CLASSES,
                types.Array(pixel, 2, "C"),
                types.uint64,
                types.int64,
                types.int64,
                types.boolean,
            )
            for pixel in (types.int16, types.int32, types.uint16, types.uint32)
        ],
    }
    for name, variants in signatures.items():
        for signature in variants:
            ptx, _ = cuda.compile_ptx(kernels[name].py_func, signature, cc=(8, 0))
            print(f"{name}: {len(ptx)} bytes of PTX")
    return 0


if __name__ == "__main__":
    sys.exit(main())
