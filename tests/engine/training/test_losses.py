"""Losses: zero at the ground truth, positive away from it, gradients flow."""

from __future__ import annotations

import pytest
import torch

from engine.training.losses import (
    band_weight,
    composition_loss,
    dilate,
    laplacian_loss,
    laplacian_pyramid,
    matting_loss,
    stride_loss,
    sum_to_one_loss,
    weighted_l1,
)


def _scene(n=2, h=40, w=48, seed=0):
    """A consistent tri-matte ground truth with colours that composite to the image."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.rand(n, 3, h, w, generator=g)
    weights = raw / raw.sum(dim=1, keepdim=True)           # alpha_T + alpha_R + alpha_B = 1
    colours = torch.rand(n, 3, 3, h, w, generator=g)       # F_T, F_R, F_B
    image = (weights[:, :, None] * colours).sum(dim=1)
    return weights, colours, image


def _away(target, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (target + 0.2 * torch.randn(target.shape, generator=g)).clamp(0, 1).requires_grad_(True)


LOSSES = {
    "l1": lambda p, t, c, i, w: weighted_l1(p, t, w),
    "lap": lambda p, t, c, i, w: laplacian_loss(p, t, w),
    "comp": lambda p, t, c, i, w: composition_loss(p, c, i, w),
    "sum": lambda p, t, c, i, w: sum_to_one_loss(p, w),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("weighted", [False, True])
def test_zero_at_ground_truth_positive_away_gradients_flow(name, weighted):
    target, colours, image = _scene()
    weight = (torch.rand(target.shape[0], 1, *target.shape[-2:]) > 0.3).float() if weighted else None
    loss = LOSSES[name]
    assert loss(target, target, colours, image, weight).item() == pytest.approx(0.0, abs=1e-6)
    pred = _away(target)
    value = loss(pred, target, colours, image, weight)
    assert value.item() > 1e-3
    value.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_matting_and_stride_loss_totals():
    target, colours, image = _scene()
    outputs = {key: target.clone() for key in ("alpha_os1", "alpha_os4", "alpha_os8")}
    weights = {"alpha_os8": None, "alpha_os4": band_weight(target, [3, 3]), "alpha_os1": band_weight(target, [1, 5])}
    zero = stride_loss(outputs, weights, target, colours, image)
    assert set(zero) == {"l1", "lap", "comp", "sum", "total"}
    assert zero["total"].item() == pytest.approx(0.0, abs=1e-6)
    pred = _away(target)
    outputs = {key: pred for key in outputs}
    parts = stride_loss(outputs, weights, target, colours, image)
    assert parts["total"].item() == pytest.approx(sum(parts[k].item() for k in ("l1", "lap", "comp", "sum")), rel=1e-5)
    parts["total"].backward()
    assert pred.grad.abs().sum() > 0
    single = matting_loss(pred.detach(), target, colours, image)
    assert single["total"].item() > 0


def test_laplacian_pyramid_levels_and_constants():
    x = torch.rand(1, 3, 64, 64)
    bands = laplacian_pyramid(x)
    assert [b.shape[-1] for b in bands] == [64, 32, 16, 8, 4]
    flat = laplacian_pyramid(torch.full((1, 1, 50, 30), 0.3))
    assert max(b.abs().max().item() for b in flat) < 1e-6   # band-pass: constants vanish


def test_dilate_and_band_weight():
    region = torch.zeros(1, 1, 21, 21)
    region[0, 0, 10, 10] = 1
    grown = dilate(region, 7)
    assert grown.sum().item() > 20 and grown[0, 0, 10, 13] and not grown[0, 0, 10, 14]
    assert dilate(region, 1).sum().item() == 1
    trimatte = torch.zeros(2, 3, 21, 21)
    trimatte[:, 2] = 1.0
    trimatte[0, 0, 5, 5] = 0.5
    w = band_weight(trimatte, [1, 9])
    assert w.shape == (2, 1, 21, 21)
    assert w[0].sum().item() == 1 and w[1].sum().item() == 0
