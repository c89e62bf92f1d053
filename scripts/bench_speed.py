#!/usr/bin/env python
"""Speed, memory and quality of the inference pipeline: the one benchmark.

    .venv/bin/python scripts/bench_speed.py --quick --authors     # 1280x720, 3 people, every backend
    .venv/bin/python scripts/bench_speed.py --authors --json out.json --plots docs/img
    .venv/bin/python scripts/bench_speed.py --memory               # peak RSS against K, both widths
    .venv/bin/python scripts/bench_speed.py --quality 12 --margins 32 64 96 128
    .venv/bin/python scripts/bench_speed.py --job 12               # whole MatteJob: decode, guidance, EXR

time (default), in one process: every backend that runs here (PyTorch fp32 and reduced
precision, ONNX Runtime, what ``auto`` picks) at 640x360, 1280x720 and 1920x1080 with 1, 3
and 6 people: per-stage seconds of the default path (person crops) and the ratio against
the ``exact=True`` run (fp32 PyTorch = the authors' inference: full frame, every person,
progressive merge, windowed refiner; ``--exact-all``: every backend's own), interleaved
repetitions, medians. Frames: the real people of ../shared/data composited
(engine.data.synth), else generated figures; simulated guidance; the shipped weights
unless ``--weights``; threads pinned (``--threads``, default 1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
SIZES = {"640x360": (360, 640), "1280x720": (720, 1280), "1920x1080": (1080, 1920)}
PEOPLE = (1, 3, 6)
STAGES = ("prepare", "network", "merge", "refine", "refiner net", "output")



def layer_pool():
    from engine.data.synth import LayerPool

    people, backgrounds = DATA / "people", DATA / "backgrounds"
    if people.is_dir():
        return LayerPool(seed=0, figures=0, people_dir=people, backgrounds_dir=backgrounds, real_share=1.0,
                         generated_bg_prob=0.0), "real people of ../shared/data composited (engine.data.synth)"
    return LayerPool(seed=0, figures=40), "generated figures (../shared/data absent)"


def composite_frame(pool, height: int, width: int, people: int, seed: int):
    """(image uint8, guidance masks, ground-truth alphas) with exactly ``people`` people."""
    for attempt in range(50):
        rng = np.random.default_rng([seed, people, attempt])
        comp = pool.composite(rng, height, width, people=people)
        if len(comp.alphas) == people:
            image = (np.clip(comp.image, 0, 1) * 255 + 0.5).astype(np.uint8)
            return image, comp.masks.astype(np.float32), comp.alphas
    raise RuntimeError(f"could not place {people} visible people in {width}x{height}")


def crowd_frame(height: int, width: int, people: int, seed: int = 0):
    """A grid of ``people`` person-shaped ellipses over a noise frame (for memory runs)."""
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    columns = int(np.ceil(np.sqrt(people * width / height)))
    rows = int(np.ceil(people / columns))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = (np.arange(people) // columns + 0.5) * height / rows, (np.arange(people) % columns + 0.5) * width / columns
    masks = (((ys - cy[:, None, None]) / (0.45 * height / rows)) ** 2
             + ((xs - cx[:, None, None]) / (0.3 * width / columns)) ** 2 <= 1.0)
    return image, masks.astype(np.float32)



class Timed:
    """A backend whose matting and refiner calls are timed (the networks' share of a frame)."""

    def __init__(self, backend):
        self.backend = backend
        self.seconds = {"network": 0.0, "refiner net": 0.0}

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def _timed(self, key, call, *inputs):
        start = time.perf_counter()
        out = call(*inputs)
        self.seconds[key] += time.perf_counter() - start
        return out

    def matting(self, *inputs):
        return self._timed("network", self.backend.matting, *inputs)

    def refiner(self, *inputs):
        return self._timed("refiner net", self.backend.refiner, *inputs)


def make_backends(args) -> dict:
    import torch

    from engine.backends import BackendUnavailable, create_backend
    from engine.backends.reduced import cpu_has_bf16

    weights, device = args.weights, "cuda" if torch.cuda.is_available() else "cpu"
    out = {"pytorch-fp32": create_backend("pytorch", weights=weights, device=device, threads=args.threads)}
    if device == "cuda" or cpu_has_bf16():
        out["pytorch-fp16" if device == "cuda" else "pytorch-bf16"] = create_backend(
            "pytorch", weights=weights, device=device, threads=args.threads, bf16=True)
    try:
        out["onnxruntime-fp32"] = create_backend("onnxruntime", weights=weights, device=device, threads=args.threads)
    except BackendUnavailable as exc:  # report and go on: the table says what ran
        print(f"# onnxruntime unavailable: {exc}")
    auto = create_backend("auto", weights=weights, device=device, threads=args.threads)
    out["auto"] = auto
    print(f"# auto picked {auto.label} ({getattr(auto, 'precision', 'fp32')}): {auto.reason}")
    return out



def run_once(backend, image, masks, exact: bool) -> dict:
    from engine.inference import matte
    from engine.inference.timing import recording

    timed = Timed(backend)
    start = time.perf_counter()
    with recording() as stages:
        matte(timed, image, masks, exact=exact)
    total = time.perf_counter() - start
    stages = {**stages, **timed.seconds, "total": total}
    stages["refine"] = stages.get("refine", 0.0) - stages["refiner net"]  # tile assembly, window selection
    return stages


def median_stages(runs: list[dict]) -> dict:  # per stage, over the repetitions
    return {key: statistics.median(run.get(key, 0.0) for run in runs) for key in runs[0]}


def bench_time(args) -> list[dict]:
    import torch

    backends = make_backends(args)
    pool, source = layer_pool()
    image, masks, _ = composite_frame(pool, 180, 320, 2, seed=0)
    for backend in backends.values():  # warm-up: graphs loaded, first allocations made
        run_once(backend, image, masks, False)
    print(f"# frames: {source}; weights: {args.weights or 'shipped'}; threads {torch.get_num_threads()}; "
          f"reps {args.reps}; load average {os.getloadavg()[0]:.1f} (other jobs share this machine)")
    sizes = ["1280x720"] if args.quick else args.sizes
    people_counts = [3] if args.quick else args.people
    rows = []
    for size in sizes:
        height, width = SIZES[size]
        for people in people_counts:
            image, masks, _ = composite_frame(pool, height, width, people, seed=1)
            runners = {f"{name}": (backend, False) for name, backend in backends.items()}
            # the authors' inference is the fp32 PyTorch backend's exact run
            runners.update({f"{name} exact": (backend, True) for name, backend in backends.items()
                            if name != "auto" and (args.exact_all or name == "pytorch-fp32")})
            times = {name: [] for name in runners}
            names = list(runners)
            for rep in range(args.reps):  # interleaved, in rotating order: load hits every runner alike
                for name in names[rep % len(names):] + names[:rep % len(names)]:
                    times[name].append(run_once(runners[name][0], image, masks, runners[name][1]))
            medians = {name: median_stages(runs) for name, runs in times.items()}
            medians["authors"] = medians["pytorch-fp32 exact"]
            for name in backends:
                row = {"size": size, "people": people, "backend": name, "stages": medians[name],
                       "seconds": medians[name]["total"]}
                if f"{name} exact" in medians:
                    row["exact_seconds"] = medians[f"{name} exact"]["total"]
                    row["speedup_vs_exact"] = row["exact_seconds"] / row["seconds"]
                if args.authors:
                    row["authors_seconds"] = medians["authors"]["total"]
                    row["speedup_vs_authors"] = row["authors_seconds"] / row["seconds"]
                rows.append(row)
                print_row(row)
            if args.authors:
                print(f"{size:>9} {people} | authors' inference {medians['authors']['total']:7.2f} s  "
                      + _stages_text(medians["authors"]), flush=True)
    return rows


def _stages_text(stages: dict) -> str:
    return " ".join(f"{key} {stages.get(key, 0.0):.2f}" for key in STAGES)


def print_row(row: dict) -> None:
    extra = ""
    if "speedup_vs_exact" in row:
        extra += f" | x{row['speedup_vs_exact']:.2f} vs its exact ({row['exact_seconds']:.2f} s)"
    if "speedup_vs_authors" in row:
        extra += f" | x{row['speedup_vs_authors']:.2f} vs authors"
    outside = row["stages"]["total"] - row["stages"]["network"] - row["stages"]["refiner net"]
    print(f"{row['size']:>9} {row['people']} | {row['backend']:<17} {row['seconds']:7.2f} s  "
          f"{_stages_text(row['stages'])} | outside the nets {100 * outside / row['seconds']:.0f}%{extra}", flush=True)



def own_peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM; reset at exec, unlike ru_maxrss)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024.0


