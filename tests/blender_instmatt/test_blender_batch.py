"""Batch use: blender_instmatt/batch.py on a saved .blend, in a fresh Blender process."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap

import pytest
from blender_helpers import (
    FAKE_ENGINE,
    PACKAGE_DIR,
    REPO,
    box_mask,
    load_plate,
    read_exr_channels,
)

BATCH = os.path.join(PACKAGE_DIR, "batch.py")

# What `blender -b FILE --python batch.py -- ARGS` does, with the bpy module: open the
# file, then run the script as __main__ with Blender's argv.
RUNNER = textwrap.dedent("""
    import atexit, os, runpy, shutil, sys, tempfile
    os.environ["BLENDER_USER_RESOURCES"] = user = tempfile.mkdtemp(prefix="instmatt_batch_user_")
    atexit.register(shutil.rmtree, user, True)
    import bpy
    blend, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    bpy.ops.wm.open_mainfile(filepath=blend)
    sys.argv = ["blender", "-b", blend, "--python", script, "--"] + args
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    import addon_utils
    for name in list(bpy.context.preferences.addons.keys()):
        if name.endswith("blender_instmatt"):
            addon_utils.disable(name)
    sys.exit(code)
""")


@pytest.fixture
def blend_file(bpy, addon, scene, plate_sequence, tmp_path):
    plate = load_plate(bpy, plate_sequence)
    plate.name = "plate"
    plate.use_fake_user = True  # unused images are not saved
    box_mask(bpy, "Roto").use_fake_user = True
    scene.instmatt.output_dir = "//mattes/"
    path = str(tmp_path / "shot.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    return path


def _run(blend, *args, timeout=300):
    return subprocess.run([sys.executable, "-c", RUNNER, blend, BATCH, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=os.path.dirname(blend))


def test_batch_script_mattes_a_shot(blend_file, tmp_path):
    engine = f'"{sys.executable}" "{FAKE_ENGINE}"'
    proc = _run(blend_file, "--image", "plate", "--mask", "Roto", "--engine-command", engine, "--save")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mattes in" in proc.stdout and "person_01, person_02" in proc.stdout
    files = sorted(glob.glob(str(tmp_path / "mattes" / "plate" / "instmatt.*.exr")))
    assert len(files) == 3
    assert sorted(read_exr_channels(files[0])) == ["person_01.A", "person_02.A"]
    assert not os.path.exists(os.path.join(REPO, ".blender_ext"))  # nothing written into the checkout
    # headless too, the unanimated Mask is one keyframe at the first frame (propagated from)
    assert os.listdir(tmp_path / "mattes" / "plate" / "keyframes") == ["0001"], proc.stdout + proc.stderr
    assert "rasterising keyframe masks" in proc.stdout and "frames from keyframes [1]" in proc.stdout
    # the saved file now has the mattes in its compositor; a rerun resumes (no work)
    proc = _run(blend_file, "--image", "plate", "--mask", "Roto", "--engine-command", engine, "--frames", "1-3",
                "--no-propagate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rasterising masks" in proc.stdout and "keyframe" not in proc.stdout


def test_batch_script_fails_with_a_clear_message(blend_file):
    proc = _run(blend_file, "--image", "plate", "--engine-python", "/nonexistent/python", "--detector")
    assert proc.returncode == 1
    assert "Engine Python not found: /nonexistent/python" in proc.stderr + proc.stdout
