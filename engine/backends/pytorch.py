"""Eager PyTorch: the reference backend, always available (CPU or CUDA).

``precision``: ``"fp32"`` (the reference), or reduced: ``"bf16"`` on the CPU, ``"fp16"`` on
CUDA, through a private copy of the network (:mod:`reduced`: BatchNorm folded, heads,
reductions and tanh in fp32). ``bf16=True`` asks for the device's reduced precision.
"""

from __future__ import annotations

import torch

from . import reduced
from .base import Backend

PRECISIONS = ("fp32", "bf16", "fp16")


class PyTorchBackend(Backend):
    name = "pytorch"

    def __init__(self, model, reason: str = "", bf16: bool = False, weights_path: str | None = None):
        device = next(model.parameters()).device
        super().__init__(reason, device, getattr(model, "width", 1.0),
                         weights_path or getattr(model, "weights_path", None))
        self.model = model
        self._reduced = None  # the private reduced-precision copy, made on first use
        self.bf16 = bool(bf16)

    @property
    def precision(self) -> str:
        return "fp32" if not self.bf16 else "fp16" if self.device.type == "cuda" else "bf16"

    def _reduced_model(self):
        if self._reduced is None:
            self._reduced = reduced.reduced_copy(self.model, self.device)
        return self._reduced

    @torch.inference_mode()
    def _matting_batch(self, image: torch.Tensor, trimask: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.bf16:
            return reduced.matting(self._reduced_model(), image, trimask, self.device)
        return self.model.matting(image, trimask)

    @torch.inference_mode()
    def refiner(self, image: torch.Tensor, trimatte: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        if self.bf16:
            return reduced.refiner(self._reduced_model(), image, trimatte, feature, self.device)
        return self.model.refiner(image.float(), trimatte.float(), feature.float())

    def parameters(self):
        return self.model.parameters()

    def describe(self) -> dict:
        return {**super().describe(), "bf16": self.bf16, "precision": self.precision}
