"""``instmatt matte``: footage in, one multilayer EXR of per-person alphas per frame out.

    instmatt matte plate.####.exr -o out/            # detector + tracker, all frames
    instmatt matte clip.mp4 -o out/clip.####.exr --frames 1-48 --png
    instmatt matte plate.####.exr -o out/ --masks roto/ --refine dense

The job itself is :class:`engine.job.MatteJob`; this module is its command line.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

from engine import settings as defaults
from engine.errors import UserError
from engine.job import build_job
from engine.settings import BACKENDS, COMPRESSIONS, DEPTHS, REFINE_MODES, MatteSettings

from .progress import (
    InterruptGuard,
    ProgressBar,
    add_offline_argument,
    apply_offline,
    setup_logging,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="an image, a folder of images, a frame pattern (shot.####.exr) or a video file")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="a folder (files OUT/<input stem>.####.exr; a still: OUT/<its name>.exr) or a pattern such as "
                             "out/shot.####.exr")
    parser.add_argument("--frames", metavar="FIRST-LAST", help="only these frames, e.g. 1001-1100 (video frames count from 1)")
    guide = parser.add_mutually_exclusive_group()
    guide.add_argument("--masks", metavar="DIR", help="per-person masks instead of the detector: DIR/<frame, 4 digits>/<NN>.png")
    guide.add_argument("--index", metavar="PATTERN", help="one ID image per frame instead of the detector (0 = nobody)")
    parser.add_argument("--propagate", action="store_true",
                        help="--masks holds keyframes only: carry each person from the nearest keyframe to every "
                             "other frame (optical flow); a rerun recomputes only the frames an edited keyframe drives. "
                             "Without --masks the detector makes the keyframes (see --detect-every)")
    parser.add_argument("--detect-every", type=int, default=defaults.DETECT_EVERY, metavar="N",
                        help=f"--propagate without --masks: run the detector every N frames (default "
                             f"{defaults.DETECT_EVERY}; 0: the first frame only), and wherever the carry loses "
                             f"someone; between, the people are carried by optical flow")
    parser.add_argument("--temporal", type=float, default=defaults.TEMPORAL, metavar="STRENGTH",
                        help="chatter control, 0 (off, default) to 1: hold each matte's soft edge to the neighbour "
                             "frame's where the image did not change (flow-warped, never across people)")
    parser.add_argument("--weights", metavar="PATH",
                        help="InstMatt weights (default: the authors' checkpoint when `instmatt models fetch` "
                             "has cached it, else the shipped toy checkpoint)")
    parser.add_argument("--backend", default=defaults.BACKEND, choices=BACKENDS, help="inference backend (default: auto)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the network")
    parser.add_argument("--refine", default=defaults.REFINE, choices=REFINE_MODES,
                        help="multi-instance refinement: windowed (the authors'), dense (whole frame) or none")
    parser.add_argument("--max-side", type=int, default=defaults.MAX_SIDE,
                        help=f"longest side the network sees (default {defaults.MAX_SIDE})")
    parser.add_argument("--score", type=float, default=defaults.SCORE,
                        help=f"detector: minimum person score (default {defaults.SCORE})")
    parser.add_argument("--min-area", type=float, default=defaults.MIN_AREA,
                        help=f"detector: minimum mask area as a fraction of the frame (default {defaults.MIN_AREA})")
    parser.add_argument("--detector-weights", metavar="PATH",
                        help="Mask R-CNN weights (default: the model registry's 'detector', fetched on first use "
                             "unless offline)")
    parser.add_argument("--detector-size", type=int, default=defaults.DETECTOR_SIZE,
                        help=f"detector: shorter side of the frame it sees (default {defaults.DETECTOR_SIZE}; "
                             f"smaller is faster)")
    parser.add_argument("--exact", action="store_true",
                        help="run the whole frame through the network for every person, as the authors do "
                             "(slower; the default runs each person on a crop around them)")
    parser.add_argument("--png", action="store_true", help="also write one PNG alpha per person")
    parser.add_argument("--rgba", action="store_true", help="also write premultiplied RGBA cut-outs per person")
    parser.add_argument("--compression", default=defaults.COMPRESSION, choices=COMPRESSIONS,
                        help=f"EXR compression (default {defaults.COMPRESSION}; dwaa is lossy and smallest)")
    parser.add_argument("--depth", default=defaults.DEPTH, choices=DEPTHS,
                        help=f"bit depth of the alpha passes (default {defaults.DEPTH})")
    parser.add_argument("--no-union", dest="union_pass", action="store_false",
                        help="leave out the all_people.A pass (the union of everyone)")
    parser.add_argument("--no-background", dest="background_pass", action="store_false",
                        help="leave out the background.A pass (1 - union)")
    parser.add_argument("--label", action="append", default=[], metavar="ID=NAME",
                        help="name a person, e.g. --label person_01=Anna (or 1=Anna); repeatable. Names go into "
                             "the manifest and the Cryptomatte layer; channels stay person_NN")
    parser.add_argument("--overwrite", action="store_true", help="recompute frames whose EXR already exists")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_offline_argument(parser)


def parse_labels(items: list[str]) -> dict[str, str] | None:
    """["person_01=Anna", "2=Stunt double"] -> {"person_01": "Anna", "person_02": "Stunt double"}."""
    from engine.io import person_id

    labels = {}
    for item in items:
        key, sep, name = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--label {item!r}: use ID=NAME, e.g. person_01=Anna")
        labels[person_id(int(key)) if key.isdigit() else key] = name.strip()
    return labels or None


def settings_from_args(args) -> MatteSettings:
    return MatteSettings(max_side=args.max_side, refine=args.refine, score=args.score, min_area=args.min_area,
                         write_png=args.png, write_rgba=args.rgba, backend=args.backend, weights=args.weights,
                         detector_weights=args.detector_weights, detector_size=args.detector_size,
                         overwrite=args.overwrite, device=args.device, threads=args.threads,
                         compression=args.compression, depth=args.depth, union_pass=args.union_pass,
                         background_pass=args.background_pass, labels=parse_labels(args.label),
                         exact=args.exact, propagate=args.propagate, detect_every=args.detect_every,
                         temporal=args.temporal)


def run(args) -> int:
    setup_logging()
    apply_offline(args)
    settings = settings_from_args(args)
    if args.masks:
        guidance = {"kind": "masks", "path": args.masks}
    elif args.index:
        guidance = {"kind": "index", "path": args.index}
    else:
        guidance = {"kind": "detector"}
    cancel = threading.Event()
    bar = ProgressBar(quiet=args.quiet)
    job = build_job(args.input, args.output, args.frames, guidance, settings, bar, cancel)
    with InterruptGuard(cancel) as guard:
        result = job.run()
    out_dir = os.path.dirname(job.output_pattern) or "."
    summary = (f"instmatt matte: {result.written} frames written, {result.skipped} already there"
               + (f", {result.failed} failed" if result.failed else "")
               + (f", {result.elsewhere} being written by another process" if result.elsewhere else "")
               + f"; people: {', '.join(result.people) or 'none'}; output in {out_dir}")
    if result.cancelled:
        summary += " (stopped early: rerun the same command to resume)"
    print(summary, file=sys.stderr)
    if result.failed:
        return 2
    return guard.status if result.cancelled else 0
