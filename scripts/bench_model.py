"""Benchmark: ms per frame and peak memory of the InstMatt pipeline on CPU,
all people batched through the network against one person at a time.

    .venv/bin/python scripts/bench_model.py [--width 0.25] [--people 1 3 6] [--sizes 640x360 1280x720]

Timings are interleaved (batched, single, batched, ...) in one process and reported as
medians with their ratio, since this machine's load is noisy. Peak memory is the peak
resident set size (VmHWM) of a fresh child process running one frame of that configuration.
(Not ``getrusage``'s ru_maxrss: Linux carries it across exec, so a child would report the
parent's larger footprint.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.backends import PyTorchBackend  # noqa: E402
from engine.inference.pipeline import matte  # noqa: E402
from engine.model import load_model  # noqa: E402


def scene(width: int, height: int, people: int):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    masks = np.zeros((people, height, width), np.float32)
    for k in range(people):
        x0 = int(k * width / max(people, 1))
        masks[k, height // 5: height - height // 10, x0: x0 + width // max(people, 2)] = 1.0
    return image, masks


def run_once(model, image, masks, chunk: int, refine: str) -> float:
    model.chunk = chunk  # the backend runs people in chunks of this size
    start = time.perf_counter()
    matte(model, image, masks, refine=refine)
    return (time.perf_counter() - start) * 1000.0


def peak_rss_mib(width: float, size: str, people: int, chunk: int, refine: str) -> float:
    command = [sys.executable, __file__, "--child", f"{width},{size},{people},{chunk},{refine}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_rss_mib"]


def child(spec: str) -> None:
    width, size, people, chunk, refine = spec.split(",")
    w, h = (int(n) for n in size.split("x"))
    model = PyTorchBackend(load_model(None, width=float(width)))
    image, masks = scene(w, h, int(people))
    run_once(model, image, masks, int(chunk), refine)
    print(json.dumps({"peak_rss_mib": round(own_peak_rss_mib(), 1)}))


def own_peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM, reset at exec), falling back to ru_maxrss."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.25, help="network width (1.0 = the authors')")
    parser.add_argument("--people", type=int, nargs="+", default=[1, 3, 6])
    parser.add_argument("--sizes", nargs="+", default=["640x360", "1280x720"])
    parser.add_argument("--refine", default="dense", choices=["none", "dense", "windowed"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    torch.manual_seed(0)
    model = PyTorchBackend(load_model(None, width=args.width))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, width {args.width}, refine {args.refine}, "
          f"CPU cores {os.cpu_count()}")
    print(f"{'size':>9} {'K':>2} | {'batched ms':>10} {'single ms':>10} {'single/batched':>14} | "
          f"{'batched MiB':>11} {'single MiB':>10}")
    for size in args.sizes:
        w, h = (int(n) for n in size.split("x"))
        for people in args.people:
            image, masks = scene(w, h, people)
            run_once(model, image, masks, people, args.refine)  # warm-up
            batched, single = [], []
            for _ in range(args.repeats):
                batched.append(run_once(model, image, masks, people, args.refine))
                single.append(run_once(model, image, masks, 1, args.refine))
            b, s = statistics.median(batched), statistics.median(single)
            mem_b = peak_rss_mib(args.width, size, people, people, args.refine)
            mem_s = peak_rss_mib(args.width, size, people, 1, args.refine)
            print(f"{size:>9} {people:>2} | {b:10.0f} {s:10.0f} {s / b:14.2f} | {mem_b:11.0f} {mem_s:10.0f}", flush=True)


if __name__ == "__main__":
    main()
