"""Atrous spatial pyramid pooling on the OS32 feature: dilations 1, 2, 4, 8 plus a global pool."""

from __future__ import annotations

import torch
from torch import nn

from .widths import Widths

DILATIONS = (1, 2, 4, 8)


class ASPP(nn.Module):
    def __init__(self, widths: Widths, in_ch: int):
        super().__init__()
        mid, out = widths(256), widths(512)
        self.aspp1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        for index, dilation in enumerate(DILATIONS[1:], start=2):
            setattr(self, f"aspp{index}", nn.Conv2d(in_ch, mid, 3, padding=dilation, dilation=dilation, bias=False))
        self.aspp5 = nn.Conv2d(in_ch, mid, 1, bias=False)
        for index in range(1, 6):
            setattr(self, f"aspp{index}_bn", nn.BatchNorm2d(mid))
        self.conv2 = nn.Conv2d(mid * 5, out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = out

    def _branch(self, index: int, x: torch.Tensor) -> torch.Tensor:
        return self.relu(getattr(self, f"aspp{index}_bn")(getattr(self, f"aspp{index}")(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self._branch(i, x) for i in range(1, 5)]
        pooled = self._branch(5, x.mean(dim=(2, 3), keepdim=True))
        branches.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.relu(self.bn2(self.conv2(torch.cat(branches, dim=1))))
