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


def dtssd_pair(p0: np.ndarray, p1: np.ndarray, g0: np.ndarray, g1: np.ndarray) -> np.ndarray:
    """dtSSD of one pair of frames, per person: (K,H,W) predictions and truths -> (K,)."""
    return 100.0 * np.sqrt((((p1 - p0) - (g1 - g0)) ** 2).mean(axis=(1, 2)))


def warp_error_pair(a0: np.ndarray, a1: np.ndarray, motion) -> np.ndarray:
    """Warp error of one pair, per person: (K,H,W) mattes and the flow from frame 0 to 1 -> (K,)."""
    keep = ~motion.occluded
    if not keep.any():
        return np.zeros(a1.shape[0])
    return 100.0 * np.abs(a1 - motion.warp(a0))[:, keep].mean(axis=1)


def dtssd_curve(pred, gt) -> np.ndarray:
    """dtSSD per pair of frames (T-1,), averaged over people."""
    p, g = _stack(pred, "pred"), _stack(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred {p.shape} and gt {g.shape} differ in shape")
    return np.array([dtssd_pair(p[t - 1], p[t], g[t - 1], g[t]).mean() for t in range(1, len(p))], np.float64)


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
    return np.array([warp_error_pair(a[t - 1], a[t], flow.between(frames[t - 1], frames[t])).mean()
                     for t in range(1, len(a))], np.float64)


def warp_error(alphas, frames, flow=None) -> float:
    curve = warp_error_curve(alphas, frames, flow)
    return float(curve.mean()) if curve.size else 0.0


def evaluate_sequence(outputs: dict[int, str], read_frame=None, truth=None) -> dict:
    """Flicker of a matted shot, one pair of frames in memory at a time.

    ``outputs``: frame -> the EXR ``instmatt matte`` wrote; ``read_frame``: frame -> RGB uint8
    (the footage; gives the warp error); ``truth``: frame -> {person ID: (H,W) alpha} (gives
    dtSSD). A person missing from one frame of a pair counts as alpha 0 there. Returns the
    means and the per-pair curves (x100) with the frames they end on.
    """
    from engine.guidance.propagation import FlowEstimator
    from engine.io import read_person_exr

    flow = FlowEstimator() if read_frame is not None else None
    frames = sorted(outputs)
    curves: dict[str, list[float]] = {"warp_error": [], "dtssd": []}
    people: list[str] = []
    last = None
    for frame in frames:
        ids, alphas, _ = read_person_exr(outputs[frame])
        current = {"alphas": dict(zip(ids, alphas)), "image": read_frame(frame) if read_frame else None,
                   "truth": truth(frame) if truth else None}
        people += [pid for pid in ids if pid not in people]
        if last is not None:
            both = [pid for pid in people if pid in last["alphas"] or pid in current["alphas"]]
            pairs = {key: [_planes(side[key], both, alphas.shape[1:]) for side in (last, current)]
                     for key in ("alphas", "truth") if current[key] is not None}
            if flow is not None:  # a pair with nobody in it has no flicker
                motion = flow.between(last["image"], current["image"]) if both else None
                curves["warp_error"].append(float(warp_error_pair(*pairs["alphas"], motion).mean()) if both else 0.0)
            if truth is not None:
                curves["dtssd"].append(float(dtssd_pair(*pairs["alphas"], *pairs["truth"]).mean()) if both else 0.0)
        last = current
    result = {"frames": len(frames), "people": people, "pairs_end": frames[1:]}
    for name, curve in curves.items():
        if curve:
            result[name] = float(np.mean(curve))
            result[name + "_curve"] = [round(v, 4) for v in curve]
    return result


def _planes(by_id: dict, ids: list[str], shape) -> np.ndarray:
    """(K,H,W) planes of ``ids`` in that order; a person missing here is alpha 0."""
    return np.stack([by_id.get(pid, np.zeros(shape, np.float32)) for pid in ids]) if ids else np.zeros((0, *shape), np.float32)
