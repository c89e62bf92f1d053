#!/usr/bin/env python
"""The guidance of ``--propagate`` against the truth, without the network (seconds, not minutes).

    .venv/bin/python scripts/guidance_iou.py                       # seeds 0 and 1, 24 and 48 frames
    .venv/bin/python scripts/guidance_iou.py --seeds 0 --frames 24 --per-frame

The clip of scripts/bench_propagation.py (make_clip), its guidance (propagated) for the
keyframes [first], [first, middle] and [first, last]; the score is the mean IoU over
people and frames of the guidance against the true visible masks (alpha >= 0.5), over
the pairs where either is not empty (a person hidden in truth and guidance counts not).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_propagation import make_clip, propagated


def frame_ious(guides, masks: np.ndarray) -> np.ndarray:
    """(T, K) IoU of each person's guidance with their true mask; NaN where both are empty."""
    frames, people = masks.shape[:2]
    out = np.full((frames, people), np.nan)
    for t, (guide, numbers) in enumerate(guides):
        for k in range(people):
            truth = masks[t, k]
            mine = guide[numbers.index(k + 1)] >= 0.5 if k + 1 in numbers else np.zeros_like(truth)
            union = (truth | mine).sum()
            if union:
                out[t, k] = (truth & mine).sum() / union
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--frames", default="24,48")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--per-frame", action="store_true", help="print each frame's IoU per person")
    parser.add_argument("--figures", action="store_true",
                        help="generated walking figures (limbs swing: non-rigid) instead of the real people")
    parser.add_argument("--pace", type=float, default=0.35, help="the figures' walk cycle (0.35: a real walk at 25 fps)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    width, height = (int(v) for v in args.size.lower().split("x"))
    for count in (int(v) for v in args.frames.split(",")):
        for seed in (int(v) for v in args.seeds.split(",")):
            if args.figures:
                from engine.data.figures import make_clip as figures_clip

                frames, alphas = figures_clip(frames=count, height=height, width=width, people=3, seed=seed,
                                             pace=args.pace)
            else:
                (frames, alphas), _ = make_clip(count, seed, height, width)
            masks = alphas >= 0.5
            line = []
            for keys in ([0], [0, count // 2], [0, count - 1]):
                start = time.perf_counter()
                ious = frame_ious(propagated(frames, masks, keys), masks)
                took = time.perf_counter() - start
                name = "+".join(str(k + 1) for k in keys)
                line.append(f"{name}: {np.nanmean(ious):.3f}")
                if args.per_frame:
                    print(f"seed {seed}, {count} frames, keys {name} ({took:.1f} s); visible share of each person:")
                    for t in range(count):
                        shown = " ".join("  -  " if np.isnan(v) else f"{v:.3f}" for v in ious[t])
                        sizes = " ".join(f"{int(masks[t, k].sum()):6d}" for k in range(masks.shape[1]))
                        print(f"  {t + 1:3d}  {shown}   px {sizes}")
            print(f"seed {seed}, {count} frames:  " + "  ".join(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
