#!/usr/bin/env bash
# Create (or reuse) the engine's virtual environment in .venv at the repository root.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating $venv" >&2
    "$python" -m venv "$venv"
fi
stamp="$venv/.instmatt-installed"
want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing the engine and its dependencies into $venv (torch from local disk)" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[dev]" 2>&1 \
        | grep -v "^WARNING: Location" || true
    "$venv/bin/python" -c "import torch, torchvision, cv2, av, onnxruntime, OpenEXR" \
        || { echo "setup: the engine environment is incomplete" >&2; exit 1; }
    echo "$want" > "$stamp"
fi
