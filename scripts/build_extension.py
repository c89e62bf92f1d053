"""Validate the Blender extension or build its zip, from the checkout.

    .venv-blender/bin/python scripts/build_extension.py build [--output-dir dist]
    .venv-blender/bin/python scripts/build_extension.py validate
    python scripts/build_extension.py build --blender /path/to/blender

The repository keeps one manifest, at its root; Blender wants it beside ``__init__.py``.
So the package and the manifest are first copied into a temporary folder
(``blender_instmatt/client/staging.py``), which Blender's own tool then validates or
builds: ``blender --command extension ...`` with ``--blender``, else ``blender_ext.py``
from the ``bpy`` wheel of the Python running this script (the same tool, no Blender
binary needed).  The output folder is created when missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(REPO, "blender_instmatt")


def load_staging():
    """blender_instmatt/client/staging.py, by path (the add-on's package imports bpy)."""
    spec = importlib.util.spec_from_file_location("instmatt_staging",
                                                  os.path.join(PACKAGE_DIR, "client", "staging.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wheel_tool() -> str | None:
    """``blender_ext.py`` inside the bpy wheel of this Python, None without bpy."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.origin:
        return None
    root = os.path.dirname(spec.origin)
    for version in sorted(os.listdir(root), reverse=True):
        path = os.path.join(root, version, "scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")
        if os.path.isfile(path):
            return path
    return None


def extension_tool(blender: str = "") -> list[str]:
    """The command line that runs Blender's extension tool."""
    if blender:
        return [blender, "--command", "extension"]
    tool = wheel_tool()
    if tool is None:
        raise SystemExit("build_extension: no bpy in this Python and no --blender given "
                         "(run it with .venv-blender/bin/python, see scripts/setup_blender_env.sh)")
    return [sys.executable, tool]


def run(action: str, output_dir: str = "dist", blender: str = "") -> subprocess.CompletedProcess:
    """Stage the extension and run the tool's ``validate`` or ``build`` on it."""
    tool = extension_tool(blender)
    with tempfile.TemporaryDirectory(prefix="instmatt_extension_") as work:
        source = load_staging().stage_extension(work, PACKAGE_DIR, copy=True)
        if action == "validate":
            args = ["validate", source]
        else:
            output_dir = os.path.abspath(output_dir)
            os.makedirs(output_dir, exist_ok=True)
            args = ["build", "--source-dir", source, "--output-dir", output_dir]
        return subprocess.run(tool + args, capture_output=True, text=True, timeout=300)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate the InstMatt extension or build its zip.")
    parser.add_argument("action", choices=("build", "validate"))
    parser.add_argument("--output-dir", default=os.path.join(REPO, "dist"), help="where the zip goes (build)")
    parser.add_argument("--blender", default="", help="a Blender binary (default: the bpy wheel's tool)")
    args = parser.parse_args(argv)
    proc = run(args.action, args.output_dir, args.blender)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
