"""Training batches from generated composites.

Every step draws its data from ``numpy.random.default_rng([seed, stage, step])``, so a
run is repeatable and a resumed run sees exactly the batches the uninterrupted run would
have seen, without storing any random state.

Stage 1 batches are person instances (one tri-mask each) pooled from as many composites
as needed; stage 2 batches are all the people of one composite, because the refiner
makes them interact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.data.synth import Composite, LayerPool, trimatte_targets
from engine.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD
from engine.inference.trimask import build_trimasks


@dataclass
class Batch:
    image: torch.Tensor      # (N,3,H,W) ImageNet-normalised, the net's input
    raw: torch.Tensor        # (N,3,H,W) in [0,1], the composition target
    trimask: torch.Tensor    # (N,3,H,W) guidance [T, R, B] from the simulated masks
    target: torch.Tensor     # (N,3,H,W) ground-truth tri-matte
    colours: torch.Tensor    # (N,3,3,H,W) [F_T, F_R, F_B]

    def to(self, device) -> "Batch":
        return Batch(*(getattr(self, f).to(device, non_blocking=True) for f in
                       ("image", "raw", "trimask", "target", "colours")))

    def __len__(self) -> int:
        return self.image.shape[0]


def normalise(image: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype).view(1, 3, 1, 1)
    return (image - mean) / std


def composite_batch(composite: Composite, channels=(1.0, 1.0, 1.0)) -> Batch:
    """All people of one composite as a batch (the image repeated per person)."""
    target, colours = trimatte_targets(composite)
    count = target.shape[0]
    raw = torch.from_numpy(np.ascontiguousarray(composite.image.transpose(2, 0, 1)))[None].expand(count, -1, -1, -1)
    trimask = build_trimasks(torch.from_numpy(composite.masks))
    trimask = trimask * torch.tensor(channels, dtype=trimask.dtype).view(1, 3, 1, 1)
    return Batch(
        image=normalise(raw.contiguous()),
        raw=raw.contiguous(),
        trimask=trimask.contiguous(),
        target=torch.from_numpy(target),
        colours=torch.from_numpy(np.ascontiguousarray(colours.transpose(0, 1, 4, 2, 3))),
    )


def concat(batches: list[Batch]) -> Batch:
    return Batch(*(torch.cat([getattr(b, f) for b in batches]) for f in
                   ("image", "raw", "trimask", "target", "colours")))


class BatchSource:
    """Draws the data of a given (stage, step) from a :class:`LayerPool`."""

    def __init__(self, pool: LayerPool, seed: int, crop: int, people=(2, 4), scale=(0.45, 1.05),
                 mask_strength: float = 1.0, channels=(1.0, 1.0, 1.0)):
        self.pool, self.seed, self.crop = pool, int(seed), int(crop)
        self.people = tuple(people)
        self.scale = tuple(scale)
        self.mask_strength = float(mask_strength)
        self.channels = tuple(float(c) for c in channels)

    def rng(self, stage: int, step: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stage, step])

    def composite(self, rng: np.random.Generator, people=None) -> Composite:
        while True:
            # guidance from nearly right to badly wrong, so the net sees every quality of mask
            strength = self.mask_strength * rng.uniform(0.25, 1.0)
            composite = self.pool.composite(rng, self.crop, self.crop, people or self.people,
                                            mask_strength=strength, scale_range=self.scale)
            if len(composite.alphas):
                return composite

    def stage1(self, step: int, size: int) -> tuple[Batch, np.random.Generator]:
        """``size`` person instances (from one or more composites) and the step's rng."""
        rng = self.rng(1, step)
        parts, total = [], 0
        while total < size:
            batch = composite_batch(self.composite(rng), self.channels)
            parts.append(batch)
            total += len(batch)
        batch = concat(parts)
        if len(batch) > size:
            keep = torch.from_numpy(np.sort(rng.choice(len(batch), size=size, replace=False)))
            batch = Batch(*(getattr(batch, f)[keep] for f in ("image", "raw", "trimask", "target", "colours")))
        return batch, rng

    def stage2(self, step: int, max_people: int) -> tuple[Batch, np.random.Generator]:
        """All people of one composite (at least two, at most ``max_people``)."""
        rng = self.rng(2, step)
        low, high = self.people
        high = max(min(high, max_people), 2)
        low = min(max(low, 2), high)
        return composite_batch(self.composite(rng, (low, high)), self.channels), rng
