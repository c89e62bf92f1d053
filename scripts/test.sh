#!/usr/bin/env bash
# The whole test suite: the engine's tests in .venv, the add-on's in .venv-blender
# (real bpy 5.0.1, numpy < 2, no torch), exactly as the two run in production.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
status=0
.venv/bin/python -m pytest tests/engine tests/build_trt -q "$@" || status=$?
if [ -f scripts/setup_blender_env.sh ]; then
    bash scripts/setup_blender_env.sh
    .venv-blender/bin/python -m pytest tests/blender_instmatt -q "$@" || status=$?
fi
exit $status
