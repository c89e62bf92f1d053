#!/usr/bin/env python
"""Roto assistance measured: keyframes carried through a shot against masks on every frame.

    .venv/bin/python scripts/bench_propagation.py                 # 24 frames, 640x360, 3 people
    .venv/bin/python scripts/bench_propagation.py --frames 48 --seed 2 --json out.json
    .venv/bin/python scripts/bench_propagation.py --cost           # + 1280x720: propagation vs network

A clip of real people (../shared/data/people over ../shared/data/backgrounds) who walk
across and occlude each other, with exact per-person ground truth (engine.data.walking);
generated figures when the shared data is absent. IMQ_mad (the authors' metric) over all
frames, and ID switches, for: masks on every frame; the frame-1 masks held still; frame 1
only, propagated (``--propagate``); frames 1 and the middle one, and frames 1 and the last, propagated. Guidance goes
through PropagatedGuidance, the code ``instmatt matte --propagate`` runs. ``--cost`` times
one propagation step (flow + alignment + guidance) against the network on 1280x720.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def make_clip(frames: int, seed: int, height: int, width: int):
    from engine.data.walking import walking_clip

    if (DATA / "people").is_dir() and (DATA / "backgrounds").is_dir():
        from engine.data.synth import load_backgrounds, load_people

        people = load_people(DATA / "people", max_side=max(height, width))
        pick = np.random.default_rng(seed).choice(len(people), 3, replace=False)
        backgrounds = load_backgrounds(DATA / "backgrounds", max_side=max(height, width))
        clip = walking_clip([people[i] for i in pick], backgrounds[seed % len(backgrounds)], frames=frames,
                            height=height, width=width, seed=seed)
        return clip, "real people of ../shared/data walking across a real background"
    from engine.data.figures import make_clip as figures_clip

    return figures_clip(frames=frames, height=height, width=width, people=3, seed=seed), "generated figures"


def write_keys(folder: Path, masks: np.ndarray, keyframes: list[int]) -> None:
    for t in keyframes:
        target = folder / f"{t + 1:04d}"
        target.mkdir(parents=True)
        for k, mask in enumerate(masks[t]):
            if mask.any():
                cv2.imwrite(str(target / f"{k + 1:02d}.png"), mask.astype(np.uint8) * 255)


def propagated(frames: np.ndarray, masks: np.ndarray, keyframes: list[int]) -> list[tuple[np.ndarray, list[int]]]:
    """Per frame (guidance (P, H, W), person numbers) from PropagatedGuidance over a KEYS folder."""
    from engine.guidance.propagated import PropagatedGuidance

    with tempfile.TemporaryDirectory() as keys:
        write_keys(Path(keys), masks, keyframes)
        guidance = PropagatedGuidance(keys)
        numbers = list(range(1, len(frames) + 1))
        guidance.check(numbers)
        guidance.read = lambda f: frames[f - 1]
        out: dict[int, tuple[np.ndarray, list[int]]] = {}
        for f in guidance.order():
            guide = guidance.people(f, frames[f - 1])
            out[f] = (guide.masks, guide.numbers)
    return [out[f] for f in numbers]


def score(backend, frames, alphas, guides) -> dict:
    """IMQ_mad over the clip and ID switches (a person's number matched to another truth)."""
    from engine.evaluation.metrics import IMQAccumulator
    from engine.inference import matte

    acc = IMQAccumulator()
    owner: dict[int, int] = {}
    switches = 0
    for t, (masks, numbers) in enumerate(guides):
        pred = matte(backend, frames[t], masks) if len(masks) else np.zeros((0,) + frames.shape[1:3], np.float32)
        present = [k for k in range(alphas.shape[1]) if (alphas[t, k] > 0).any()]
        result = acc.add(pred, alphas[t, present])
        for i, j, iou in zip(result.pred_index, result.gt_index, result.iou):
            if iou < 0.5:
                continue
            truth = present[j]
            number = numbers[i]
            if owner.setdefault(number, truth) != truth:
                switches += 1
                owner[number] = truth
    return {"IMQ_mad": round(acc.result()["0.5"]["IMQ_mad"], 2), "id_switches": switches}


def cost(backend, seed: int) -> dict:
    """Seconds per frame at 1280x720: one propagation step against the network on its guidance."""
    from engine.guidance.layered import LayeredTracker
    from engine.inference import matte

    (frames, alphas), _ = make_clip(6, seed, 720, 1280)
    masks = (alphas >= 0.5).astype(np.float32)
    tracker = LayeredTracker(frames[0], masks[0])
    steps, nets = [], []
    for t in range(1, len(frames)):
        start = time.perf_counter()
        guidance = tracker.step(frames[t])
        steps.append(time.perf_counter() - start)
        start = time.perf_counter()
        matte(backend, frames[t], guidance)
        nets.append(time.perf_counter() - start)
    step, net = float(np.median(steps)), float(np.median(nets))
    return {"size": "1280x720", "people": 3, "propagation_s": round(step, 3), "network_s": round(net, 3),
            "propagation_share_of_frame": round(step / (step + net), 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of the clip")
    parser.add_argument("--weights", default=None, help="InstMatt weights (default: what the product loads)")
    parser.add_argument("--cost", action="store_true", help="also time propagation against the network at 1280x720")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    from engine.backends import create_backend

    width, height = (int(v) for v in args.size.lower().split("x"))
    (frames, alphas), what = make_clip(args.frames, args.seed, height, width)
    masks = alphas >= 0.5
    backend = create_backend("auto", weights=args.weights)
    print(f"clip: {what}, {args.frames} frames {width}x{height}, seed {args.seed}; backend {backend.name}, "
          f"weights {backend.weights_path}", flush=True)
    numbers = list(range(1, alphas.shape[1] + 1))
    every = [(masks[t].astype(np.float32), numbers) for t in range(len(frames))]
    runs = {"masks on every frame": every,
            "frame-1 masks held still": [every[0]] * len(frames),
            "1 keyframe, propagated": propagated(frames, masks, [0]),
            "2 keyframes (1, middle)": propagated(frames, masks, [0, len(frames) // 2]),
            "2 keyframes (1, last)": propagated(frames, masks, [0, len(frames) - 1])}
    results = {}
    for name, guides in runs.items():
        results[name] = score(backend, frames, alphas, guides)
        share = 100.0 * results[name]["IMQ_mad"] / max(results["masks on every frame"]["IMQ_mad"], 1e-9)
        results[name]["share_of_every_frame_pct"] = round(share, 1)
        print(f"{name:28s} IMQ_mad {results[name]['IMQ_mad']:6.2f}  ({share:5.1f}% of every frame)  "
              f"ID switches {results[name]['id_switches']}", flush=True)
    if args.cost:
        results["cost"] = cost(backend, args.seed)
        c = results["cost"]
        print(f"1280x720, 3 people: propagation {c['propagation_s']:.3f} s/frame, network {c['network_s']:.3f} "
              f"s/frame ({100 * c['propagation_share_of_frame']:.1f}% of the frame)")
    if args.json:
        Path(args.json).write_text(json.dumps({"clip": what, "frames": args.frames, "seed": args.seed,
                                               "size": args.size, "backend": backend.name, **results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
