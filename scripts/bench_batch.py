"""Throughput of ``instmatt matte`` on CPU: people batched through the network vs one at a time.

    .venv/bin/python scripts/bench_batch.py                 # 48 frames, 1280x720, 3 people
    .venv/bin/python scripts/bench_batch.py --frames 12     # fewer frames (printed)

Footage: the real video ../shared/data/footage/maggie_video_test2.mp4 when present (its
first N frames, with generated guidance: three person-shaped ellipses that sway across
the frame), else a generated ``make_clip`` shot upscaled to 1280x720 with its own
ground-truth masks as guidance. The whole ``MatteJob`` runs (decode -> guidance ->
tracker -> network -> refinement -> EXR writing), in a fresh child process per mode so
that each peak memory is its own.

Measured, per mode:
- frames per second over the job (model loading excluded), and the CPU seconds the
  process used per frame (``time.process_time``; less sensitive to other jobs on a shared
  machine than wall-clock time);
- peak memory: the child's peak resident set size from ``resource.getrusage``
  (``ru_maxrss``; it includes the Python interpreter, torch and the network). tracemalloc
  is not used: it does not see torch's tensor allocations;
- where the time goes: decode, guidance (+ tracker), matting network, refinement (the
  multi-instance refiner), the rest of the pipeline (resizing, padding, tri-masks,
  progressive merge) and EXR writing; "outside the network" is everything but the
  matting network.

``--detector`` also times torchvision's Mask R-CNN (random weights: the same compute as
the COCO weights; it finds nobody, so the mask head's cost is left out) on a few frames, to
show what automatic detection adds per frame.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VIDEO = ROOT.parent / "shared" / "data" / "footage" / "maggie_video_test2.mp4"


class TimedModel:
    """Wraps a backend: times the matting network and the refiner; optionally one person per pass."""

    def __init__(self, model, one_at_a_time: bool = False):
        self.model = model
        self.one_at_a_time = one_at_a_time
        self.network = 0.0
        self.refine = 0.0
        self.passes = 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def matting(self, image, trimask):
        import torch

        start = time.perf_counter()
        if self.one_at_a_time and image.shape[0] > 1:
            parts = [self.model.matting(image[i:i + 1], trimask[i:i + 1]) for i in range(image.shape[0])]
            out = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
            self.passes += image.shape[0]
        else:
            out = self.model.matting(image, trimask)
            self.passes += 1
        self.network += time.perf_counter() - start
        return out

    def refiner(self, image, trimatte, feature):
        start = time.perf_counter()
        out = self.model.refiner(image, trimatte, feature)
        self.refine += time.perf_counter() - start
        return out


def ellipse_guidance(frames: int, height: int, width: int, people: int = 3) -> dict[int, np.ndarray]:
    """Person-shaped ellipses that sway left and right: guidance without a detector."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    out = {}
    for t in range(frames):
        masks = []
        for k in range(people):
            cx = width * (k + 0.5) / people + 0.06 * width * np.sin(0.2 * t + k)
            cy, rx, ry = 0.55 * height, 0.09 * width, 0.4 * height
            masks.append((((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1).astype(np.float32))
        out[t + 1] = np.stack(masks)
    return out


def load_footage(frames: int, height: int, width: int, use_video: bool):
    """(source, guidance dict, description)."""
    from engine.io.sources import ArraySource, FrameSource, VideoSource

    if use_video and VIDEO.is_file():
        video = VideoSource(str(VIDEO))
        count = min(frames, len(video.frames))

        class FirstFrames(FrameSource):
            kind = "video"

            def __init__(self):
                super().__init__(video.path, video.stem, list(range(1, count + 1)))

            def read(self, frame):
                return video.read(frame)

        size = video.read(1).shape
        video.reader._open()
        return FirstFrames(), ellipse_guidance(count, *size), f"{VIDEO.name} (first {count} frames, real footage)"
    import cv2

    from engine.data.figures import make_clip

    clip, alphas = make_clip(frames=frames, height=height // 4, width=width // 4, people=3, seed=0)
    big = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in clip])
    masks = {t + 1: np.stack([cv2.resize((a > 0.5).astype(np.float32), (width, height),
                                         interpolation=cv2.INTER_NEAREST) for a in alphas[t]])
             for t in range(frames)}
    return ArraySource(big, "clip"), masks, f"make_clip upscaled x4 to {width}x{height} ({frames} frames)"


def run_mode(args) -> dict:
    """One mode in this process; returns its measurements."""
    import torch

    from engine.backends import load_backend
    from engine.guidance import ArrayGuidance
    from engine.job import Listener, MatteJob
    from engine.settings import MatteSettings

    if args.threads:
        torch.set_num_threads(args.threads)
    source, guidance, description = load_footage(args.frames, args.height, args.width, not args.no_video)
    start = time.perf_counter()
    model = load_backend("pytorch", args.weights, "cpu", args.threads)
    load_seconds = time.perf_counter() - start
    timed = TimedModel(model, one_at_a_time=args.mode == "single")
    cpu_start = time.process_time()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as out:
        job = MatteJob(source, os.path.join(out, "bench.####.exr"), ArrayGuidance(guidance), timed,
                       MatteSettings(refine=args.refine, max_side=args.max_side, overwrite=True), listener=Listener())
        result = job.run()
    cpu_seconds = time.process_time() - cpu_start
    t = job.timings
    total = result.seconds
    breakdown = {
        "decode": t["read"],
        "guidance+tracker": t["guidance"],
        "network": timed.network,
        "refinement": timed.refine,
        "pipeline other": t["network"] - timed.network - timed.refine,
        "exr writing": t["write"],
    }
    breakdown["job overhead"] = total - sum(breakdown.values())
    return {
        "mode": args.mode, "footage": description, "frames": result.written, "people_per_frame": 3,
        "seconds": total, "fps": result.written / total, "model_load_s": load_seconds,
        "cpu_s_per_frame": cpu_seconds / max(result.written, 1),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "breakdown_s": breakdown, "outside_network_share": 1.0 - timed.network / total,
        "network_passes": timed.passes, "threads": torch.get_num_threads(),
        "weights": getattr(model, "weights_path", None), "width": getattr(model, "width", None),
        "refine": args.refine, "max_side": args.max_side,
    }


def time_detector(args) -> dict:
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    from engine.guidance.detector import PersonDetector

    source, _, description = load_footage(args.detector_frames, args.height, args.width, not args.no_video)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "maskrcnn_random.pth")
        torch.save(maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(), path)
        detector = PersonDetector(path)
    detector.detect(source.read(source.frames[0]).rgb8)  # warm-up
    start = time.perf_counter()
    for frame in source.frames:
        detector.detect(source.read(frame).rgb8)
    seconds = (time.perf_counter() - start) / len(source.frames)
    return {"detector_s_per_frame": seconds, "frames": len(source.frames), "footage": description,
            "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48, help="frames to process (default 48)")
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--weights", default=None, help="InstMatt weights (default: shipped, else random width 0.25)")
    parser.add_argument("--refine", default="windowed", choices=("windowed", "dense", "none"))
    parser.add_argument("--max-side", type=int, default=1280)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-video", action="store_true", help="use the generated clip even if the video exists")
    parser.add_argument("--mode", choices=("batched", "single"), default=None, help="run one mode in this process")
    parser.add_argument("--detector", action="store_true", help="also time Mask R-CNN per frame")
    parser.add_argument("--detector-frames", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON (child mode)")
    args = parser.parse_args(argv)

    if args.mode is not None:
        result = run_mode(args)
        print(json.dumps(result) if args.json else result)
        return 0

    passthrough = [f"--frames={args.frames}", f"--height={args.height}", f"--width={args.width}",
                   f"--refine={args.refine}", f"--max-side={args.max_side}"]
    if args.weights:
        passthrough.append(f"--weights={args.weights}")
    if args.threads:
        passthrough.append(f"--threads={args.threads}")
    if args.no_video:
        passthrough.append("--no-video")
    results = {}
    for mode in ("batched", "single"):
        print(f"bench: running {mode} ...", file=sys.stderr, flush=True)
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--json", *passthrough],
                             check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    first = results["batched"]
    print(f"footage: {first['footage']}; {first['frames']} frames x {first['people_per_frame']} people; "
          f"CPU, {first['threads']} torch threads; weights: {first['weights'] or 'random'} (width {first['width']}); "
          f"refine {first['refine']}, max side {first['max_side']}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'mode':<10}{'fps':>8}{'s/frame':>9}{'CPU s/frame':>13}{'peak RSS MiB':>14}{'net passes':>12}"
          f"{'outside net':>13}")
    for mode, r in results.items():
        print(f"{mode:<10}{r['fps']:>8.3f}{r['seconds'] / r['frames']:>9.2f}{r['cpu_s_per_frame']:>13.2f}"
              f"{r['peak_rss_mib']:>14.0f}{r['network_passes']:>12}{100 * r['outside_network_share']:>12.1f}%")
    print("time per frame (s) by stage:")
    stages = list(first["breakdown_s"])
    print(f"{'stage':<18}" + "".join(f"{mode:>10}" for mode in results))
    for stage in stages:
        print(f"{stage:<18}" + "".join(f"{r['breakdown_s'][stage] / r['frames']:>10.3f}" for r in results.values()))
    print("peak memory: ru_maxrss of each mode's own child process (resource.getrusage), not tracemalloc")
    if args.detector:
        d = time_detector(args)
        print(f"Mask R-CNN (torchvision, CPU, {d['threads']} threads): {d['detector_s_per_frame']:.2f} s/frame "
              f"over {d['frames']} frames of {d['footage']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
