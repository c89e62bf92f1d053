"""Foreground colour estimation for layers that come as (photo, alpha).

A photo's pixels at the soft edge mix the person with the original background; pasting
them onto a new background drags the old one along (a halo). Before compositing we
estimate the person's own colour F with a multi-level "blur fusion" (the idea of Forte
& Pitie 2020, written from scratch here with box filters): at each level, from coarse to
fine, the alpha-weighted local means of the current foreground and background estimates
are corrected by the residual of the compositing equation I = a F + (1 - a) B,

    F_bar = blur(a F) / blur(a),  B_bar = blur((1 - a) B) / blur(1 - a)
    r     = I - a F_bar - (1 - a) B_bar
    F     = F_bar + a r,  B = B_bar + (1 - a) r

so F agrees with the photo where the person is opaque and is extrapolated from nearby
opaque pixels where it is not. Pure numpy + OpenCV, no numba.
"""

from __future__ import annotations

import cv2
import numpy as np

EPS = 1e-5


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    size = 2 * radius + 1
    return cv2.blur(x, (size, size), borderType=cv2.BORDER_REFLECT)


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, radii: tuple[int, ...] | None = None) -> np.ndarray:
    """image (H,W,3) uint8 or float in [0,1], alpha (H,W) in [0,1] -> foreground (H,W,3) float32 in [0,1].

    ``radii`` are the box-filter radii from coarse to fine; the default scales the coarse
    levels with the image size and ends with two fine passes.
    """
    img = np.asarray(image)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    a = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0)
    if a.dtype == np.uint8:
        a = a / 255.0
    if radii is None:
        side = max(img.shape[:2])
        radii = tuple(r for r in (side // 12, side // 48, 6, 3, 1) if r >= 1) or (1,)
    a3 = a[..., None]
    fg = img.copy()
    bg = img.copy()
    for radius in radii:
        wa = _box(a, radius)[..., None]
        wb = _box(1.0 - a, radius)[..., None]
        f_bar = _box(fg * a3, radius) / (wa + EPS)
        b_bar = _box(bg * (1.0 - a3), radius) / (wb + EPS)
        # where the neighbourhood has no foreground (or no background) at all, keep the old estimate
        f_bar = np.where(wa > EPS, f_bar, fg)
        b_bar = np.where(wb > EPS, b_bar, bg)
        residual = img - a3 * f_bar - (1.0 - a3) * b_bar
        fg = np.clip(f_bar + a3 * residual, 0.0, 1.0)
        bg = np.clip(b_bar + (1.0 - a3) * residual, 0.0, 1.0)
    return fg.astype(np.float32)
