#!/usr/bin/env bash
# Train the shipped tiny InstMatt (both stages) on the CPU and export
# engine/weights/instmatt_tiny.safetensors. Extra arguments go to `instmatt train`,
# e.g. `scripts/train_tiny.sh --resume auto` to continue an interrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" -m engine train configs/tiny.yaml "$@"
