#!/usr/bin/env bash
# One command that sets everything up on a fresh machine: a virtual environment in .venv
# with the project installed in editable mode plus its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
