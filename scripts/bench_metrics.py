"""Seconds per image pair for the whole IMQ metric at 1080p with 3 people.

Whole metric = mask IoU, Hungarian matching, MAD, MSE, Grad and Conn for every matched
pair, pooled at IoU 0.5 and 0.75. Run: .venv/bin/python scripts/bench_metrics.py
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from scipy import ndimage

from engine.evaluation import metrics as M


def person(rng, h, w, cx, ry, rx):
    """A soft matte with a ragged, hairy edge (many connectivity levels)."""
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.sqrt(((yy - h * 0.55) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    hair = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 2.0) * 0.25
    return np.clip((1.0 - d + hair) * 12.0, 0, 1).astype(np.float32)


def scene(rng, h, w, people):
    xs = np.linspace(w / (2 * people), w - w / (2 * people), people)
    gt = np.stack([person(rng, h, w, x, 0.4 * h, 0.8 * w / (2 * people)) for x in xs])
    noise = rng.normal(0, 0.05, gt.shape).astype(np.float32) * (gt > 0)
    pred = np.clip(ndimage.gaussian_filter(gt, (0, 1.5, 1.5)) + noise, 0, 1)
    pred = np.round(pred * 255) / np.float32(255)  # 8-bit, like PNG predictions
    gt = np.round(gt * 255) / np.float32(255)
    return pred.astype(np.float32), gt.astype(np.float32)


def timed(fn, repeats):
    best, total = float("inf"), 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best, total = min(best, took), total + took
    return best, total / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    pred, gt = scene(rng, args.height, args.width, args.people)
    score = M.score_image(pred, gt)  # warm-up, and a check that every pair matched
    print(f"{args.width}x{args.height}, {args.people} people, IoU {np.round(score.iou, 3).tolist()}, "
          f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, numpy {np.__version__}")

    def whole():
        acc = M.IMQAccumulator()
        acc.add(pred, gt)
        acc.result()

    best, mean = timed(whole, args.repeats)
    print(f"whole metric (match + MAD/MSE/Grad/Conn, both thresholds): {mean:.3f} s per image pair (best {best:.3f})")

    # where the time goes, per pair on its union's box (as pair_errors does)
    pairs = list(zip(score.pred_index, score.gt_index))
    best, mean = timed(lambda: M.mask_iou(pred, gt), args.repeats)
    print(f"  mask IoU for {len(pred)}x{len(gt)}:      {mean:.3f} s")
    best, mean = timed(lambda: [M.pair_errors(pred[i], gt[j]) for i, j in pairs], args.repeats)
    print(f"  four errors, {len(pairs)} pairs:        {mean:.3f} s")
    box = [crop(pred[i], gt[j]) for i, j in pairs]
    best, mean = timed(lambda: [(M._gradient_magnitude(p), M._gradient_magnitude(g)) for p, g in box], args.repeats)
    print(f"    of which Grad filters:       {mean:.3f} s")
    best, mean = timed(lambda: [M._connectivity_level(p, g) for p, g in box], args.repeats)
    print(f"    of which Conn labelling:     {mean:.3f} s")


def crop(p, g):
    union = (p > 0) | (g > 0)
    rows, cols = np.flatnonzero(union.any(1)), np.flatnonzero(union.any(0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return p[box], g[box]


if __name__ == "__main__":
    main()
