"""The extension registers, unregisters without leftovers, and its manifest validates."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest
from blender_helpers import ADDON, PACKAGE_DIR, REPO, build_script

CLASSES = ("INSTMATT_OT_matte_people", "INSTMATT_OT_check_engine", "INSTMATT_OT_stop_engine",
           "INSTMATT_OT_open_engine_log", "INSTMATT_OT_load_mattes", "INSTMATT_OT_refresh_models",
           "INSTMATT_OT_download_models", "INSTMATT_PT_image", "INSTMATT_PT_clip", "INSTMATT_PT_compositor",
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
    offline = [] if bpy.app.online_access else ["--offline"]  # Allow Online Access off: the engine too
    assert argv == [os.path.join(REPO, ".venv", "bin", "python"), "-m", "engine", "serve", "--stdio", *offline]
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
        assert addon.client.shared.current_engine() is None
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


def test_manifest_validates():
    # One manifest, at the repository root: the build script stages it beside __init__.py.
    proc = build_script().run("validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_extension_builds_into_installable_zip(tmp_path):
    dist = tmp_path / "dist"  # missing: the build script creates it
    proc = build_script().run("build", str(dist))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (archive,) = [p for p in os.listdir(dist) if p.endswith(".zip")]
    assert archive == "blender_instmatt-0.1.0.zip"
    names = zipfile.ZipFile(dist / archive).namelist()
    assert {"__init__.py", "blender_manifest.toml", "operators.py", "client/process.py", "client/job.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests", "engine/", ".venv"))]
    proc = subprocess.run([sys.executable, build_script().wheel_tool(), "validate", str(dist / archive)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_addon_imports_no_torch_or_numpy():
    """The add-on's modules import bpy and the standard library only."""
    import ast

    allowed = set(sys.stdlib_module_names) | {"bpy", "addon_utils", "bpy_extras", "mathutils"}
    for folder, _, names in os.walk(PACKAGE_DIR):
        for name in names:
            if not name.endswith(".py"):
                continue
            tree = ast.parse(open(os.path.join(folder, name), encoding="utf-8").read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    roots = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    roots = [node.module.split(".")[0]]
                else:
                    continue
                for root in roots:
                    assert root in allowed, f"{name} imports {root}"
