#!/usr/bin/env bash
# Create (or reuse) the add-on's test environment: Blender's Python as a module.
#
#   scripts/setup_blender_env.sh            -> <repo>/.venv-blender
#   BLENDER_VENV=/some/dir scripts/...      -> somewhere else
#
# The add-on runs inside Blender's own Python (3.11, numpy < 2, no torch), never in the
# engine's environment (.venv). This environment mirrors that: the `bpy` wheel from PyPI
# (~400 MB), numpy < 2, OpenEXR (tests write and read EXR files) and pytest.
#
# Idempotent: when the environment already imports everything it needs, the script
# returns within a second or two and installs nothing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BLENDER_VENV:-$repo/.venv-blender}"
py="$venv/bin/python"

# The versions the add-on is tested against (Blender 5.0.1 bundles Python 3.11, numpy 1.26).
BPY_VERSION="${BPY_VERSION:-5.0.1}"
REQUIREMENTS=("bpy==$BPY_VERSION" "numpy<2" "OpenEXR" "pytest")

check() {
    "$py" - "$BPY_VERSION" <<'EOF' >/dev/null 2>&1
import sys, importlib.metadata as md
want = sys.argv[1]
assert md.version("bpy") == want, md.version("bpy")
assert int(md.version("numpy").split(".")[0]) < 2
import OpenEXR, pytest  # noqa: F401
EOF
}

if [ -x "$py" ] && check; then
    echo "setup_blender_env: $venv is ready (bpy $BPY_VERSION)"
    exit 0
fi

if [ ! -x "$py" ]; then
    base="${PYTHON311:-}"
    if [ -z "$base" ]; then
        for candidate in python3.11 python3; do
            if command -v "$candidate" >/dev/null 2>&1 &&
               "$candidate" -c 'import sys; raise SystemExit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
                base="$candidate"
                break
            fi
        done
    fi
    if [ -z "$base" ]; then
        echo "setup_blender_env: Python 3.11 is required (bpy $BPY_VERSION is built for it); set PYTHON311=/path/to/python3.11" >&2
        exit 1
    fi
    echo "setup_blender_env: creating $venv with $base"
    "$base" -m venv "$venv"
fi

"$py" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
echo "setup_blender_env: installing ${REQUIREMENTS[*]} (bpy is ~400 MB the first time)"
# (the grep drops pip's notes about this machine's extra package indexes)
"$py" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}" 2>&1 \
    | grep -v "^WARNING: Location" || true

if ! check; then
    echo "setup_blender_env: $venv is incomplete after pip install" >&2
    exit 1
fi
echo "setup_blender_env: $venv is ready (bpy $BPY_VERSION)"
