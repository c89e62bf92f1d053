"""Chatter control (``--temporal STRENGTH``): pull each person's matte towards their own
matte of the frame before, warped onto this frame, inside the uncertain band only.

    a'_k = a_k + w (W(a_{k,t-1}) - a_k),   w = strength * exp(-(r / EDGE)^2)

- only where person k's matte is strictly between 0 and 1: the solid inside and the
  clear background never move;
- only where the flow is reliable and the pixel belongs to the same person (or to nobody)
  in both frames: never blended across people;
- edge-aware: r = |I_t - W(I_{t-1})| (grey levels), so where the image itself changed the
  new matte stands.
Strength 0 is off (the mattes come back unchanged); 1 holds the band as far as the image allows.
"""

from __future__ import annotations

import numpy as np

EDGE = 12.0  # grey levels (of 255) at which the pull has fallen to 1/e
OWNER_MIN = 0.05  # below this nobody owns a pixel


def _owner(planes: np.ndarray) -> np.ndarray:
    owner = planes.argmax(axis=0)
    owner[planes.max(axis=0) < OWNER_MIN] = -1
    return owner


def stabilise(alphas: np.ndarray, motion, previous_alphas: np.ndarray, strength: float) -> np.ndarray:
    """``alphas`` (K,H,W) of this frame, ``previous_alphas`` (K,H,W) of the frame before (same
    people, same order), ``motion`` from :class:`engine.guidance.propagation.FlowEstimator`."""
    if not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"temporal strength must be within [0, 1], got {strength!r}")
    alphas = np.asarray(alphas, np.float32)
    if strength == 0 or alphas.shape[0] == 0:
        return alphas
    warped = motion.warp(np.asarray(previous_alphas, np.float32))
    if motion.previous_grey is not None and motion.current_grey is not None:
        residual = np.abs(motion.current_grey.astype(np.float32) - motion.warp(motion.previous_grey))
        weight = float(strength) * np.exp(-(residual / EDGE) ** 2)
    else:
        weight = np.full(motion.shape, float(strength), np.float32)
    weight = np.where(motion.occluded, 0.0, weight) * (_owner(alphas) == _owner(warped))
    band = (alphas > 0) & (alphas < 1)
    out = alphas + np.where(band, weight[None], 0.0) * (warped - alphas)
    total = out.sum(axis=0)
    over = total > 1.0
    if over.any():  # people share a pixel at most fully
        out[:, over] /= total[over]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
