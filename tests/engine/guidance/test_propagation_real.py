"""Keyframe propagation on real people (../shared/data, skipped without it): three people of
the shared set walk across a real background and occlude each other (the clip
scripts/bench_propagation.py scores with the network). Here the guidance itself is held
to the truth: IoU with the true visible masks, and no person number ever on someone else."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from engine.guidance.tracking import mask_iou


@pytest.fixture(scope="module", params=[0, 1], ids=["seed0", "seed1"])
def walkers(request, shared_data, repo_root):
    spec = importlib.util.spec_from_file_location("bench_propagation", repo_root / "scripts" / "bench_propagation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    (frames, alphas), what = bench.make_clip(24, request.param, 360, 640)
    assert what.startswith("real people")
    return request.param, bench, frames, alphas >= 0.5


def _score(guides, truth):
    """Mean IoU of each true person's guidance (0 where they have none) and ID switches."""
    ious, owner, switches = [], {}, 0
    for (masks, numbers), people in zip(guides, truth):
        iou = mask_iou(masks >= 0.5, people) if len(masks) else np.zeros((0, len(people)))
        for k in range(len(people)):
            if people[k].any():
                ious.append(float(iou[:, k].max()) if len(masks) else 0.0)
        for i, number in enumerate(numbers):
            if iou[i].max() >= 0.5 and owner.setdefault(number, int(iou[i].argmax())) != int(iou[i].argmax()):
                switches += 1
    return float(np.mean(ious)), switches


# measured: seed 0 0.855 / 0.922 / 0.857, seed 1 0.971 / 0.971 / 0.972
AT_LEAST = {0: {(0,): 0.84, (0, 23): 0.91, (0, 12): 0.84}, 1: {(0,): 0.95, (0, 23): 0.95, (0, 12): 0.95}}


@pytest.mark.parametrize("keyframes", [[0], [0, 23], [0, 12]])
def test_keyframes_carried_through_real_walkers(walkers, keyframes):
    seed, bench, frames, truth = walkers
    at_least = AT_LEAST[seed][tuple(keyframes)]
    mean_iou, switches = _score(bench.propagated(frames, truth, keyframes), truth)
    held, _ = _score([(truth[0].astype(np.float32), list(range(1, len(truth[0]) + 1)))] * len(frames), truth)
    assert switches == 0
    assert mean_iou >= at_least, f"guidance IoU {mean_iou:.3f} with keyframes {keyframes}"
    assert mean_iou > held + 0.3  # the frame-1 masks held still, for scale
