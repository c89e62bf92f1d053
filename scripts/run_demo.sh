#!/usr/bin/env bash
# The main job: the whole pipeline, offline, on a generated multi-person clip.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
exec .venv/bin/instmatt demo "$@"