def memory_child(spec: str) -> None:
    import torch

    from engine.backends import create_backend
    from engine.inference import matte

    width, people, exact, backend_name, threads = spec.split(",")
    torch.set_num_threads(int(threads))
    weights = None if width == "shipped" else "random"
    backend = create_backend(backend_name, weights=weights, width=1.0 if width != "shipped" else 0.25,
                             threads=int(threads))
    image, masks = crowd_frame(720, 1280, int(people))
    start = time.perf_counter()
    matte(backend, image, masks, exact=exact == "1")
    print(json.dumps({"peak_rss_mib": own_peak_rss_mib(), "seconds": time.perf_counter() - start,
                      "backend": backend.label}))


def bench_memory(args) -> list[dict]:
    rows = []
    print("# peak RSS (VmHWM) of a fresh process: load the backend, matte one 1280x720 frame of K people")
    for width in ("shipped", "1.0"):
        for people in args.memory_people:
            for exact in ([False, True] if args.memory_exact else [False]):
                spec = f"{width},{people},{int(exact)},{args.memory_backend},{args.threads}"
                result = subprocess.run([sys.executable, __file__, "--memory-child", spec], capture_output=True,
                                        text=True, cwd=ROOT, check=False)
                if result.returncode != 0:
                    print(f"{width} K={people} exact={exact}: failed: {result.stderr.strip().splitlines()[-1:]}")
                    continue
                row = {"width": "0.25 (shipped)" if width == "shipped" else "1.0 (random)", "people": people,
                       "exact": exact, **json.loads(result.stdout.strip().splitlines()[-1])}
                rows.append(row)
                print(f"width {row['width']:<15} K={people:>2} {'exact' if exact else 'crops'}: "
                      f"{row['peak_rss_mib']:7.0f} MiB  ({row['seconds']:.1f} s, {row['backend']})", flush=True)
    return rows



