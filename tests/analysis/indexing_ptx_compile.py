"""Run by test_indexing_engines.py in a subprocess: compile the indexing GPU engine's two
kernels to PTX for a real GPU (compute capability 8.0) without a GPU, using the CUDA
toolkit's libNVVM: the simulator runs kernels as Python and cannot catch typing errors of
the real target; this does."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numba.cuda.dispatcher
from numba import cuda, types

numba.cuda.dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=(8, 0))

from jfsim.analysis.indexing.engines import gpu  # noqa: E402 - after the patch

F64_1D = types.Array(types.float64, 1, "C")
F64_2D = types.Array(types.float64, 2, "C")
I32_2D = types.Array(types.int32, 2, "C")


def main() -> int:
    kernels = gpu._kernels()
    signatures = {
        "score_all": (F64_2D, F64_2D, types.float64, F64_1D),
        "histogram_all": (F64_2D, F64_2D, types.float64, I32_2D),
    }
    for name, signature in signatures.items():
        ptx, _ = cuda.compile_ptx(kernels[name].py_func, signature, cc=(8, 0))
        print(f"{name}: {len(ptx)} bytes of PTX")
    return 0


if __name__ == "__main__":
    sys.exit(main())
