"""The preferences' Models box against the real engine: Download Models fetches (here from
a studio mirror folder of generated weights) and the box shows each model verified; Allow
Online Access off greys the button with the reason and starts the engine offline; a
detector job with no detector says what to press in Blender, not a command line.

Skipped with the reason when the engine's environment cannot run ``python -m engine serve --help``.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from blender_helpers import ENGINE_PYTHON, REPO, engine_status, load_plate

DETECTOR_FILE = "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"

# Runs in the engine's Python (torch): a mirror folder with both models, generated.
MAKE_MIRROR = r"""
import hashlib, json, sys, torch
sys.path.insert(0, "tests")
from conftest import authors_state_dict
from torchvision.models.detection import maskrcnn_resnet50_fpn
folder = sys.argv[1]
torch.manual_seed(0)
torch.save({"state_dict": authors_state_dict()}, f"{folder}/best_model.pth")
torch.save(maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(), f"{folder}/{sys.argv[2]}")
models = {}
for name, file in (("instmatt", "best_model.pth"), ("detector", sys.argv[2])):
    data = open(f"{folder}/{file}", "rb").read()
    models[name] = {"file": file, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
json.dump({"models": models}, open(f"{folder}/models.json", "w"))
"""


@pytest.fixture(scope="module", autouse=True)
def real_engine(bpy):
    why = engine_status()
    if why is not None:
        pytest.skip(f"real engine unavailable: {why}")


@pytest.fixture(scope="module")
def model_mirror(tmp_path_factory):
    folder = tmp_path_factory.mktemp("studio_mirror")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    subprocess.run([ENGINE_PYTHON, "-c", MAKE_MIRROR, str(folder), DETECTOR_FILE], cwd=REPO, env=env, check=True,
                   timeout=600)
    return folder


@pytest.fixture
def online_access(bpy):
    """``online_access(True/False)`` sets Blender's Allow Online Access; restored after."""
    system = bpy.context.preferences.system
    saved = system.use_online_access

    def set_access(value: bool):
        system.use_online_access = value
        assert bpy.app.online_access == value

    yield set_access
    system.use_online_access = saved


@pytest.fixture
def real_engine_prefs(prefs, tmp_path, monkeypatch):
    prefs.engine_mode = "PYTHON"
    prefs.engine_python = ""  # <repo>/.venv/bin/python
    prefs.start_timeout = 600.0
    monkeypatch.setenv("INSTMATT_CACHE", str(tmp_path / "model_cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("INSTMATT_MODELS_MIRROR", raising=False)
    return prefs


def test_models_box_fields_and_manifest_permission(bpy, addon, prefs):
    assert type(prefs).bl_rna.properties["weights"].name == "InstMatt Weights"
    assert type(prefs).bl_rna.properties["detector_weights"].name == "Detector Weights"
    prefs.detector_weights = "/studio/maskrcnn.pth"
    try:
        assert addon.prefs.engine_options(prefs)["detector_weights"] == "/studio/maskrcnn.pth"
    finally:
        prefs.detector_weights = ""
    manifest = open(os.path.join(REPO, "blender_manifest.toml"), encoding="utf-8").read()
    assert 'network = "Download Models fetches the detector and the InstMatt weights"' in manifest


def test_offline_greys_the_button_and_starts_the_engine_offline(bpy, addon, real_engine_prefs, online_access):
    online_access(False)
    assert not bpy.ops.instmatt.download_models.poll()
    with pytest.raises(RuntimeError, match="Allow Online Access is off"):
        bpy.ops.instmatt.download_models()
    argv, _, env = addon.prefs.engine_launch(real_engine_prefs)
    assert argv[-1] == "--offline" and env["INSTMATT_OFFLINE"] == "1"
    online_access(True)
    assert bpy.ops.instmatt.download_models.poll()
    argv, _, _ = addon.prefs.engine_launch(real_engine_prefs)
    assert "--offline" not in argv


def test_download_models_fills_the_models_box(bpy, addon, real_engine_prefs, online_access, model_mirror,
                                              monkeypatch, tmp_path):
    online_access(True)
    # Blender's Allow Online Access decides, not the suite's switch; the mirror is a folder,
    # so nothing leaves the machine
    monkeypatch.delenv("INSTMATT_OFFLINE", raising=False)
    monkeypatch.setenv("INSTMATT_MODELS_MIRROR", str(model_mirror))
    assert bpy.ops.instmatt.check_engine() == {"FINISHED"}  # hello: the engine runs the toy weights
    assert addon.client.models.last_models["toy"] is True
    assert bpy.ops.instmatt.refresh_models() == {"FINISHED"}
    status = addon.client.models.last_models
    assert [(m["name"], m["status"]) for m in status["models"]] == [("instmatt", "missing"), ("detector", "missing")]
    assert status["toy"] is True and status["offline"] is False

    assert bpy.ops.instmatt.download_models() == {"FINISHED"}
    rows = addon.client.models.model_rows(addon.client.models.last_models["models"])
    assert [(name, text.split(",")[0], icon) for name, text, icon in rows] == [
        ("instmatt", "verified", "CHECKMARK"), ("detector", "verified", "CHECKMARK")]
    cache = tmp_path / "model_cache"
    assert (cache / "best_model.pth").is_file() and (cache / DETECTOR_FILE).is_file()
    assert addon.client.models.last_models["cache"] == str(cache)
    assert addon.client.models.last_models["toy"] is False  # the authors' checkpoint is cached now


def test_missing_detector_error_speaks_blender(bpy, addon, real_engine_prefs, online_access, scene, plate_sequence):
    online_access(False)  # the engine may not download: the detector stays missing
    plate = load_plate(bpy, plate_sequence)
    scene.instmatt.guidance = "DETECTOR"
    with pytest.raises(RuntimeError) as info:
        bpy.ops.instmatt.matte_people(image=plate.name)
    message = str(info.value)
    assert ("no person detector yet: press Download Models in the InstMatt preferences, "
            "or set Guidance to Mask") in message
    assert "instmatt models fetch" not in message and "--masks" not in message
