"""``instmatt synth``: write a HIM2K-layout data set of composites with simulated guidance.

    instmatt synth --fg DIR --bg DIR --out DIR --count N

writes OUT/images/SUBSET/NAME.jpg, OUT/alphas/SUBSET/NAME/NN.png (occlusion-aware per
person) and OUT/masks/SUBSET/NAME/NN.png (simulated segmenter masks, for the masks-as-
alpha baseline and for ``instmatt matte``/eval runs that need guidance). Without ``--fg``
the people are generated figures; without ``--bg`` the backgrounds are generated too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fg", type=Path, help="person layers: DIR/images/NAME.jpg + DIR/alphas/NAME.png, or RGBA "
                        "PNGs in DIR (default: generated figures only)")
    parser.add_argument("--bg", type=Path, help="folder of background photos (default: generated backgrounds)")
    parser.add_argument("--out", type=Path, required=True, help="output root (HIM2K layout)")
    parser.add_argument("--count", type=int, required=True, help="number of composites to write")
    parser.add_argument("--size", type=int, nargs=2, default=(384, 512), metavar=("HEIGHT", "WIDTH"),
                        help="composite size (default 384 512)")
    parser.add_argument("--people", type=int, nargs=2, default=(2, 5), metavar=("MIN", "MAX"),
                        help="people per composite (default 2 5)")
    parser.add_argument("--figures", type=int, default=100,
                        help="generated figures in the pool (default 100; 0 = only --fg layers)")
    parser.add_argument("--real-share", type=float, default=0.5,
                        help="chance that a person is drawn from --fg rather than generated (default 0.5)")
    parser.add_argument("--mask-strength", type=float, default=0.5,
                        help="how wrong the simulated guidance is: 0 = thresholded ground truth (default 0.5)")
    parser.add_argument("--subset", default="comp", help="subset folder name (default comp)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from engine.data.him2k import write_sample
    from engine.data.synth import LayerPool
    from engine.errors import UserError

    if args.count < 1:
        raise UserError("--count must be at least 1")
    low, high = args.people
    if not 1 <= low <= high:
        raise UserError("--people needs 1 <= MIN <= MAX")
    for flag, folder in (("--fg", args.fg), ("--bg", args.bg)):
        if folder is not None and not folder.is_dir():
            raise UserError(f"{flag} {folder} is not a folder")
    pool = LayerPool(seed=args.seed, figures=max(args.figures, 0), people_dir=args.fg, backgrounds_dir=args.bg,
                     real_share=args.real_share if args.figures > 0 else 1.0)
    if args.fg is not None and not pool.people:
        raise UserError(f"--fg {args.fg}: no person layers found (expected images/ + alphas/ or RGBA PNGs)")
    if not pool.people and not pool.figures:
        raise UserError("no people to composite: give --fg or --figures > 0")
    if args.bg is not None and not pool.backgrounds:
        raise UserError(f"--bg {args.bg}: no readable images")
    rng = np.random.default_rng([args.seed, 2])
    height, width = args.size
    written = 0
    tty = sys.stderr.isatty()
    while written < args.count:
        composite = pool.composite(rng, height, width, (low, high), mask_strength=args.mask_strength)
        if not len(composite.alphas):
            continue
        name = f"synth_{args.seed:04d}_{written:05d}"
        write_sample(args.out, args.subset, name, composite.image, composite.alphas, composite.masks)
        written += 1
        if tty:
            print(f"\rinstmatt synth: {written}/{args.count}", end="", file=sys.stderr, flush=True)
    print(f"{chr(10) if tty else ''}instmatt synth: wrote {written} composites to {args.out}", file=sys.stderr)
    return 0
