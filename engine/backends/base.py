"""The one interface every backend offers to :func:`engine.inference.pipeline.matte`.

A backend is anything with

- ``name``: ``"pytorch"``, ``"onnxruntime"`` or ``"tensorrt"``;
- ``reason``: one sentence saying why it was chosen (logged once, shown to users);
- ``device``: the ``torch.device`` the pipeline must put its tensors on;
- ``matting(image, trimask) -> {"alpha_os1", "alpha_os4", "alpha_os8", "feature"}``,
  image and trimask (K,3,H,W) float32, H and W multiples of 32;
- ``refiner(image, trimatte, feature) -> (K,3,H,W)``, any H and W.

Inputs and outputs are torch tensors on ``device`` whatever runs underneath, so the
pipeline is the same for every backend.
"""

from __future__ import annotations

import torch

from engine.errors import UserError

from .chunked import run_in_chunks

MATTING_INPUTS = ("image", "trimask")
MATTING_OUTPUTS = ("alpha_os1", "alpha_os4", "alpha_os8", "feature")
# People per network pass: one on the CPU (measured faster there, docs/performance.md), a batch on a GPU.
CHUNK = {"cpu": 1, "cuda": 4}


class BackendUnavailable(UserError):
    """A backend cannot run here; the message says why (used as the fallback reason)."""


class Backend:
    name = "base"
    weights_toy = False  # load_backend sets it: the shipped tiny checkpoint, not the authors' network

    def __init__(self, reason: str = "", device: torch.device | str = "cpu", width: float = 1.0,
                 weights_path: str | None = None):
        self.reason = reason
        self.device = torch.device(device)
        self.width = float(width)
        self.weights_path = None if weights_path is None else str(weights_path)
        self.chunk = CHUNK.get(self.device.type, 4)

    def matting(self, image: torch.Tensor, trimask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The matting net over K people (N,3,H,W) in chunks of ``self.chunk`` -> dict of (K,.,H,W)."""
        check_matting_inputs(image, trimask)
        return run_in_chunks(self._matting_batch, self.chunk, image, trimask)

    def _matting_batch(self, image: torch.Tensor, trimask: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def refiner(self, image: torch.Tensor, trimatte: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Short name for logs and the protocol's ``hello``, e.g. ``onnxruntime-cpu``."""
        return f"{self.name}-{self.device.type}"

    def describe(self) -> dict:
        """A JSON-able summary (for logs, manifests and the server's ``hello``)."""
        return {"backend": self.name, "label": self.label, "reason": self.reason, "device": str(self.device),
                "width": self.width, "weights": self.weights_path}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.device}: {self.reason}>"


def check_matting_inputs(image: torch.Tensor, trimask: torch.Tensor) -> None:
    if image.shape != trimask.shape or image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image and trimask must both be (N,3,H,W), got {tuple(image.shape)} and {tuple(trimask.shape)}")
    if image.shape[-1] % 32 or image.shape[-2] % 32:
        raise ValueError(f"height and width must be multiples of 32, got {tuple(image.shape[-2:])}")
