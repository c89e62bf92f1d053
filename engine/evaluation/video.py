"""Flicker over time: dtSSD with ground truth, warp error without.

- dtSSD (Erofeev et al. 2015, as RVM's and MatAnyone's evaluations compute it): per pair
  of consecutive frames 100 * sqrt(mean(((p_t - p_{t-1}) - (g_t - g_{t-1}))^2)), alphas in
  [0, 1], averaged over the pairs. It counts changes of the prediction that the ground
  truth does not make.
- Warp error: per pair, mean |a_t - W(a_{t-1})| over the pixels the flow tracks reliably
  (x100), W = the previous matte warped onto frame t by the same DIS flow propagation uses
  (:mod:`engine.guidance.propagation`). Needs no ground truth; real motion blur and flow
  errors keep it above zero even for a perfect matte, so compare methods on the same clip.

People: (T, K, H, W) stacks with person k the same person in every frame; the measures are
taken per person and averaged over people (a person absent in both frames of a pair adds 0).
"""

from __future__ import annotations

import numpy as np


def _stack(alphas, name: str) -> np.ndarray:
    a = np.asarray(alphas, np.float32)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise ValueError(f"{name} must be (T, H, W) or (T, K, H, W), got shape {a.shape}")
    return a


def dtssd_curve(pred, gt) -> np.ndarray:
    """dtSSD per pair of frames (T-1,), averaged over people."""
    p, g = _stack(pred, "pred"), _stack(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred {p.shape} and gt {g.shape} differ in shape")
    dp, dg = np.diff(p, axis=0), np.diff(g, axis=0)
    per_person = 100.0 * np.sqrt(((dp - dg) ** 2).mean(axis=(2, 3)))
    return per_person.mean(axis=1)


def dtssd(pred, gt) -> float:
    curve = dtssd_curve(pred, gt)
    return float(curve.mean()) if curve.size else 0.0


def warp_error_curve(alphas, frames, flow=None) -> np.ndarray:
    """Warp error per pair of frames (T-1,), x100, averaged over people."""
    from engine.guidance.propagation import FlowEstimator

    a = _stack(alphas, "alphas")
    frames = np.asarray(frames)
    if frames.shape[0] != a.shape[0] or frames.shape[1:3] != a.shape[2:]:
        raise ValueError(f"frames {frames.shape} do not match alphas {a.shape}")
    flow = flow or FlowEstimator()
    out = []
    for t in range(1, len(a)):
        motion = flow.between(frames[t - 1], frames[t])
        warped = motion.warp(a[t - 1])
        keep = ~motion.occluded
        if not keep.any():
            out.append(0.0)
            continue
        out.append(100.0 * float(np.abs(a[t] - warped)[:, keep].mean()))
    return np.array(out, np.float64)


def warp_error(alphas, frames, flow=None) -> float:
    curve = warp_error_curve(alphas, frames, flow)
    return float(curve.mean()) if curve.size else 0.0
