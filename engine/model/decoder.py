"""Decoder with three tri-matte heads at output strides 8, 4 and 1 (the authors' ResShortCut_D_Dec).

BasicBlocks [2, 3, 3, 2]; the first block of each stage upsamples x2 with a transposed
conv (its shortcut: nearest upsample + 1x1 conv). LeakyReLU 0.2 throughout. The encoder's
skip for each scale is added after each stage. Every head ends in (tanh(x) + 1) / 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .spectral_norm import sn_conv, sn_up_conv
from .widths import Widths

STAGE_BLOCKS = (2, 3, 3, 2)
STAGE_CHANNELS = (256, 128, 64, 32)


def squash(x: torch.Tensor) -> torch.Tensor:
    return (torch.tanh(x) + 1.0) / 2.0


class UpBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, upsample: bool = False):
        super().__init__()
        self.conv1 = sn_up_conv(in_ch) if upsample else sn_conv(in_ch, in_ch, 3)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv2 = sn_conv(in_ch, out_ch, 3)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.activation = nn.LeakyReLU(0.2, inplace=True)
        self.upsample = None
        if upsample:
            self.upsample = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                          sn_conv(in_ch, out_ch, 1), nn.BatchNorm2d(out_ch))
        elif in_ch != out_ch:
            self.upsample = nn.Sequential(sn_conv(in_ch, out_ch, 1), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.activation(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.upsample is None else self.upsample(x)
        return self.activation(out + identity)


def _head(in_ch: int, hidden: int, activation: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden),
                         activation, nn.Conv2d(hidden, 3, 3, padding=1))


class TriMatteDecoder(nn.Module):
    def __init__(self, widths: Widths, in_ch: int):
        super().__init__()
        c = widths
        self.leaky_relu = nn.LeakyReLU(0.2, inplace=True)
        for index, (blocks, channels) in enumerate(zip(STAGE_BLOCKS, STAGE_CHANNELS), start=1):
            out_ch = c(channels)
            stage = [UpBlock(in_ch, out_ch, upsample=True)] + [UpBlock(out_ch, out_ch) for _ in range(blocks - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*stage))
            in_ch = out_ch
        self.conv1 = sn_up_conv(in_ch)
        self.bn1 = nn.BatchNorm2d(in_ch)
        hidden = c(32)
        self.refine_OS1 = _head(in_ch, hidden, self.leaky_relu)
        self.refine_OS4 = _head(c(64), hidden, self.leaky_relu)
        self.refine_OS8 = _head(c(128), hidden, self.leaky_relu)
        self.feature_channels = in_ch

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        os1_skip, os2_skip, os4_skip, os8_skip, os16_skip = skips
        x = self.layer1(x) + os16_skip
        x = self.layer2(x) + os8_skip
        logits_os8 = self.refine_OS8(x)
        x = self.layer3(x) + os4_skip
        logits_os4 = self.refine_OS4(x)
        x = self.layer4(x) + os2_skip
        feature = self.leaky_relu(self.bn1(self.conv1(x))) + os1_skip
        logits_os1 = self.refine_OS1(feature)
        # upsample the logits, then squash: the reference's order
        logits_os4 = F.interpolate(logits_os4, scale_factor=4.0, mode="bilinear", align_corners=False)
        logits_os8 = F.interpolate(logits_os8, scale_factor=8.0, mode="bilinear", align_corners=False)
        return {"alpha_os1": squash(logits_os1), "alpha_os4": squash(logits_os4),
                "alpha_os8": squash(logits_os8), "feature": feature}
