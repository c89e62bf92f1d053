"""The paper's training losses on tri-mattes (alpha_T, alpha_R, alpha_B), weight 1 each.

For a prediction ``pred`` (N,3,H,W) of the three tri-matte channels and its ground truth:

* L1            |alpha - alpha_gt| on all three channels;
* Laplacian     L1 between 5-level Laplacian pyramids (5x5 binomial Gaussian, level i
                weighted 2^i, as the FBA/InstMatt recipe does);
* composition   |alpha_T F_T + alpha_R F_R + alpha_B F_B - I|, with F_T the target's
                foreground colour, F_R the colour of the other people (their alpha-weighted
                mix) and F_B the background;
* sum-to-one    |alpha_T + alpha_R + alpha_B - 1|.

Each term is an L1 mean under an optional per-pixel weight (N,1,H,W): the authors weight
the OS4 and OS1 outputs by the uncertain band around their own (or, early in training,
the ground truth's) transition region, and OS8 by 1 everywhere; :func:`stride_loss`
combines the three output strides as (2 OS1 + OS4 + OS8) / 4.

Normalisation: a weighted term is sum(w |x - y|) / sum(w) per channel, so every term is
on the scale of a mean absolute error (the reference divides a 3-channel sum by the
1-channel weight, which multiplies some terms by 3; with weight 1 each this only changes
the relative scale, documented in docs/training.md).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

EPS = 1e-8
LAPLACIAN_LEVELS = 5
TERMS = ("l1", "lap", "comp", "sum")
STRIDE_WEIGHTS = {"alpha_os1": 2.0, "alpha_os4": 1.0, "alpha_os8": 1.0}


@functools.lru_cache(maxsize=16)
def _gaussian(device: str, dtype: torch.dtype) -> torch.Tensor:
    """The 5-tap binomial [1, 4, 6, 4, 1] / 16; applied along x and y it is the 5x5 Gaussian / 256."""
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16.0
    return taps.to(device=device, dtype=dtype)


def weighted_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |pred - target|, or its weighted mean with ``weight`` broadcast over channels."""
    diff = (pred - target).abs()
    if weight is None:
        return diff.mean()
    weight = weight.expand_as(diff)
    return (diff * weight).sum() / (weight.sum() + EPS)


