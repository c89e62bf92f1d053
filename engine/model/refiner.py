"""Multi-instance refinement: the K people of a frame correct each other's tri-mattes.

Separation: the decoder feature is multiplied by each tri-matte channel and a grouped
3x3 conv (groups 3) turns the three products into F_t, F_r, F_b. Interaction mixes them
across the K instances with the arithmetic the released weights were trained with:

    F_t' = F_t,i - sum_{j!=i} F_t,j + (sum_j F_r,j) / max(K-1, 1)
    F_r' = F_r,i + sum_{j!=i} F_t,j
    F_b' = mean_j F_b,j

Only sums and means over instances appear, so the result does not depend on the order
the people come in (permutation equivariance). Aggregation: concat [F_t', F_r', F_b',
normalised RGB] -> conv, LeakyReLU 0.2, conv -> 3-channel head -> (tanh + 1) / 2.
"""

from __future__ import annotations

import torch
from torch import nn

from .decoder import squash


def interact(f_t: torch.Tensor, f_r: torch.Tensor, f_b: torch.Tensor):
    """Mix the separated features of K instances (dimension 0)."""
    count = f_t.shape[0]
    sum_t = f_t.sum(dim=0, keepdim=True)
    sum_r = f_r.sum(dim=0, keepdim=True)
    others_t = sum_t - f_t
    new_t = f_t - others_t + sum_r / max(count - 1, 1)
    new_r = f_r + others_t
    new_b = f_b.mean(dim=0, keepdim=True).expand_as(f_b)
    return new_t, new_r, new_b


class MultiInstanceRefiner(nn.Module):
    def __init__(self, feature_channels: int, split_channels: int):
        super().__init__()
        self.split_channels = split_channels
        self.split = nn.Conv2d(feature_channels * 3, split_channels * 3, 3, padding=1, groups=3)
        self.merge = nn.Sequential(
            nn.Conv2d(split_channels * 3 + 3, feature_channels, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(feature_channels, feature_channels, 3, padding=1),
        )
        self.head = nn.Conv2d(feature_channels, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, trimatte: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        """image (K,3,H,W) normalised, trimatte (K,3,H,W), feature (K,C,H,W) -> (K,3,H,W)."""
        attended = torch.cat([feature * trimatte[:, i:i + 1] for i in range(3)], dim=1)
        separated = self.split(attended)
        f_t, f_r, f_b = separated.split(self.split_channels, dim=1)
        mixed = torch.cat([*interact(f_t, f_r, f_b), image], dim=1)
        return squash(self.head(self.merge(mixed)))
