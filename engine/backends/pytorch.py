"""Eager PyTorch: the reference backend, always available (CPU or CUDA)."""

from __future__ import annotations

import contextlib

import torch

from .base import Backend


class PyTorchBackend(Backend):
    name = "pytorch"

    def __init__(self, model, reason: str = "", bf16: bool = False, weights_path: str | None = None):
        device = next(model.parameters()).device
        super().__init__(reason, device, getattr(model, "width", 1.0),
                         weights_path or getattr(model, "weights_path", None))
        self.model = model
        # bf16 autocast: optional, measured in scripts/bench_backends.py, never assumed faster
        self.bf16 = bool(bf16)

    def _autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    @torch.inference_mode()
    def _matting_batch(self, image: torch.Tensor, trimask: torch.Tensor) -> dict[str, torch.Tensor]:
        with self._autocast():
            outputs = self.model.matting(image, trimask)
        return {key: value.float() for key, value in outputs.items()}

    @torch.inference_mode()
    def refiner(self, image: torch.Tensor, trimatte: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        # the refiner is tiny and sensitive (it subtracts features across people): fp32 always
        return self.model.refiner(image.float(), trimatte.float(), feature.float())

    def parameters(self):
        return self.model.parameters()

    def describe(self) -> dict:
        return {**super().describe(), "bf16": self.bf16}
