#!/usr/bin/env bash
# Benchmark runner (CPU, and GPU where numba.cuda finds a device): every benchmark suite plus
# the real-GPU tests, with pytest-benchmark's JSON written to ${BENCH_OUT:-bench-results}.
# Figures are ratios against baselines measured in the same run; see README § Performance.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${BENCH_OUT:-bench-results}"
mkdir -p "$out"
.venv/bin/python -m pytest -s -q -m "benchmark or gpu" --benchmark-enable \
    --benchmark-json="$out/benchmarks.json" tests "$@" | tee "$out/benchmarks.log"