def bench_quality(args) -> list[dict]:
    from engine.backends import create_backend
    from engine.evaluation.metrics import IMQAccumulator
    from engine.inference import matte

    pool, source = layer_pool()
    backend = create_backend(args.quality_backend, weights=args.weights, threads=args.threads)
    configs = {"exact": {"exact": True}}
    configs.update({f"crops, margin {m}": {"margin": m} for m in args.margins})
    if args.quality_bf16:
        configs["pytorch-bf16"] = {"backend": create_backend("pytorch", weights=args.weights, threads=args.threads,
                                                              bf16=True)}
    accumulators = {name: IMQAccumulator() for name in configs}
    largest = {name: 0.0 for name in configs}
    print(f"# quality: {args.quality} composites of {args.quality_people} people, 1280x720, {source}; "
          f"backend {backend.label}")
    for seed in range(args.quality):
        image, masks, truth = composite_frame(pool, 720, 1280, args.quality_people, seed=1000 + seed)
        reference = None
        for name, options in configs.items():
            options = dict(options)
            alphas = matte(options.pop("backend", backend), image, masks, **options)
            reference = alphas if reference is None else reference
            accumulators[name].add(alphas, truth)
            largest[name] = max(largest[name], float(np.abs(alphas - reference).max()))
        print(f"  composite {seed + 1}/{args.quality} done", flush=True)
    rows = []
    for name, accumulator in accumulators.items():
        result = accumulator.result()["0.5"]
        row = {"config": name, "IMQ_mad": result["IMQ_mad"], "IMQ_mse": result["IMQ_mse"],
               "IMQ_grad": result["IMQ_grad"], "max_abs_diff_vs_exact": largest[name]}
        rows.append(row)
        print(f"{name:<20} IMQ_mad {row['IMQ_mad']:6.2f}  IMQ_mse {row['IMQ_mse']:6.2f}  IMQ_grad "
              f"{row['IMQ_grad']:6.2f}  largest |alpha - exact| {row['max_abs_diff_vs_exact']:.3f}")
    return rows



def bench_job(args) -> dict:
    """A MatteJob over ``args.job`` composited 1280x720 frames: decode, guidance, inference, EXR."""
    import tempfile

    from engine.backends import create_backend
    from engine.guidance import ArrayGuidance
    from engine.io.sources import ArraySource
    from engine.job import Listener, MatteJob
    from engine.settings import MatteSettings

    pool, source = layer_pool()
    made = [composite_frame(pool, 720, 1280, 3, seed=2000 + t) for t in range(args.job)]
    frames, guidance = [image for image, _, _ in made], {t + 1: masks for t, (_, masks, _) in enumerate(made)}
    backend = Timed(create_backend("auto", weights=args.weights, threads=args.threads))
    rows = {}
    # frames written behind the next frame's matting (the default) against one after another,
    # interleaved so both see the same machine load
    for write_behind in (True, False, True, False):
        backend.seconds = dict.fromkeys(backend.seconds, 0.0)
        with tempfile.TemporaryDirectory(prefix="bench-speed-") as out:
            job = MatteJob(ArraySource(np.stack(frames), "bench"), os.path.join(out, "bench.####.exr"),
                           ArrayGuidance(guidance), backend, MatteSettings(overwrite=True), listener=Listener(),
                           write_behind=write_behind)
            result = job.run()
        nets = backend.seconds["network"] + backend.seconds["refiner net"]
        row = {"frames": result.written, "seconds_per_frame": result.seconds / result.written,
               "stages_per_frame": {key: value / result.written for key, value in job.timings.items()},
               "nets_per_frame": nets / result.written, "outside_share": 1.0 - nets / result.seconds,
               "backend": backend.label}
        name = "write behind" if write_behind else "write inline"
        previous = rows.get(name)
        if previous is None or row["seconds_per_frame"] < previous["seconds_per_frame"]:
            rows[name] = row  # the better of two runs each
    print(f"# job: {args.job} frames of {source}, 3 people, 1280x720, {backend.label}, best of 2 runs each")
    for name, row in rows.items():
        print(f"{name}: {row['seconds_per_frame']:.2f} s/frame; "
              + ", ".join(f"{k} {v:.3f}" for k, v in row["stages_per_frame"].items())
              + f"; inside the networks {row['nets_per_frame']:.2f} s; outside {100 * row['outside_share']:.1f}%")
    return rows


