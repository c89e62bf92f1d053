"""Guidance masks simulated from ground-truth alphas, so the net learns to repair bad ones.

Real guidance comes from an instance segmenter: binary, a little too fat or too thin,
with holes, missing hair, and sometimes a piece of one person given to another. From the
per-person ground truth we imitate that (the authors' recipe, re-implemented):

* binarise at a random threshold;
* a random erosion, dilation, opening or closing with an elliptical kernel;
* holes (random blobs removed) and spurs (blobs added next to the person);
* an "internal cut": a patch of the mask copied over from elsewhere in the same mask;
* an "external swap": the same rectangle exchanged between two people's masks;
* occasionally a soft (blurred) mask, as some segmenters give.

``strength`` scales the kernel and blob sizes; 0 gives the thresholded ground truth.
"""

from __future__ import annotations

import cv2
import numpy as np


def _ellipse(size: int) -> np.ndarray:
    size = max(int(size), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _morph(rng: np.random.Generator, mask: np.ndarray, max_kernel: int) -> np.ndarray:
    op = int(rng.integers(5))
    if op == 0 or max_kernel < 2:
        return mask
    k1 = _ellipse(rng.integers(2, max_kernel + 1))
    k2 = _ellipse(rng.integers(2, max_kernel + 1))
    if op == 1:
        return cv2.erode(mask, k1)
    if op == 2:
        return cv2.dilate(mask, k1)
    if op == 3:
        return cv2.dilate(cv2.erode(mask, k1), k2)
    return cv2.erode(cv2.dilate(mask, k1), k2)


def _blobs(rng: np.random.Generator, mask: np.ndarray, value: int, count: int, radius: float) -> None:
    ys, xs = np.nonzero(mask) if value == 0 else np.nonzero(cv2.dilate(mask, _ellipse(2 * radius + 1)) - mask)
    if len(xs) == 0:
        return
    for _ in range(count):
        i = int(rng.integers(len(xs)))
        axes = (max(int(rng.uniform(0.3, 1.0) * radius), 1), max(int(rng.uniform(0.3, 1.0) * radius), 1))
        cv2.ellipse(mask, (int(xs[i]), int(ys[i])), axes, float(rng.uniform(0, 180)), 0, 360, value, -1)


def _patch(rng: np.random.Generator, height: int, width: int):
    ph = int(rng.integers(max(height // 8, 1), max(height // 4, 1) + 1))
    pw = int(rng.integers(max(width // 8, 1), max(width // 4, 1) + 1))
    y, x = int(rng.integers(0, height - ph + 1)), int(rng.integers(0, width - pw + 1))
    return slice(y, y + ph), slice(x, x + pw)


def simulate_mask(rng: np.random.Generator, alpha: np.ndarray, strength: float = 1.0,
                  hole_prob: float = 0.3, cut_prob: float = 0.15, soft_prob: float = 0.1) -> np.ndarray:
    """One person's ground-truth alpha (H,W) -> a plausible segmenter mask (H,W) float32 in [0,1]."""
    height, width = alpha.shape
    side = min(height, width)
    threshold = rng.uniform(0.05, 0.95) if strength > 0 else 0.5
    mask = (alpha >= threshold).astype(np.uint8)
    if not mask.any():
        mask = (alpha >= max(float(alpha.max()) * 0.5, 1e-3)).astype(np.uint8)
    if strength <= 0:
        return mask.astype(np.float32)
    original = mask.copy()
    mask = _morph(rng, mask, int(max(2, 0.05 * side * strength)))
    radius = max(1.0, 0.04 * side * strength)
    if rng.random() < hole_prob:
        _blobs(rng, mask, 0, int(rng.integers(1, 4)), radius)
    if rng.random() < hole_prob:
        _blobs(rng, mask, 1, int(rng.integers(1, 3)), radius)
    if rng.random() < cut_prob:
        target, source = _patch(rng, height, width), _patch(rng, height, width)
        h = min(target[0].stop - target[0].start, source[0].stop - source[0].start)
        w = min(target[1].stop - target[1].start, source[1].stop - source[1].start)
        mask[target[0].start:target[0].start + h, target[1].start:target[1].start + w] = \
            mask[source[0].start:source[0].start + h, source[1].start:source[1].start + w].copy()
    if not mask.any():   # a segmenter that finds the person gives at least something
        mask = original
    out = mask.astype(np.float32)
    if rng.random() < soft_prob:
        out = np.clip(cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 2.0)), 0.0, 1.0)
    return out


def swap_patches(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """Exchange one random rectangle between two people's masks (in place, returned)."""
    if masks.shape[0] < 2:
        return masks
    i, j = rng.choice(masks.shape[0], size=2, replace=False)
    rows, cols = _patch(rng, *masks.shape[1:])
    patch = masks[i, rows, cols].copy()
    masks[i, rows, cols] = masks[j, rows, cols]
    masks[j, rows, cols] = patch
    return masks


def simulate_guidance(rng: np.random.Generator, alphas: np.ndarray, strength: float = 1.0,
                      swap_prob: float = 0.3) -> np.ndarray:
    """Ground-truth alphas (K,H,W) -> simulated instance masks (K,H,W) float32 in [0,1]."""
    alphas = np.asarray(alphas, np.float32)
    masks = np.stack([simulate_mask(rng, a, strength) for a in alphas]) if len(alphas) else alphas.copy()
    if strength > 0 and rng.random() < swap_prob:
        swap_patches(rng, masks)
    return masks
