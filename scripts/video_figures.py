#!/usr/bin/env python
"""The pictures of docs/video.md: a strip of frames with each person's matte in a colour, and
the warp error over time with and without ``--temporal``.

    .venv/bin/python scripts/video_figures.py FOOTAGE PATTERN --temporal 0.5 --out docs/img

PATTERN: the EXRs of an ``instmatt matte`` run without ``--temporal`` (e.g.
out/shot.####.exr). The ``--temporal`` run is replayed from them: chatter control applied
frame by frame in order, each frame held to the one before as already held, which is what
the job does (guidance never depends on the mattes, so the network's output is the same).
Prints the mean warp error of both; writes video_strip.png and video_flicker.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COLOURS = np.array([[230, 60, 60], [60, 160, 240], [250, 200, 40], [120, 220, 90], [200, 90, 230]], np.float32)


def strip(source, pattern: str, frames: list[int], height: int = 240) -> np.ndarray:
    from engine.io import read_person_exr
    from engine.io.patterns import format_pattern

    tiles = []
    for frame in frames:
        rgb = source.read(frame).rgb8.astype(np.float32)
        ids, alphas, _ = read_person_exr(format_pattern(pattern, frame))
        tinted = rgb * 0.35
        for k, alpha in enumerate(alphas):
            tinted += alpha[..., None] * COLOURS[k % len(COLOURS)] * 0.65
        tinted = np.clip(tinted, 0, 255).astype(np.uint8)
        width = round(tinted.shape[1] * height / tinted.shape[0])
        tile = cv2.resize(tinted, (width, height), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, f"frame {frame}", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)


def replay_temporal(outputs: dict[int, str], read, strength: float) -> dict[int, str]:
    """The mattes ``--temporal strength`` gives, from a run without it (see the docstring)."""
    import tempfile

    from engine.inference.temporal import ChatterControl
    from engine.io import read_person_exr, write_person_exr

    control = ChatterControl(strength)
    scratch = Path(tempfile.mkdtemp(prefix="held-"))
    held = {}
    for position, frame in enumerate(sorted(outputs)):
        ids, alphas, _ = read_person_exr(outputs[frame])
        held[frame] = str(write_person_exr(scratch / f"held.{frame:04d}.exr", control(position, read(frame), ids, alphas), ids))
    return held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("footage")
    parser.add_argument("pattern")
    parser.add_argument("--temporal", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--frames", type=int, nargs="+", default=None)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from engine.evaluation.video import evaluate_sequence
    from engine.io.patterns import match_pattern
    from engine.io.sources import open_source

    source = open_source(args.footage)
    read = lambda frame: source.read(frame).rgb8
    outputs = {f: str(p) for f, p in match_pattern(args.pattern).items()}
    results = {"off": evaluate_sequence(outputs, read)}
    held = replay_temporal(outputs, read, args.temporal)
    results["on"] = evaluate_sequence(held, read)
    for name in results:
        print(f"{name}: {results[name]['frames']} frames, people {results[name]['people']}, "
              f"warp error {results[name]['warp_error']:.3f}")
    args.out.mkdir(parents=True, exist_ok=True)
    frames = args.frames or [f for f in np.linspace(min(outputs), max(outputs), 4).round().astype(int)]
    image = strip(source, args.pattern, [int(f) for f in frames])
    cv2.imwrite(str(args.out / "video_strip.png"), image[..., ::-1])
    figure, axis = plt.subplots(figsize=(8, 3.2))
    for name, label in (("off", "--temporal 0 (off)"), ("on", f"--temporal {args.temporal:g}")):
        r = results[name]
        axis.plot(r["pairs_end"], r["warp_error_curve"], label=f"{label}: mean {r['warp_error']:.2f}")
    axis.set_xlabel("frame")
    axis.set_ylabel("warp error (x100)")
    axis.set_title("flicker: |alpha_t - warped alpha_t-1| over reliably tracked pixels")
    axis.legend()
    figure.tight_layout()
    figure.savefig(args.out / "video_flicker.png", dpi=110)
    print(f"wrote {args.out / 'video_strip.png'} and {args.out / 'video_flicker.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
