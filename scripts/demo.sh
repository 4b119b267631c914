#!/usr/bin/env bash
# Quick start, command 1: install everything, set up the embedded AiiDA profile and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/nanohetero setup
.venv/bin/nanohetero demo "$@"
