"""client/staging.py: the extension folder (package + the one manifest), and the bpy-free
half really runs without bpy."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest
from blender_helpers import PACKAGE_DIR, REPO, load_client

CLIENT_DIR = os.path.join(PACKAGE_DIR, "client")


@pytest.fixture(scope="module")
def staging(bpy):  # needs the bpy environment only because this folder runs there
    return load_client("staging")


def test_one_manifest_at_the_repository_root(staging):
    assert staging.manifest_path() == os.path.join(REPO, "blender_manifest.toml")
    assert not os.path.lexists(os.path.join(PACKAGE_DIR, "blender_manifest.toml"))


def test_stage_links_or_copies_the_package_and_the_manifest(staging, tmp_path):
    linked = staging.stage_extension(str(tmp_path / "linked"))
    assert os.path.basename(linked) == "blender_instmatt"
    assert os.path.realpath(os.path.join(linked, "__init__.py")) == os.path.join(PACKAGE_DIR, "__init__.py")
    assert os.path.realpath(os.path.join(linked, "client", "job.py")) == os.path.join(CLIENT_DIR, "job.py")
    assert os.path.realpath(os.path.join(linked, "blender_manifest.toml")) == os.path.join(REPO, "blender_manifest.toml")
    assert "__pycache__" not in os.listdir(linked)
    copied = staging.stage_extension(str(tmp_path / "copied"), copy=True)
    assert not os.path.islink(os.path.join(copied, "client"))
    assert open(os.path.join(copied, "client", "job.py")).read() == open(os.path.join(CLIENT_DIR, "job.py")).read()
    # staged again from the staged copy (an installed extension): the manifest beside __init__.py is found
    again = staging.stage_extension(str(tmp_path / "again"), package_dir=copied, copy=True)
    assert sorted(os.listdir(again)) == sorted(os.listdir(copied))
    with pytest.raises(FileExistsError):
        staging.stage_extension(str(tmp_path / "copied"))


def test_client_imports_no_bpy(bpy):
    for name in sorted(os.listdir(CLIENT_DIR)):
        if name.endswith(".py"):
            tree = ast.parse(open(os.path.join(CLIENT_DIR, name), encoding="utf-8").read())
            imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]
            assert not [m for m in imported if m.split(".")[0] in ("bpy", "mathutils", "addon_utils")], name
    # and every module runs on its own, outside Blender, without bpy being loaded
    modules = [n[:-3] for n in sorted(os.listdir(CLIENT_DIR)) if n.endswith(".py") and n != "__init__.py"]
    code = ("import importlib, sys; sys.path.insert(0, sys.argv[1]); "
            "[importlib.import_module('client.' + m) for m in sys.argv[2:]]; "
            "import client.protocol as p; print(p.PROTOCOL_MAJOR, 'bpy' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, PACKAGE_DIR, *modules], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["1", "False"], proc.stderr
