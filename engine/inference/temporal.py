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
    delta = np.where(band, weight[None], 0.0) * (warped - alphas)
    before, after = alphas.sum(axis=0), (alphas + delta).sum(axis=0)
    limit = np.maximum(before, 1.0)
    over = after > limit + 1e-6
    if over.any():  # the pull never makes people share a pixel more than fully (or than they did)
        delta[:, over] *= (limit[over] - before[over]) / (after[over] - before[over])
    return np.clip(alphas + delta, 0.0, 1.0).astype(np.float32)


class ChatterControl:
    """``stabilise`` along a job: each frame against the frame computed just before it, when
    that is its neighbour in the shot (also backward, on propagation's backward chains),
    person by person by ID; a person new in the frame keeps their matte as it is."""

    def __init__(self, strength: float, flow=None):
        self.strength = float(strength)
        self._flow = flow
        self._last: tuple[int, np.ndarray, list[str], np.ndarray] | None = None

    def __call__(self, position: int, rgb8: np.ndarray, ids: list[str], alphas: np.ndarray) -> np.ndarray:
        """``position``: the frame's index in the shot. Returns the stabilised (K,H,W) alphas."""
        last, self._last = self._last, None
        alphas = np.asarray(alphas, np.float32)
        out = alphas
        if self.strength > 0 and last is not None and abs(last[0] - position) == 1 and last[1].shape == rgb8.shape:
            _, previous_rgb8, previous_ids, previous_alphas = last
            if self._flow is None:
                from engine.guidance.propagation import FlowEstimator

                self._flow = FlowEstimator()
            motion = self._flow.between(previous_rgb8, rgb8)
            new = [pid not in previous_ids for pid in ids]
            before = np.stack([alphas[k] if fresh else previous_alphas[previous_ids.index(pid)]
                               for k, (pid, fresh) in enumerate(zip(ids, new))]) if ids else alphas
            out = stabilise(alphas, motion, before, self.strength)
            out[new] = alphas[new]
        if self.strength > 0:
            self._last = (position, rgb8, list(ids), out)
        return out
