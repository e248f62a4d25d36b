#!/usr/bin/env bash
# Runs the lint and the default test suite (benchmarks and real-GPU tests excluded).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check jfsim jfconform fixtures tests
.venv/bin/python -m pytest -q "$@"
