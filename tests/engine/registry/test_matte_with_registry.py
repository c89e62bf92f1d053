"""``instmatt matte`` with the registry, as a TD runs it after ``instmatt models fetch``:
the authors' checkpoint and the detector come from INSTMATT_CACHE; offline with an empty
cache the detector path stops with one line naming the fetch command."""

from __future__ import annotations

import os
import subprocess

import cv2
import numpy as np
import pytest

from engine.io.exr import read_manifest
from engine.registry import ModelStore

from .conftest import DETECTOR_FILE


def _only_exr(folder):
    (path,) = folder.glob("*.exr")  # one still in, one EXR out (its name is the output layout's business)
    return path


def _matte(engine_python, repo_root, tmp_path, *args, **env):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("INSTMATT_")}
    environment.update(OMP_NUM_THREADS="1", TORCH_HOME=str(tmp_path / "torch_home"), PYTHONPATH=str(repo_root),
                       INSTMATT_DISABLE_BACKENDS="onnxruntime,tensorrt")
    environment.update({key: str(value) for key, value in env.items()})
    return subprocess.run([engine_python, "-m", "engine", "matte", *args, "--threads", "1"], cwd=repo_root,
                          env=environment, capture_output=True, text=True, timeout=400)


@pytest.fixture
def image_and_masks(tmp_path):
    rng = np.random.default_rng(0)
    image = tmp_path / "shot.png"
    assert cv2.imwrite(str(image), rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    masks = tmp_path / "masks"
    masks.mkdir()
    person = np.zeros((64, 96), np.uint8)
    person[8:56, 20:60] = 255
    assert cv2.imwrite(str(masks / "01.png"), person)
    return image, masks


def test_matte_uses_the_cached_models(engine_python, repo_root, tmp_path, loopback, make_mirror, image_and_masks):
    cache = tmp_path / "cache"
    ModelStore(cache).fetch(mirror=make_mirror(loopback))
    image, masks = image_and_masks

    with_masks = _matte(engine_python, repo_root, tmp_path, str(image), "-o", str(tmp_path / "out_masks") + "/",
                        "--masks", str(masks), INSTMATT_CACHE=cache, INSTMATT_OFFLINE=1)
    assert with_masks.returncode == 0, with_masks.stderr
    assert "toy weights" not in with_masks.stderr
    manifest = read_manifest(_only_exr(tmp_path / "out_masks"))
    assert manifest["weights"] == str(cache / "best_model.pth") and manifest["weights_toy"] is False
    assert manifest["people"] == ["person_01"]

    detected = _matte(engine_python, repo_root, tmp_path, str(image), "-o", str(tmp_path / "out_det") + "/",
                      INSTMATT_CACHE=cache, INSTMATT_OFFLINE=1)
    assert detected.returncode == 0, detected.stderr
    manifest = read_manifest(_only_exr(tmp_path / "out_det"))
    assert manifest["guidance"]["kind"] == "detector"
    assert manifest["guidance"]["weights"] == str(cache / DETECTOR_FILE)


def test_toy_weights_are_said_plainly(engine_python, repo_root, tmp_path, image_and_masks):
    image, masks = image_and_masks
    result = _matte(engine_python, repo_root, tmp_path, str(image), "-o", str(tmp_path / "out") + "/",
                    "--masks", str(masks), INSTMATT_CACHE=tmp_path / "empty", INSTMATT_OFFLINE=1)
    assert result.returncode == 0, result.stderr
    assert "toy weights" in result.stderr and "instmatt models fetch instmatt" in result.stderr
    manifest = read_manifest(_only_exr(tmp_path / "out"))
    assert manifest["weights_toy"] is True and manifest["weights"].endswith("instmatt_tiny.safetensors")


def test_offline_empty_cache_detector_path_is_one_line(engine_python, repo_root, tmp_path, image_and_masks):
    image, _ = image_and_masks
    result = _matte(engine_python, repo_root, tmp_path, str(image), "-o", str(tmp_path / "out") + "/",
                    INSTMATT_CACHE=tmp_path / "empty", INSTMATT_OFFLINE=1)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "instmatt models fetch" in lines[0], result.stderr
    assert not list(tmp_path.glob("out/*.exr"))
