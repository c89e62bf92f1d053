#!/usr/bin/env python
"""Milliseconds per frame for the PyTorch and ONNX Runtime backends on the CPU, and bf16 vs fp32.

One run, interleaved repetitions (the backends take turns, in rotating order, so load
from other processes hits them alike), median per backend, ratios from the same run.
A "frame" is the whole ``engine.inference.pipeline.matte`` call: pre-processing, the matting net
for all people, progressive merge and the refiner (``--refine``, default dense).

    .venv/bin/python scripts/bench_backends.py                  # tiny width, then width 1 at 640x360
    .venv/bin/python scripts/bench_backends.py --reps 9 --threads 1 --json out.json

Without ``--weights`` the networks are random (seeded); timings do not depend on the
weights, the bf16 difference does a little.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.backends import create_backend  # noqa: E402
from engine.inference.pipeline import matte  # noqa: E402
from engine.model import load_model  # noqa: E402

SIZES = {"640x360": (360, 640), "1280x720": (720, 1280)}


def scene(height: int, width: int, people: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xs / width, ys / height, 0.5 + 0.5 * np.sin(xs / 17.0)], axis=-1) * 200
    image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    masks = []
    for k in range(people):
        cx = (k + 1) / (people + 1) * width
        cy, ry, rx = 0.55 * height, 0.4 * height, 0.12 * width
        distance = np.sqrt(((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2)
        masks.append(np.clip((1.1 - distance) / 0.2, 0.0, 1.0))
    return image, np.stack(masks).astype(np.float32)


def interleaved(runners: dict, reps: int, warmup: int) -> dict[str, list[float]]:
    """runners: name -> callable; returns name -> list of seconds (warm-up excluded)."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    times = {name: [] for name in names}
    for rep in range(reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            start = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - start)
    return times


def median_ms(values: list[float]) -> float:
    return 1000.0 * statistics.median(values)


def bench_width(model, label: str, sizes, people_counts, args, cache_dir) -> list[dict]:
    pytorch = create_backend("pytorch", weights=model, device="cpu", threads=args.threads)
    onnxruntime = create_backend("onnxruntime", weights=model, device="cpu", threads=args.threads,
                                 cache_dir=cache_dir)
    bf16 = create_backend("pytorch", weights=model, device="cpu", threads=args.threads, bf16=True)
    rows = []
    for size in sizes:
        height, width = SIZES[size]
        for people in people_counts:
            image, masks = scene(height, width, people)

            def run(backend):
                return lambda: matte(backend, image, masks, refine=args.refine)

            runners = {"pytorch": run(pytorch), "onnxruntime": run(onnxruntime), "pytorch-bf16": run(bf16)}
            times = interleaved(runners, args.reps, args.warmup)
            fp32 = matte(pytorch, image, masks, refine=args.refine)
            ort = matte(onnxruntime, image, masks, refine=args.refine)
            half = matte(bf16, image, masks, refine=args.refine)
            row = {"width": label, "size": size, "people": people, "refine": args.refine,
                   "pytorch_ms": median_ms(times["pytorch"]), "onnxruntime_ms": median_ms(times["onnxruntime"]),
                   "bf16_ms": median_ms(times["pytorch-bf16"]),
                   "ort_max_diff": float(np.abs(ort - fp32).max()), "bf16_max_diff": float(np.abs(half - fp32).max()),
                   "bf16_mean_diff": float(np.abs(half - fp32).mean())}
            row["ort_over_pytorch"] = row["onnxruntime_ms"] / row["pytorch_ms"]
            row["bf16_over_fp32"] = row["bf16_ms"] / row["pytorch_ms"]
            rows.append(row)
            print(f"{label:>5} {size:>9} {people} people | pytorch {row['pytorch_ms']:8.1f} ms | "
                  f"onnxruntime {row['onnxruntime_ms']:8.1f} ms (x{row['ort_over_pytorch']:.2f}, "
                  f"max diff {row['ort_max_diff']:.1e}) | bf16 {row['bf16_ms']:8.1f} ms "
                  f"(x{row['bf16_over_fp32']:.2f}, max diff {row['bf16_max_diff']:.3f})", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per backend (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for both backends (default: all)")
    parser.add_argument("--refine", choices=("none", "dense", "windowed"), default="dense")
    parser.add_argument("--weights", help="tiny checkpoint (default: shipped, else random width 0.25)")
    parser.add_argument("--full-weights", help="width-1 checkpoint, e.g. the authors' (default: random)")
    parser.add_argument("--skip-full", action="store_true", help="skip width 1.0 at 640x360")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)

    from engine.weights import default_weights_path

    torch.manual_seed(0)
    tiny_path = args.weights or default_weights_path()
    tiny = load_model(tiny_path, "cpu", 0.25)
    cpu = platform.processor() or platform.machine()
    print(f"# {os.cpu_count()} CPUs ({cpu}), torch {torch.__version__}, "
          f"threads={args.threads or f'default ({torch.get_num_threads()})'}, reps={args.reps}, refine={args.refine}, "
          f"tiny weights: {tiny_path or 'random'}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="instmatt-bench-") as cache_dir:
        rows += bench_width(tiny, f"{tiny.width:g}", ["640x360", "1280x720"], [1, 3], args, cache_dir)
        if not args.skip_full:
            torch.manual_seed(0)
            full = load_model(args.full_weights, "cpu", 1.0)
            rows += bench_width(full, "1", ["640x360"], [1, 3], args, cache_dir)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
