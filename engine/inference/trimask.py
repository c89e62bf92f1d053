"""Tri-masks: the guidance each person's pass of the matting net gets.

For instance i of K soft instance masks m_1..m_K (each in [0, 1]):

    T = m_i                    the target person
    R = sum_{j != i} m_j       the other people ("reference")
    B = 1 - sum_j m_j          the background

B is deliberately left unclipped, exactly as the authors' inference code builds it: where
masks overlap, sum_j m_j exceeds 1 and B goes negative. The released weights were
trained and evaluated on such inputs, so clipping would change their behaviour.
"""

from __future__ import annotations

import torch


def build_trimasks(masks: torch.Tensor) -> torch.Tensor:
    """(K, H, W) soft masks -> (K, 3, H, W) tri-masks [T, R, B] (B unclipped, see module doc)."""
    if masks.dim() != 3:
        raise ValueError(f"masks must be (K, H, W), got shape {tuple(masks.shape)}")
    total = masks.sum(dim=0, keepdim=True)
    others = total - masks
    background = (1.0 - total).expand_as(masks)
    return torch.stack([masks, others, background], dim=1)
