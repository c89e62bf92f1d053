"""Shared set-up for the add-on's tests, which run in Blender's Python as a module:

    scripts/setup_blender_env.sh && .venv-blender/bin/python -m pytest tests/blender_instmatt

Without ``bpy`` (e.g. ``pytest tests`` in the engine's .venv) every test here is
skipped with that reason; nothing here imports bpy at module level unless it exists.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # blender_helpers, fake_engine

from blender_helpers import ADDON, FAKE_ENGINE, REPO_MODULE, enable_extension, make_plate_sequence  # noqa: E402

# Blender must never write into the user's own configuration: set this before bpy loads.
if "bpy" not in sys.modules:
    _USER_RESOURCES = tempfile.mkdtemp(prefix="instmatt_blender_user_")
    os.environ["BLENDER_USER_RESOURCES"] = _USER_RESOURCES
    atexit.register(shutil.rmtree, _USER_RESOURCES, True)

HAVE_BPY = importlib.util.find_spec("bpy") is not None
SKIP_REASON = ("bpy is not importable here: the add-on's tests run in Blender's Python "
               "(scripts/setup_blender_env.sh; .venv-blender/bin/python -m pytest tests/blender_instmatt)")


def pytest_collection_modifyitems(config, items):
    if HAVE_BPY:
        return
    marker = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if str(item.fspath).startswith(HERE):
            item.add_marker(marker)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def bpy():
    if not HAVE_BPY:
        pytest.skip(SKIP_REASON)
    import bpy as module

    return module


@pytest.fixture(scope="session")
def addon(bpy):
    """The extension, registered the way Blender registers one; disabled at the end."""
    bpy.ops.wm.read_factory_settings(use_empty=True)  # drops custom repos, so do it first
    module, cleanup = enable_extension(bpy, REPO_MODULE, "InstMatt Test")
    assert module is not None, "the extension failed to enable"
    yield module
    cleanup()


@pytest.fixture
def prefs(bpy, addon):
    """The add-on's preferences, restored after the test."""
    p = bpy.context.preferences.addons[ADDON].preferences
    saved = {k: getattr(p, k) for k in ("engine_mode", "engine_python", "engine_command", "engine_root",
                                        "start_timeout", "backend", "weights", "max_side", "refine")}
    yield p
    p = bpy.context.preferences.addons[ADDON].preferences  # afresh: a test that re-enabled the add-on freed the old
    for key, value in saved.items():
        setattr(p, key, value)
    addon.client.shared.stop_shared_engine()


@pytest.fixture
def fake_engine(prefs):
    """Use the protocol stand-in as the engine; returns a function to change its mode."""

    def use(mode: str = "normal", delay: float = 0.0):
        prefs.engine_mode = "COMMAND"
        prefs.engine_command = f'"{sys.executable}" "{FAKE_ENGINE}" --mode {mode} --delay {delay}'
        prefs.start_timeout = 30.0

    use()
    return use


@pytest.fixture
def scene(bpy, addon, tmp_path):
    """A fresh empty scene (the add-on stays registered), 3 frames, 64x48."""
    bpy.ops.wm.read_homefile(use_empty=True)
    sc = bpy.context.scene
    sc.frame_start, sc.frame_end = 1, 3
    sc.frame_set(1)
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = 64, 48, 100
    sc.render.filepath = str(tmp_path / "render" / "frame_")
    sc.instmatt.output_dir = str(tmp_path / "mattes") + os.sep
    # Blender 4.x renders the scene too (and refuses to without a camera): keep it cheap
    sc.render.engine = "BLENDER_WORKBENCH"
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    sc.collection.objects.link(camera)
    sc.camera = camera
    yield sc


@pytest.fixture
def plate_sequence(tmp_path):
    """plate.0001.png .. plate.0003.png (64x48): two 'people' on a dark ground."""
    return make_plate_sequence(str(tmp_path / "plate"))
