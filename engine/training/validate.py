"""Validation with IMQ on held-out synthetic composites, through the inference pipeline.

The held-out set is drawn from its own seed and its own generated figures (never in the
training pool) plus any real people named in ``data.holdout_people``. Each image carries
simulated guidance masks; the network is run with ``engine.inference.pipeline.matte`` exactly as at
inference, and its alphas are stored as 8-bit (as a PNG would hold them) before IMQ is
computed. The masks-as-alpha baseline scores the guidance masks themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.data.synth import LayerPool


@dataclass
class HeldOut:
    images: list[np.ndarray]   # (H,W,3) uint8 RGB
    alphas: list[np.ndarray]   # (K,H,W) float32 (8-bit values, as loaded from PNG)
    masks: list[np.ndarray]    # (K,H,W) float32 simulated guidance


def quantise(alpha: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0


def make_heldout(count: int, size: int, seed: int, figures: int, people_dir=None, backgrounds_dir=None,
                 holdout_people=(), people=(2, 4), mask_strength: float = 1.0, real_share: float = 0.5) -> HeldOut:
    """``count`` composites at ``size`` x ``size``, deterministic for a seed."""
    names = list(holdout_people) if holdout_people else []
    pool = LayerPool(seed=seed, figures=figures, people_dir=people_dir if names else None,
                     backgrounds_dir=backgrounds_dir, people_names=names or None, real_share=real_share)
    rng = np.random.default_rng([seed, 99])
    images, alphas, masks = [], [], []
    while len(images) < count:
        composite = pool.composite(rng, size, size, tuple(people), mask_strength=mask_strength)
        if not len(composite.alphas):
            continue
        images.append(np.clip(np.rint(composite.image * 255.0), 0, 255).astype(np.uint8))
        alphas.append(quantise(composite.alphas))
        masks.append(composite.masks.astype(np.float32))
    return HeldOut(images, alphas, masks)


class ChannelMask(torch.nn.Module):
    """Wraps a model so its tri-masks have some channels zeroed (the ablation's variants)."""

    def __init__(self, model, channels):
        super().__init__()
        self.model = model
        self.refiner = model.refiner
        self.register_buffer("factors", torch.tensor([float(c) for c in channels]).view(1, 3, 1, 1))

    def matting(self, image, trimask, *args, **kwargs):
        return self.model.matting(image, trimask * self.factors.to(trimask), *args, **kwargs)


def imq_of(predictions, heldout: HeldOut) -> dict:
    from engine.evaluation.metrics import IMQAccumulator

    acc = IMQAccumulator()
    for pred, gt in zip(predictions, heldout.alphas):
        acc.add(pred, gt)
    return acc.result()


def baseline_imq(heldout: HeldOut) -> dict:
    """IMQ of the masks-as-alpha baseline: alpha = the guidance mask itself."""
    return imq_of([quantise(m) for m in heldout.masks], heldout)


@torch.no_grad()
def predict(model, heldout: HeldOut, refine: str = "none", channels=(1.0, 1.0, 1.0)) -> list[np.ndarray]:
    """8-bit alphas (K,H,W) per held-out image, person k from guidance mask k; model left as found."""
    from engine.inference.pipeline import matte

    was_training = model.training
    model.eval()
    runner = model if tuple(channels) == (1.0, 1.0, 1.0) else ChannelMask(model, channels)
    try:
        device = next(model.parameters()).device
        return [quantise(matte(runner, image, masks, refine=refine, device=device))
                for image, masks in zip(heldout.images, heldout.masks)]
    finally:
        model.train(was_training)


def evaluate(model, heldout: HeldOut, refine: str = "none", channels=(1.0, 1.0, 1.0)) -> dict:
    """IMQ of ``model`` (trainable or inference) on the held-out set."""
    return imq_of(predict(model, heldout, refine, channels), heldout)


def pixel_mad(predictions, heldout: HeldOut) -> float:
    """Mean |alpha - alpha_gt| over all pixels, person k against ground truth k, x1000.

    Unlike IMQ it does not binarise anything, so a faint haze over the background costs
    what it weighs instead of failing the IoU match."""
    errors = [np.abs(p - g).mean() for pred, gt in zip(predictions, heldout.alphas) for p, g in zip(pred, gt)]
    return float(1000.0 * np.mean(errors)) if errors else 0.0


def summary(result: dict) -> dict:
    """The headline numbers as plain floats (checkpoints must not pickle numpy scalars)."""
    row = result["0.5"]
    keys = ("IMQ_mad", "IMQ_mse", "IMQ_grad", "IMQ_conn", "RQ")
    out = {key: float(row[key]) for key in keys}
    out["IMQ_mad@0.75"] = float(result["0.75"]["IMQ_mad"])
    return out


def heldout_from_him2k(root, subset: str | None = None) -> HeldOut:
    """A HIM2K-layout folder with guidance masks (``instmatt synth`` writes them) as a held-out set."""
    from engine.data.him2k import Him2kDataset
    from engine.errors import UserError

    images, alphas, masks = [], [], []
    for sample in Him2kDataset(root, subset):
        if sample.masks is None:
            raise UserError(f"{root}: {sample.subset}/{sample.name} has no masks/ folder (guidance needed)")
        images.append(sample.image)
        alphas.append(quantise(sample.alphas))
        masks.append(sample.masks)
    return HeldOut(images, alphas, masks)


def main(argv=None) -> int:
    """``python -m engine.training.validate WEIGHTS``: IMQ of a checkpoint vs masks-as-alpha."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m engine.training.validate", description=main.__doc__)
    parser.add_argument("weights", help="checkpoint (.safetensors or .pth)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", help="use the held-out set described by this training config's val section")
    source.add_argument("--him2k", help="use a HIM2K-layout folder with masks/ (e.g. from instmatt synth)")
    parser.add_argument("--refine", nargs="+", default=["none", "windowed", "dense"], help="refiner modes to score")
    parser.add_argument("--channels", type=float, nargs=3, default=(1.0, 1.0, 1.0), help="tri-mask channel factors")
    args = parser.parse_args(argv)

    from engine.model import load_model

    if args.him2k:
        heldout = heldout_from_him2k(args.him2k)
    else:
        from .config import TrainConfig, load_config

        config = load_config(args.config) if args.config else TrainConfig()
        val, data = config.val, config.data
        heldout = make_heldout(val.images, val.size, val.seed, val.figures, data.people, data.backgrounds,
                               data.holdout_people, val.people_per_image, val.mask_strength)
    torch.set_num_threads(1)
    model = load_model(args.weights)
    report = {"images": len(heldout.images), "people": int(sum(len(a) for a in heldout.alphas)),
              "masks as alpha": {**summary(baseline_imq(heldout)),
                                 "pixel_MAD_x1000": pixel_mad([quantise(m) for m in heldout.masks], heldout)}}
    for mode in args.refine:
        predictions = predict(model, heldout, mode, tuple(args.channels))
        report[f"model, refine={mode}"] = {**summary(imq_of(predictions, heldout)),
                                           "pixel_MAD_x1000": pixel_mad(predictions, heldout)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