def _blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable 5x5 Gaussian with reflected borders, every channel on its own."""
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    flat = F.pad(flat, (2, 2, 2, 2), mode="reflect")
    flat = F.conv2d(flat, taps.view(1, 1, 1, 5))
    flat = F.conv2d(flat, taps.view(1, 1, 5, 1))
    return flat.reshape(n, c, h, w)


def _expand(x: torch.Tensor, size: tuple[int, int], taps: torch.Tensor) -> torch.Tensor:
    """Upsample by 2 with zero insertion and a 4x Gaussian (keeps the mean), cropped to ``size``."""
    n, c, h, w = x.shape
    up = x.new_zeros((n, c, 2 * h, 2 * w))
    up[..., ::2, ::2] = x
    return _blur(up[..., : size[0], : size[1]], taps * 2.0)


def laplacian_pyramid(x: torch.Tensor, levels: int = LAPLACIAN_LEVELS) -> list[torch.Tensor]:
    """Band-pass levels of ``x`` (N,C,H,W), finest first (the low-pass residual is left out)."""
    kernel = _gaussian(str(x.device), x.dtype)
    bands = []
    current = x
    for _ in range(levels):
        if min(current.shape[-2:]) < 3:   # too small to reflect a 5x5 border: stop early
            break
        down = _blur(current, kernel)[..., ::2, ::2]
        bands.append(current - _expand(down, current.shape[-2:], kernel))
        current = down
    return bands


def laplacian_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                   levels: int = LAPLACIAN_LEVELS) -> torch.Tensor:
    """Sum over levels i of 2^i * weighted L1 between the Laplacian bands."""
    total = pred.new_zeros(())
    for i, (p, t) in enumerate(zip(laplacian_pyramid(pred, levels), laplacian_pyramid(target, levels))):
        w = None if weight is None else weight[..., :: 2 ** i, :: 2 ** i][..., : p.shape[-2], : p.shape[-1]]
        total = total + (2.0 ** i) * weighted_l1(p, t, w)
    return total


def composition_loss(pred: torch.Tensor, colours: torch.Tensor, image: torch.Tensor,
                     weight: torch.Tensor | None = None) -> torch.Tensor:
    """|sum_c alpha_c F_c - I|: pred (N,3,H,W), colours (N,3,3,H,W) = [F_T, F_R, F_B], image (N,3,H,W) in [0,1]."""
    merged = (pred[:, :, None] * colours).sum(dim=1)
    return weighted_l1(merged, image, weight)


def sum_to_one_loss(pred: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """|alpha_T + alpha_R + alpha_B - 1|."""
    total = pred.sum(dim=1, keepdim=True)
    return weighted_l1(total, torch.ones_like(total), weight)


def matting_loss(pred: torch.Tensor, target: torch.Tensor, colours: torch.Tensor, image: torch.Tensor,
                 weight: torch.Tensor | None = None, terms=TERMS) -> dict[str, torch.Tensor]:
    """The four terms (weight 1 each) for one output; returns {"l1", "lap", "comp", "sum", "total"}."""
    parts: dict[str, torch.Tensor] = {}
    if "l1" in terms:
        parts["l1"] = weighted_l1(pred, target, weight)
    if "lap" in terms:
        parts["lap"] = laplacian_loss(pred, target, weight)
    if "comp" in terms:
        parts["comp"] = composition_loss(pred, colours, image, weight)
    if "sum" in terms:
        parts["sum"] = sum_to_one_loss(pred, weight)
    parts["total"] = sum(parts.values(), pred.new_zeros(()))
    return parts


def stride_loss(outputs: dict[str, torch.Tensor], weights: dict[str, torch.Tensor | None], target: torch.Tensor,
                colours: torch.Tensor, image: torch.Tensor, terms=TERMS) -> dict[str, torch.Tensor]:
    """(2 L(OS1) + L(OS4) + L(OS8)) / 4 per term, each stride under its own weight map."""
    norm = sum(STRIDE_WEIGHTS.values())
    result: dict[str, torch.Tensor] = {}
    for key, factor in STRIDE_WEIGHTS.items():
        parts = matting_loss(outputs[key], target, colours, image, weights.get(key), terms)
        for name, value in parts.items():
            result[name] = result.get(name, 0.0) + value * (factor / norm)
    return result


# ---------------------------------------------------------------- uncertain-band weights


@functools.lru_cache(maxsize=64)
def _disc(size: int, device: str) -> torch.Tensor:
    radius = (size - 1) / 2.0
    coords = torch.arange(size, dtype=torch.float32) - radius
    disc = (coords[:, None] ** 2 + coords[None, :] ** 2) <= (radius + 0.5) ** 2
    return disc.float().to(device)[None, None]


def dilate(region: torch.Tensor, size: int) -> torch.Tensor:
    """Binary dilation of (N,1,H,W) by a disc of diameter ``size`` (odd sizes are centred)."""
    if size <= 1:
        return region > 0.5
    kernel = _disc(int(size), str(region.device))
    pad_top, pad_left = (size - 1) // 2, (size - 1) // 2
    padded = F.pad(region.float(), (pad_left, size - 1 - pad_left, pad_top, size - 1 - pad_top))
    return F.conv2d(padded, kernel) > 0.5


def uncertain(trimatte: torch.Tensor, eps: float = 1.0 / 255.0) -> torch.Tensor:
    """(N,3,H,W) -> (N,1,H,W) bool: any channel strictly inside (eps, 1 - eps)."""
    return ((trimatte > eps) & (trimatte < 1.0 - eps)).any(dim=1, keepdim=True)


def band_weight(trimatte: torch.Tensor, sizes) -> torch.Tensor:
    """Uncertain region of each sample dilated by its own disc size -> (N,1,H,W) float weight."""
    region = uncertain(trimatte.detach())
    out = torch.empty_like(region, dtype=trimatte.dtype)
    for i, size in enumerate(sizes):
        out[i] = dilate(region[i:i + 1], int(size))[0].to(trimatte.dtype)
    return out
