"""The InstMatt generator: encoder + ASPP + tri-matte decoder + multi-instance refiner.

Module names follow the authors' released checkpoint so that it loads with strict keys.
"""

from __future__ import annotations

import torch
from torch import nn

from .aspp import ASPP
from .decoder import TriMatteDecoder, UpBlock
from .encoder import BasicBlock, ShortcutEncoder
from .refiner import MultiInstanceRefiner
from .spectral_norm import SpectralNorm
from .widths import Widths


class InstMatt(nn.Module):
    def __init__(self, width: float = 1.0, initialise: bool = True):
        super().__init__()
        self.width = float(width)
        widths = Widths(self.width)
        self.encoder = ShortcutEncoder(widths)
        self.aspp = ASPP(widths, self.encoder.out_channels)
        self.decoder = TriMatteDecoder(widths, self.aspp.out_channels)
        self.refiner = MultiInstanceRefiner(self.decoder.feature_channels, widths(16))
        if initialise:  # skipped when a checkpoint overwrites every tensor anyway
            self._initialise()

    @torch.no_grad()
    def _initialise(self) -> None:
        """The authors' initialisation: Xavier convs, unit BN, zeroed last BN of each residual
        branch (blocks start as identities); then settle the spectral-norm vectors."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(module.weight_bar if hasattr(module, "weight_bar") else module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, (BasicBlock, UpBlock)):
                nn.init.zeros_(module.bn2.weight)
        for module in self.modules():
            if isinstance(module, SpectralNorm):
                module.power_iterate(20)

    def forward(self, image: torch.Tensor, trimask: torch.Tensor) -> dict[str, torch.Tensor]:
        """One batched pass of the matting net: image, trimask (N,3,H,W), H and W multiples of 32."""
        bottleneck, skips = self.encoder(torch.cat([image, trimask], dim=1))
        return self.decoder(self.aspp(bottleneck), skips)

    def matting(self, image: torch.Tensor, trimask: torch.Tensor) -> dict[str, torch.Tensor]:
        """``forward`` with its inputs checked -> dict of (K,.,H,W) (backends run it in chunks)."""
        if image.shape[0] != trimask.shape[0]:
            raise ValueError(f"image batch {image.shape[0]} != trimask batch {trimask.shape[0]}")
        if image.shape[-1] % 32 or image.shape[-2] % 32:
            raise ValueError(f"height and width must be multiples of 32, got {tuple(image.shape[-2:])}")
        return self.forward(image, trimask)
