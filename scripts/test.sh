#!/usr/bin/env bash
# Quick start, command 2: install everything and run the linters and the whole test suite, real CP2K included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest "$@"
