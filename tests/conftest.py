"""Fixtures shared by the engine's and build_trt's tests.

torch is imported inside the functions: the add-on's tests run in Blender's Python,
which has no torch, and pytest loads this file for them too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# The suite stays offline and never sees the user's model cache: the engine (and every
# engine process a test starts, which inherits this) finds no cached model and may not
# download one. The registry's own tests lift the offline switch for their loopback server.
os.environ["INSTMATT_OFFLINE"] = "1"
os.environ["INSTMATT_CACHE"] = tempfile.mkdtemp(prefix="instmatt-test-models-")
os.environ.pop("INSTMATT_MODELS_MIRROR", None)

# The authors' checkpoint keys and shapes (a copy of ../shared/reference/), kept in the
# repo so the checkpoint tests run on any machine.
KEY_LIST = Path(__file__).resolve().parent / "data" / "instmatt_state_dict_keys.txt"


def reference_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in KEY_LIST.read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split(" ", 1)
            shapes[key] = tuple(int(n) for n in shape.strip("()").split(",") if n.strip())
    return shapes


def authors_state_dict(seed: int = 0) -> dict:
    """Random tensors with the authors' names and shapes. Spectral-norm u and v are the top
    singular vectors of weight_bar (a few power iterations), so sigma is sane."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    shapes = reference_shapes()
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.int64)
        elif key.endswith(("weight_u", "weight_v")):
            continue  # from weight_bar below
        elif key.endswith("running_var") or (key.endswith(".weight") and len(shape) == 1):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif key.endswith(("running_mean", "bias")):
            state[key] = 0.05 * torch.randn(shape, generator=generator)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else 1)
            state[key] = torch.randn(shape, generator=generator) / fan_in ** 0.5
    for key in shapes:
        if key.endswith("weight_bar"):
            prefix = key[: -len("weight_bar")]
            matrix = state[key].reshape(state[key].shape[0], -1)
            v = torch.randn(matrix.shape[1], generator=generator)
            for _ in range(15):
                u = matrix.mv(v / v.norm())
                u = u / u.norm()
                v = matrix.t().mv(u)
            state[prefix + "weight_u"] = u
            state[prefix + "weight_v"] = v / v.norm()
    return {key: state[key] for key in shapes}


def random_scene(height: int = 101, width: int = 157, people: int = 2, seed: int = 0):
    """(image (H,W,3) uint8 noise, masks (K,H,W)): K rectangles at random places."""
    import numpy as np

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    masks = np.zeros((people, height, width), np.float32)
    for k in range(people):
        y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
        masks[k, y:y + height // 2, x:x + width // 3] = 1.0
    return image, masks


@pytest.fixture(scope="session")
def make_scene():
    """``make_scene(height, width, people, seed)`` -> (image, masks); see :func:`random_scene`."""
    return random_scene


@pytest.fixture(scope="session")
def reference_keys() -> dict[str, tuple[int, ...]]:
    return reference_shapes()


@pytest.fixture(scope="session")
def make_authors_state():
    """``make_authors_state(seed=0)`` -> a fresh state_dict in the authors' layout."""
    return authors_state_dict


@pytest.fixture(scope="session")
def authors_checkpoint(tmp_path_factory) -> Path:
    """``best_model.pth`` as the authors' DataParallel training saves it: ``module.`` prefixes."""
    import torch

    path = tmp_path_factory.mktemp("authors") / "best_model.pth"
    state = {"module." + key: value for key, value in authors_state_dict().items()}
    torch.save({"state_dict": state, "iter": 50000}, path)
    return path


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine more threads spin against each other."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def random_tiny_model():
    """A random width-0.25 network, folded for inference (fast, deterministic)."""
    import torch

    from engine.model import load_model

    torch.manual_seed(0)
    return load_model(None, width=0.25)
