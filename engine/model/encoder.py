"""ResNet-34-style "ResNet-D" encoder with five shortcut branches (the authors' ResShortCut_D).

Stem: three 3x3 convs 6->32 (stride 2) ->32 ->64 (stride 2); BasicBlocks [3, 4, 4, 2]
with widths 64/128/256/512 down to output stride 32; downsampling shortcuts are
avg-pool + 1x1 conv ("ResNet-D"). Activations are ReLU. Shortcut branches give skips at
output strides 1, 2, 4, 8, 16 for the decoder.
"""

from __future__ import annotations

import torch
from torch import nn

from .spectral_norm import sn_conv
from .widths import Widths

STAGE_BLOCKS = (3, 4, 4, 2)
STAGE_CHANNELS = (64, 128, 256, 512)
STAGE_NAMES = ("layer1", "layer2", "layer3", "layer_bottleneck")


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = sn_conv(in_ch, out_ch, 3, stride=stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = sn_conv(out_ch, out_ch, 3)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.activation = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1:
            self.downsample = nn.Sequential(nn.AvgPool2d(2, stride), sn_conv(in_ch, out_ch, 1),
                                            nn.BatchNorm2d(out_ch))
        elif in_ch != out_ch:
            self.downsample = nn.Sequential(sn_conv(in_ch, out_ch, 1), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.activation(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.activation(out + identity)


def _shortcut(in_ch: int, out_ch: int) -> nn.Sequential:
    # the reference applies ReLU *before* BatchNorm here; indices matter for the keys
    return nn.Sequential(sn_conv(in_ch, out_ch, 3), nn.ReLU(inplace=True), nn.BatchNorm2d(out_ch),
                         sn_conv(out_ch, out_ch, 3), nn.ReLU(inplace=True), nn.BatchNorm2d(out_ch))


class ShortcutEncoder(nn.Module):
    def __init__(self, widths: Widths, in_channels: int = 6):
        super().__init__()
        c = widths
        stem, mid = c(32), c(32)
        self.conv1 = sn_conv(in_channels, stem, 3, stride=2)
        self.conv2 = sn_conv(stem, mid, 3)
        self.conv3 = sn_conv(mid, c(64), 3, stride=2)
        self.bn1 = nn.BatchNorm2d(stem)
        self.bn2 = nn.BatchNorm2d(mid)
        self.bn3 = nn.BatchNorm2d(c(64))
        self.activation = nn.ReLU(inplace=True)

        in_ch = c(64)
        for name, blocks, channels, stride in zip(STAGE_NAMES, STAGE_BLOCKS, STAGE_CHANNELS, (1, 2, 2, 2)):
            out_ch = c(channels)
            stage = [BasicBlock(in_ch, out_ch, stride)] + [BasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
            setattr(self, name, nn.Sequential(*stage))
            in_ch = out_ch

        shortcut_in = (in_channels, mid, c(64), c(128), c(256))
        shortcut_out = (c(32), mid, c(64), c(128), c(256))
        self.shortcut = nn.ModuleList(_shortcut(i, o) for i, o in zip(shortcut_in, shortcut_out))
        self.out_channels = in_ch

    def forward(self, x: torch.Tensor):
        out = self.activation(self.bn1(self.conv1(x)))
        os2 = self.activation(self.bn2(self.conv2(out)))
        out = self.activation(self.bn3(self.conv3(os2)))
        os4 = self.layer1(out)
        os8 = self.layer2(os4)
        os16 = self.layer3(os8)
        bottleneck = self.layer_bottleneck(os16)
        skips = [branch(feature) for branch, feature in zip(self.shortcut, (x, os2, os4, os8, os16))]
        return bottleneck, skips
