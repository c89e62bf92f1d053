"""Shared fixtures for the engine's tests: small, generated, offline.

- ``repo_root``, ``shared_data`` (the real photos/video in ../shared/data; tests that need
  them skip with a reason when absent);
- ``tiny_weights`` / ``tiny_model``: a random width-0.25 InstMatt saved as a checkpoint and
  loaded behind the backend interface (fast, deterministic, no download);
- ``small_clip``: a few frames of the generated multi-person clip with ground truth;
- ``write_sequence``: writes frames (+ optional per-person mask folders) to disk;
- ``random_detector_weights`` / ``person_detector_weights``: Mask R-CNN state_dicts from a
  randomly initialised model (the second with its 'person' logit raised so it finds people).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def engine_python() -> str:
    """The interpreter that runs the engine (the project's .venv when present)."""
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (never committed; absent on users' machines)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    import torch

    from engine.model import InstMatt, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny_random.safetensors"
    return save_checkpoint(InstMatt(0.25), path)


@pytest.fixture(scope="session")
def tiny_model(tiny_weights):
    """A random width-0.25 network behind the backend interface (eager PyTorch, CPU)."""
    from engine.backends import create_backend

    return create_backend("pytorch", weights=str(tiny_weights), device="cpu", threads=1)


@pytest.fixture(scope="session")
def small_clip():
    """(frames (4,64,96,3) uint8, alphas (4,2,64,96) float32): two people who cross."""
    figures = pytest.importorskip("engine.data.figures", reason="engine.data.figures is not in this build")
    return figures.make_clip(frames=4, height=64, width=96, people=2, seed=0)


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


@pytest.fixture
def write_sequence(tmp_path):
    """write_sequence(frames, alphas=None, first=1, name="plate") -> (pattern, masks_dir or None).

    Frames go to tmp/<name>/<name>.####.png; masks (alpha > 0.5, 8-bit) to
    tmp/masks/<frame 4 digits>/<NN>.png with NN = ground-truth index + 1.
    """
    import cv2

    def write(frames, alphas=None, first=1, name="plate"):
        folder = tmp_path / name
        for t, rgb in enumerate(frames):
            _write_rgb(folder / f"{name}.{first + t:04d}.png", rgb)
        masks_dir = None
        if alphas is not None:
            masks_dir = tmp_path / "masks"
            for t, people in enumerate(alphas):
                frame_dir = masks_dir / f"{first + t:04d}"
                frame_dir.mkdir(parents=True, exist_ok=True)
                for k, alpha in enumerate(people):
                    cv2.imwrite(str(frame_dir / f"{k + 1:02d}.png"), ((alpha > 0.5) * 255).astype(np.uint8))
        return str(folder / f"{name}.####.png"), masks_dir

    return write


def _detector_state_dict(person_bias: float):
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    state_dict = model.state_dict()
    state_dict["roi_heads.box_predictor.cls_score.bias"][1] += person_bias
    return state_dict


@pytest.fixture(scope="session")
def random_detector_weights(tmp_path_factory) -> Path:
    """A randomly initialised Mask R-CNN: it finds no person with the default score 0.7."""
    import torch

    path = tmp_path_factory.mktemp("detector") / "maskrcnn_random.pth"
    torch.save(_detector_state_dict(0.0), path)
    return path


@pytest.fixture(scope="session")
def person_detector_weights(tmp_path_factory) -> Path:
    """A randomly initialised Mask R-CNN whose 'person' class logit is raised: it finds people."""
    import torch

    path = tmp_path_factory.mktemp("detector") / "maskrcnn_random_person.pth"
    torch.save(_detector_state_dict(20.0), path)
    return path


@pytest.fixture
def isolated_torch_hub(tmp_path, monkeypatch):
    """An empty torch hub folder, so torchvision's cache holds no detector weights."""
    import torch

    old = torch.hub.get_dir()
    hub = tmp_path / "torch_hub"
    torch.hub.set_dir(str(hub))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    yield hub
    torch.hub.set_dir(old)

