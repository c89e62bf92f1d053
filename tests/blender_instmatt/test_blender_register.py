"""The extension registers, unregisters without leftovers, and its manifest validates."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest
from blender_helpers import ADDON, PACKAGE_DIR, REPO, validator_path

CLASSES = ("INSTMATT_OT_matte_people", "INSTMATT_OT_check_engine", "INSTMATT_OT_stop_engine",
           "INSTMATT_OT_load_mattes", "INSTMATT_PT_image", "INSTMATT_PT_clip", "INSTMATT_PT_compositor",
           )


def _registered(bpy):
    return [name for name in CLASSES if hasattr(bpy.types, name)]


def test_registered(bpy, addon):
    assert ADDON in bpy.context.preferences.addons
    assert _registered(bpy) == list(CLASSES)
    assert hasattr(bpy.types.Scene, "instmatt")
    assert addon.__package__ == ADDON
    prefs = bpy.context.preferences.addons[ADDON].preferences
    assert (prefs.backend, prefs.score, prefs.max_side, prefs.refine) == ("auto", pytest.approx(0.7), 1280,
                                                                          "windowed")
    assert prefs.min_area == pytest.approx(0.02)
    assert prefs.engine_mode == "PYTHON" and prefs.engine_python == ""


def test_default_engine_is_repo_venv(bpy, addon):
    prefs = bpy.context.preferences.addons[ADDON].preferences
    argv, cwd, env = addon.prefs.engine_launch(prefs)
    assert argv == [os.path.join(REPO, ".venv", "bin", "python"), "-m", "engine", "serve", "--stdio"]
    assert cwd == REPO
    assert env["PYTHONPATH"].split(os.pathsep)[0] == REPO
    assert env["INSTMATT_CACHE_DIR"].endswith("engines") and os.path.isdir(env["INSTMATT_CACHE_DIR"])


def test_unregister_and_register_again(bpy, addon):
    import addon_utils

    menu_funcs = lambda: [f for f in bpy.types.IMAGE_MT_image._dyn_ui_initialize() if  # noqa: E731
                          getattr(f, "__module__", "").startswith(ADDON)]
    assert len(menu_funcs()) == 1
    addon_utils.disable(ADDON, default_set=True)
    try:
        assert ADDON not in bpy.context.preferences.addons
        assert _registered(bpy) == []
        assert not hasattr(bpy.types.Scene, "instmatt")
        assert menu_funcs() == []
        assert addon.engine_client.current_engine() is None
    finally:
        module = addon_utils.enable(ADDON, default_set=True, handle_error=None)
    assert module is not None
    assert _registered(bpy) == list(CLASSES)
    assert len(menu_funcs()) == 1


def test_unregister_stops_the_engine(bpy, addon, fake_engine):
    import addon_utils

    prefs = bpy.context.preferences.addons[ADDON].preferences
    client = addon.prefs.get_engine(prefs)
    client.wait_hello(timeout=30)
    assert client.alive()
    addon_utils.disable(ADDON, default_set=True)
    try:
        assert not client.alive()
        assert client.proc.returncode == 0  # shut down politely
    finally:
        addon_utils.enable(ADDON, default_set=True, handle_error=None)


def _validator(*args):
    path = validator_path()
    assert path, "blender_ext.py not found in the bpy wheel"
    return subprocess.run([sys.executable, path, *args], capture_output=True, text=True, timeout=120)


def test_manifest_validates():
    # The manifest sits at the repository root and, as a link, next to __init__.py.
    assert os.path.realpath(os.path.join(PACKAGE_DIR, "blender_manifest.toml")) == \
        os.path.realpath(os.path.join(REPO, "blender_manifest.toml"))
    proc = _validator("validate", PACKAGE_DIR)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_extension_builds_into_installable_zip(tmp_path):
    proc = _validator("build", "--source-dir", PACKAGE_DIR, "--output-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (archive,) = [p for p in os.listdir(tmp_path) if p.endswith(".zip")]
    assert archive == "blender_instmatt-0.1.0.zip"
    names = zipfile.ZipFile(tmp_path / archive).namelist()
    assert "__init__.py" in names and "blender_manifest.toml" in names and "engine_client.py" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests", "engine/", ".venv"))]
    proc = _validator("validate", str(tmp_path / archive))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_addon_imports_no_torch_or_numpy():
    """The add-on's modules import bpy and the standard library only."""
    import ast

    allowed = set(sys.stdlib_module_names) | {"bpy", "addon_utils", "bpy_extras", "mathutils"}
    for name in os.listdir(PACKAGE_DIR):
        if not name.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(PACKAGE_DIR, name), encoding="utf-8").read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [node.module.split(".")[0]]
            else:
                continue
            for root in roots:
                assert root in allowed, f"{name} imports {root}"


def test_engine_client_has_no_bpy():
    source = open(os.path.join(PACKAGE_DIR, "engine_client.py"), encoding="utf-8").read()
    assert "import bpy" not in source
    # and it runs on its own, outside Blender
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                           "import engine_client; print(engine_client.PROTOCOL_MAJOR)", PACKAGE_DIR],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "1", proc.stderr
