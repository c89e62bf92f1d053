"""Fixtures for build_trt: a checkpoint in the authors' layout, generated from their key list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

KEY_LISTS = [Path(__file__).resolve().parents[1] / "engine" / "data" / "instmatt_state_dict_keys.txt",
             Path(__file__).resolve().parents[3] / "shared" / "reference" / "instmatt_state_dict_keys.txt"]


def _key_list() -> list[tuple[str, tuple[int, ...]]]:
    for path in KEY_LISTS:
        if path.is_file():
            entries = []
            for line in path.read_text().splitlines():
                match = re.fullmatch(r"(\S+) \(([\d, ]*)\)", line.strip())
                if match:
                    shape = tuple(int(v) for v in match.group(2).replace(" ", "").split(",") if v)
                    entries.append((match.group(1), shape))
            return entries
    pytest.skip("the authors' key list (instmatt_state_dict_keys.txt) is not in this checkout")


def authors_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with the authors' names and shapes; spectral-norm u, v are the top
    singular vectors of weight_bar (a few power iterations), so sigma is sane."""
    generator = torch.Generator().manual_seed(seed)
    entries = _key_list()
    state = {}
    for key, shape in entries:
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
    for key, _ in entries:
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
    return {key: state[key] for key, _ in entries}


@pytest.fixture(scope="session")
def authors_checkpoint(tmp_path_factory) -> Path:
    """``best_model.pth``-like: ``{"state_dict": {"module." + key: tensor}}``, width 1."""
    path = tmp_path_factory.mktemp("authors") / "best_model.pth"
    state = {"module." + key: value for key, value in authors_state_dict().items()}
    torch.save({"state_dict": state, "iter": 0}, path)
    return path


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine more threads spin against each other."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_model():
    from engine.model import load_model

    torch.manual_seed(0)
    return load_model(None, width=0.25)
