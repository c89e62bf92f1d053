"""Flicker measures: hand-checkable dtSSD and warp error, then a generated clip."""

import numpy as np
import pytest

from engine.evaluation.video import dtssd, dtssd_curve, warp_error, warp_error_curve


def test_dtssd_by_hand():
    gt = np.zeros((3, 2, 2), np.float32)
    pred = np.zeros((3, 2, 2), np.float32)
    pred[1] = 0.5  # jumps up by 0.5, then back down: 100 * sqrt(0.25) = 50 both times
    assert dtssd_curve(pred, gt) == pytest.approx([50.0, 50.0])
    pred[2] = 0.5  # stays: the second pair has no change
    assert dtssd_curve(pred, gt) == pytest.approx([50.0, 0.0])
    assert dtssd(pred, gt) == pytest.approx(25.0)


def test_dtssd_ignores_what_ground_truth_does_too():
    rng = np.random.default_rng(0)
    gt = rng.random((4, 2, 8, 8)).astype(np.float32)
    assert dtssd(np.clip(gt + 0.0, 0, 1), gt) == pytest.approx(0.0)
    offset = np.clip(gt * 0.5 + 0.2, 0, 1)  # a steady error is not flicker: 0.5 * dg differs
    assert dtssd(offset, gt) > 0
    with pytest.raises(ValueError, match="differ in shape"):
        dtssd(gt[:, :1], gt)


def _textured_static(t=3, size=64):
    rng = np.random.default_rng(1)
    frame = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    return np.repeat(frame[None], t, axis=0)


def test_warp_error_by_hand_on_a_static_shot():
    frames = _textured_static()
    alpha = np.zeros((3, 64, 64), np.float32)
    alpha[:, 16:48, 16:48] = 0.5
    assert warp_error(alpha, frames) == pytest.approx(0.0, abs=1e-4)
    alpha[1] += 0.2  # frame 1 brighter everywhere by 0.2: error 20 in and out of it
    assert warp_error_curve(alpha, frames) == pytest.approx([20.0, 20.0], abs=0.05)


def test_warp_error_of_exact_mattes_is_small_and_flicker_raises_it():
    import cv2

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur((rng.random((120, 200, 3)) * 255).astype(np.uint8), (5, 5), 0)
    frames = np.stack([np.roll(base, 3 * t, axis=1) for t in range(4)])  # the shot pans 3 px a frame
    square = np.zeros((120, 200), np.float32)
    square[30:90, 40:100] = 1.0
    alphas = np.stack([np.roll(square, 3 * t, axis=1) for t in range(4)])
    exact = warp_error(alphas, frames)
    flicker = alphas.copy()
    flicker[1::2] *= 0.5  # every other frame at half strength
    assert exact < 0.1
    assert warp_error(flicker, frames) > 5.0
