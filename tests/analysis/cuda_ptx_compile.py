"""Run by test_engine_twins.py in a subprocess: compile every CUDA kernel of the analysis's
GPU engines (pixel analyses and indexing) to PTX for a real GPU (compute capability 8.0)
without a GPU, using the CUDA toolkit's libNVVM: the simulator runs kernels as Python and
cannot catch typing errors of the real target (atomics on int64 tuples, integer
promotions, ``math.floor`` giving a float, the builtin ``max`` in an inlined device
function); this does."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numba.cuda.dispatcher
from numba import cuda, types

numba.cuda.dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=(8, 0))

from jfsim.analysis.engines import gpu  # noqa: E402 - after the patch, which device functions need
from jfsim.analysis.indexing.engines import gpu as indexing_gpu  # noqa: E402

I64_1D = types.Array(types.int64, 1, "C")
I64_2D = types.Array(types.int64, 2, "C")
F64_1D = types.Array(types.float64, 1, "C")
F64_2D = types.Array(types.float64, 2, "C")
#: The indexing engine's kernels: (spots [3, n], trial vectors [m, 3], a float, output).
INDEXING = {
    "score_all": (F64_2D, F64_2D, types.float64, F64_1D),
    "histogram_all": (F64_2D, F64_2D, types.float64, types.Array(types.int32, 2, "C")),
}


def main() -> int:
    kernels = gpu._kernels()
    compiled = 0
    for pixel in (types.int16, types.int32, types.uint16, types.uint32):
        pixel_pass = (
            types.Array(pixel, 1, "C"),
            types.Array(types.uint8, 1, "C"),
            types.Array(types.int32, 1, "C"),
            types.Array(types.float32, 1, "C"),
            types.Array(types.uint16, 1, "C"),
            types.boolean,
            types.int64,
            types.int64,
            types.int64,
            types.int64,
            types.boolean,
            I64_1D,
            I64_2D,
            F64_1D,
            I64_2D,
            I64_1D,
            I64_1D,
            I64_1D,  # the block's starting statistics
            I64_1D,  # the block's starting ROI row
        )
        candidates = (
            types.Array(pixel, 2, "C"),
            types.Array(types.uint8, 2, "C"),
            I64_1D,
            types.int64,
            types.int64,
            types.int64,
            types.int64,
            types.float64,
            types.int64,
            F64_1D,
        )
        for name, signature in (("pixel_pass", pixel_pass), ("test_candidates", candidates)):
            ptx, _ = cuda.compile_ptx(kernels[name].py_func, signature, cc=(8, 0))
            print(f"{name} {pixel}: {len(ptx)} bytes of PTX")
            compiled += 1
    for name, signature in INDEXING.items():
        ptx, _ = cuda.compile_ptx(indexing_gpu._kernels()[name].py_func, signature, cc=(8, 0))
        print(f"indexing {name}: {len(ptx)} bytes of PTX")
        compiled += 1
    return 0 if compiled == 10 else 1


if __name__ == "__main__":
    sys.exit(main())
