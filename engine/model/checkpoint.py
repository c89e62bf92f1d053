"""Reading and writing weights: the authors' ``best_model.pth`` and the project's own files.

Accepted inputs:
- the authors' format: a torch pickle ``{"state_dict": {...}}``, keys possibly prefixed
  ``module.`` (DataParallel); width 1;
- the project's ``.pth``: ``{"format": "blender-instmatt", "width": w, "state_dict": ...}``
  (training checkpoints add optimiser state, ignored here);
- the project's ``.safetensors``: the same keys, metadata ``format`` and ``width``.

Keys are always the authors' names with spectral norm unfolded, so one file format serves
training, resuming and inference. The width is read from the file, or inferred from the
stem conv's shape when the file does not say.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.errors import InputFileError
from engine.io.atomic import atomic_path

from .instmatt import InstMatt
from .spectral_norm import fold_spectral_norm

FORMAT = "blender-instmatt"
STEM_KEY = "encoder.conv1.module.weight_bar"


def _strip_prefix(state_dict: dict) -> dict:
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module."):]: value for key, value in state_dict.items()}
    return dict(state_dict)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], float]:
    """Return (state_dict with the authors' key names, width)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "weights file not found")
    if path.stat().st_size == 0:
        raise InputFileError(path, "weights file is empty (0 bytes)")
    width = None
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                state_dict = {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as exc:  # safetensors raises several unrelated types
            raise InputFileError(path, f"not a readable safetensors file ({exc})") from None
        if "width" in metadata:
            width = float(metadata["width"])
    else:
        try:
            payload = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputFileError(path, f"not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
            raise InputFileError(path, "not an InstMatt checkpoint: expected a dict with a 'state_dict' entry")
        state_dict = payload["state_dict"]
        if payload.get("format") == FORMAT and "width" in payload:
            width = float(payload["width"])
    state_dict = {key: value for key, value in _strip_prefix(state_dict).items()}
    if width is None:
        stem = state_dict.get(STEM_KEY)
        if stem is None:
            raise InputFileError(path, f"not an InstMatt checkpoint: no '{STEM_KEY}' key")
        width = stem.shape[0] / 32.0
    return state_dict, width


def shape_problems(expected: dict, state_dict: dict) -> list[str]:
    """What keeps ``state_dict`` from loading strictly into a model with ``expected`` key -> shape."""
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    wrong = [f"{key} {tuple(state_dict[key].shape)} != {tuple(shape)}"
             for key, shape in expected.items() if key in state_dict and tuple(state_dict[key].shape) != tuple(shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (first: {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} keys with the wrong shape (first: {'; '.join(wrong[:3])})")
    return problems


def _check_keys(path, model: InstMatt, state_dict: dict) -> None:
    problems = shape_problems({key: value.shape for key, value in model.state_dict().items()}, state_dict)
    if problems:
        raise InputFileError(path, "weights do not fit the InstMatt network: " + "; ".join(problems))


def build_model(path: str | Path | None = None, width: float = 1.0) -> InstMatt:
    """The trainable network (spectral norm unfolded), random or loaded strictly from ``path``."""
    if path is None:
        return InstMatt(width)
    state_dict, width = read_checkpoint(path)
    model = InstMatt(width, initialise=False)
    _check_keys(path, model, state_dict)
    model.load_state_dict({key: value.float() if value.is_floating_point() else value
                           for key, value in state_dict.items()}, strict=True)
    return model


def load_model(path: str | Path | None = None, device: str = "cpu", width: float = 1.0) -> InstMatt:
    """The network ready for inference: eval mode, spectral norm folded into plain convs.

    ``path=None`` gives random weights (of ``width``); otherwise any accepted file.
    """
    model = build_model(path, width)
    model.eval()
    fold_spectral_norm(model)
    model.weights_path = None if path is None else str(path)
    return model.to(device)


def save_checkpoint(model: InstMatt, path: str | Path, half: bool = False, extra: dict | None = None) -> Path:
    """Write the (unfolded) weights atomically: ``.safetensors`` or the project's ``.pth``."""
    state_dict = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    if half:
        state_dict = {key: value.half() if value.is_floating_point() else value for key, value in state_dict.items()}
    with atomic_path(path) as temporary:
        if Path(path).suffix == ".safetensors":
            from safetensors.torch import save_file
            metadata = {"format": FORMAT, "width": repr(model.width)}
            if extra:
                metadata["extra"] = json.dumps(extra)
            save_file(state_dict, str(temporary), metadata=metadata)
        else:
            torch.save({"format": FORMAT, "width": model.width, "state_dict": state_dict, **(extra or {})},
                       str(temporary))
    return Path(path)