def plot(rows: list[dict], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    backends = sorted({row["backend"] for row in rows})
    for axis, fixed, name in (("people", ("size", "1280x720"), "time_vs_people.png"),
                              ("size", ("people", 3), "time_vs_resolution.png")):
        figure, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
        chosen = [row for row in rows if row[fixed[0]] == fixed[1]]
        keys = sorted({row[axis] for row in chosen}, key=lambda v: SIZES[v][0] if axis == "size" else v)
        for backend in backends:
            series = {row[axis]: row for row in chosen if row["backend"] == backend}
            ax.plot(range(len(keys)), [series[k]["seconds"] if k in series else np.nan for k in keys], "o-",
                    label=f"{backend} (crops)")
        authors = {row[axis]: row["authors_seconds"] for row in chosen if "authors_seconds" in row}
        if authors:
            ax.plot(range(len(keys)), [authors.get(k, np.nan) for k in keys], "k--", label="authors' inference")
        ax.set_xticks(range(len(keys)), [str(k) for k in keys])
        ax.set(xlabel="people in a 1280x720 frame" if axis == "people" else "frame size (3 people)",
               ylabel="seconds per frame", yscale="log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(folder / name)
        plt.close(figure)
        print(f"# wrote {folder / name}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="time 1280x720 with 3 people only")
    parser.add_argument("--authors", action="store_true", help="also give every row's ratio against the authors' "
                        "inference (exact=True, fp32 PyTorch, one person per pass)")
    parser.add_argument("--exact-all", action="store_true", help="time exact=True on every backend, not only fp32 PyTorch")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--people", nargs="+", type=int, default=list(PEOPLE))
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per configuration (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime threads (default 1)")
    parser.add_argument("--weights", default=None, help="InstMatt weights (default: the shipped checkpoint)")
    parser.add_argument("--memory", action="store_true", help="peak RSS against K in child processes")
    parser.add_argument("--memory-people", nargs="+", type=int, default=[1, 3, 10, 30])
    parser.add_argument("--memory-exact", action="store_true", help="also measure exact=True (large with many people)")
    parser.add_argument("--memory-backend", default="auto")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--quality", type=int, default=0, metavar="N", help="IMQ of crops vs exact on N composites")
    parser.add_argument("--quality-people", type=int, default=3)
    parser.add_argument("--quality-backend", default="onnxruntime")
    parser.add_argument("--quality-bf16", action="store_true", help="also score the PyTorch bf16 backend")
    parser.add_argument("--margins", nargs="+", type=int, default=[64])
    parser.add_argument("--job", type=int, default=0, metavar="FRAMES", help="time a whole MatteJob of N frames")
    parser.add_argument("--json", help="write every measurement here")
    parser.add_argument("--plots", help="write the two PNG plots into this folder")
    parser.add_argument("--plots-from", metavar="JSON", help="only redraw the plots from an earlier --json")
    args = parser.parse_args(argv)
    if args.memory_child or args.plots_from:
        memory_child(args.memory_child) if args.memory_child else plot(
            json.loads(Path(args.plots_from).read_text())["time"], Path(args.plots or "docs/img"))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    print(f"# {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    report: dict = {}  # the modes, each in this one process (memory: in children)
    if args.memory:
        report["memory"] = bench_memory(args)
    if args.quality:
        report["quality"] = bench_quality(args)
    if args.job:
        report["job"] = bench_job(args)
    if not (args.memory or args.quality or args.job):
        report["time"] = bench_time(args)
        if args.plots:
            plot(report["time"], Path(args.plots))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
