#!/usr/bin/env python
"""Guidance ablation in the spirit of the InstMatt paper's table 3, at toy scale.

Four variants, trained equally (same seed, data, steps, width and crop) and scored with
IMQ on the same held-out synthetic composites, next to the masks-as-alpha baseline:

1. target mask only          tri-mask channels (T, 0, 0) at training and test time
2. target + reference        (T, R, 0)
3. full tri-mask             (T, R, B)
4. full tri-mask + refiner   variant 3's weights plus a short stage 2 (refiner only)

    .venv/bin/python scripts/ablation.py --out runs/ablation            # train and score
    .venv/bin/python scripts/ablation.py --out runs/ablation --evaluate-only

Writes OUT/ablation.json and prints a Markdown table (docs/training.md records it). Next
to IMQ (which binarises alphas at > 0 to match people, so a faint haze over the
background fails the match) it reports the plain per-person pixel MAD.
The numbers at this scale are noisy; they say what these few minutes of training give,
not what the paper's full training gives.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = [
    ("target only", [1.0, 0.0, 0.0], False),
    ("target + reference", [1.0, 1.0, 0.0], False),
    ("full tri-mask", [1.0, 1.0, 1.0], False),
    ("full tri-mask + refiner", [1.0, 1.0, 1.0], True),
]


def _slug(name: str) -> str:
    return name.replace(" ", "_").replace("+", "plus")


def _load_weights(path: Path):
    """Weights of a variant's final checkpoint (the trainable network, unfolded)."""
    from engine.model import build_model

    return build_model(path).state_dict()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "ablation.yaml"), help="base training config")
    parser.add_argument("--steps", type=int, default=None, help="stage-1 steps per variant (default: the config's)")
    parser.add_argument("--stage2-steps", type=int, default=None, help="refiner steps for variant 4 (default: config)")
    parser.add_argument("--out", default=None, help="output folder (default: the config's out)")
    parser.add_argument("--val-images", type=int, default=None, help="held-out composites (default: config)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="do not train: score the variants' final checkpoints already in --out")
    args = parser.parse_args(argv)

    import torch

    from engine.training.config import load_config
    from engine.training.trainer import Trainer, configure_process
    from engine.training.validate import (
        baseline_imq,
        imq_of,
        make_heldout,
        pixel_mad,
        predict,
        quantise,
        summary,
    )

    base = load_config(args.config)
    if args.steps is not None:
        base.stage1.steps = args.steps
    if args.stage2_steps is not None:
        base.stage2.steps = args.stage2_steps
    if args.val_images is not None:
        base.val.images = args.val_images
    out = Path(args.out or base.out)
    out.mkdir(parents=True, exist_ok=True)
    base.val.every = 0
    base.export = None
    configure_process(base)

    val, data = base.val, base.data
    heldout = make_heldout(val.images, val.size, val.seed, val.figures, data.people, data.backgrounds,
                           data.holdout_people, val.people_per_image, val.mask_strength)
    baseline_mad = pixel_mad([quantise(m) for m in heldout.masks], heldout)
    rows = [{"variant": "masks as alpha (baseline)", **summary(baseline_imq(heldout)),
             "pixel_MAD_x1000": baseline_mad, "minutes": 0.0}]
    print(f"baseline: IMQ_mad {rows[0]['IMQ_mad']:.2f}", file=sys.stderr)
    full_model = None
    for name, channels, refiner in VARIANTS:
        config = copy.deepcopy(base)
        config.data.trimask_channels = list(channels)
        config.out = str(out / _slug(name))
        started = time.monotonic()
        stage = 2 if refiner else 1
        trainer = Trainer(config, heldout=heldout)
        trainer.out.mkdir(parents=True, exist_ok=True)
        if args.evaluate_only:
            trainer.model.load_state_dict(_load_weights(trainer.checkpoint_path(stage, final=True)))
        elif refiner:
            if full_model is None:
                raise RuntimeError("the refiner variant needs the full tri-mask variant first")
            trainer.model.load_state_dict(full_model)
            trainer.run_stage(2)
        else:
            config.stage2.steps = 0
            trainer.run_stage(1)
        if channels == [1.0, 1.0, 1.0] and not refiner:
            full_model = copy.deepcopy(trainer.model.state_dict())
        minutes = (time.monotonic() - started) / 60.0
        mode = "windowed" if refiner else "none"
        with torch.no_grad():
            predictions = predict(trainer.model, heldout, mode, channels)
        result = summary(imq_of(predictions, heldout))
        rows.append({"variant": name, **result, "pixel_MAD_x1000": pixel_mad(predictions, heldout),
                     "refine": mode, "minutes": None if args.evaluate_only else round(minutes, 1)})
        print(f"{name}: IMQ_mad {result['IMQ_mad']:.2f}", file=sys.stderr)

    report = {"config": base.to_dict(), "stage1_steps": base.stage1.steps, "stage2_steps": base.stage2.steps,
              "val_images": len(heldout.images), "rows": rows}
    (out / ("ablation_eval.json" if args.evaluate_only else "ablation.json")).write_text(json.dumps(report, indent=2))
    print("| variant | IMQ_mad | IMQ_mse | IMQ_grad | IMQ_conn | RQ | pixel MAD x1e3 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['variant']} | {row['IMQ_mad']:.2f} | {row['IMQ_mse']:.2f} | {row['IMQ_grad']:.2f} | "
              f"{row['IMQ_conn']:.2f} | {row['RQ']:.1f} | {row['pixel_MAD_x1000']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
