"""Is a downloaded file the model it claims to be? sha256 and strict key/shape loading.

A hash proves the bytes are the ones somebody vouched for; the strict load proves they
are weights this engine can run (a mirror's models.json could vouch for the wrong file).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine.errors import InputFileError
from .catalog import ModelSpec

CHUNK = 1 << 20


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_hash(spec: ModelSpec, path: Path, digest: str, expected: str | None,
               authority: str = "the mirror's models.json") -> None:
    """``expected`` (a mirror's, or the one recorded at the first fetch) wins; else the
    prefix in the file's name."""
    if expected:
        if digest != expected.lower():
            raise InputFileError(path, f"sha256 mismatch for '{spec.name}': got {digest}, "
                                       f"{authority} says {expected.lower()}")
        return
    prefix = spec.hash_prefix
    if prefix and not digest.startswith(prefix):
        raise InputFileError(path, f"sha256 mismatch for '{spec.name}': got {digest[:16]}..., the file name "
                                   f"promises a hash starting {prefix}")


def read_maskrcnn_state_dict(path: str | Path) -> dict:
    """A torchvision Mask R-CNN state dict (also inside ``state_dict``/``model``, ``module.`` stripped)."""
    import torch

    path = Path(path)
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputFileError(path, f"not a readable PyTorch weights file ({type(exc).__name__})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(payload, dict) and isinstance(payload.get(wrapper), dict):
            payload = payload[wrapper]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise InputFileError(path, "not a Mask R-CNN state_dict (expected a dict of tensors)")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in payload.items()}


def check_maskrcnn(path: Path) -> None:
    """Every key and shape of torchvision's ``maskrcnn_resnet50_fpn`` (built on the meta
    device: no memory, no random init, the same strictness as ``load_state_dict``)."""
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    state_dict = read_maskrcnn_state_dict(path)
    with torch.device("meta"):
        model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    from engine.model.checkpoint import shape_problems  # torch: only when a file is checked

    problems = shape_problems({k: v.shape for k, v in model.state_dict().items()}, state_dict)
    if problems:
        raise InputFileError(path, "does not fit torchvision's maskrcnn_resnet50_fpn: " + "; ".join(problems))


def check_instmatt(path: Path, width: float) -> None:
    """Strict loading through the engine's own checkpoint reader (the authors' format)."""
    from engine.model import build_model

    model = build_model(path)
    if abs(model.width - width) > 1e-6:
        raise InputFileError(path, f"an InstMatt checkpoint of width {model.width:g}, the registry expects width {width:g}")


def check_structure(spec: ModelSpec, path: Path) -> None:
    if spec.kind == "instmatt":
        check_instmatt(path, spec.width)
    elif spec.kind == "maskrcnn":
        check_maskrcnn(path)
    else:
        raise ValueError(f"catalog entry {spec.name!r} has an unknown kind {spec.kind!r}")
