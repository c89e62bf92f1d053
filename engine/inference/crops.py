"""Person crops: each person's network pass on the part of the frame around them.

Coordinates are those of the padded frame (``preprocess``: the working frame plus BORDER
px, and up to a multiple of 32, on every side), but the padded frame is never built:

- a person's crop is the bounding box of their guidance (mask > 0) grown by ``margin``
  pixels of context, its corners snapped outwards to the padded frame's 32-px grid and
  kept inside it. So every crop is a multiple of 32 and its stride-32 grid is the full
  frame's; a crop that covers the padded frame *is* the full-frame pass;
- a crop is gathered by index from the working frame: where it reaches past the frame's
  edge it holds the official reflect padding (numpy's repeated reflection), elsewhere the
  real neighbouring pixels;
- its tri-mask is the official one restricted to the crop: T = the person, R = the sum of
  everyone else's masks inside the crop (the mutual guidance), B = 1 - T - R (unclipped).

A person with empty guidance gets no crop (alpha 0 everywhere). The crops' merged
tri-mattes, OS1 bands and (for the refiner) decoder features are all that is kept, so
memory follows the people's area, not K times the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .preprocess import BORDER
from .progressive import progressive_merge
from .timing import stage

GRID = 32


@dataclass(frozen=True)
class Box:
    """Half-open rows y0:y1, columns x0:x1 of the padded frame."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    def intersect(self, other: Box) -> Box | None:
        y0, y1 = max(self.y0, other.y0), min(self.y1, other.y1)
        x0, x1 = max(self.x0, other.x0), min(self.x1, other.x1)
        return Box(y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None

    def within(self, outer: Box) -> tuple[slice, slice]:
        """This box's place inside ``outer``'s own array."""
        return slice(self.y0 - outer.y0, self.y1 - outer.y0), slice(self.x0 - outer.x0, self.x1 - outer.x0)

    def shrink(self, pixels: int) -> Box | None:
        if self.y1 - self.y0 <= 2 * pixels or self.x1 - self.x0 <= 2 * pixels:
            return None
        return Box(self.y0 + pixels, self.y1 - pixels, self.x0 + pixels, self.x1 - pixels)


def reflect_index(start: int, stop: int, size: int) -> np.ndarray:
    """Source rows (or columns) of padded positions start:stop: numpy's reflect, repeated."""
    position = np.arange(start, stop) - BORDER
    if size == 1:
        return np.zeros_like(position)
    period = 2 * (size - 1)
    position = np.abs(position) % period
    return np.where(position >= size, period - position, position)


def guidance_boxes(masks: torch.Tensor) -> list[tuple[int, int, int, int] | None]:
    """(K,h,w) masks -> per person (y0, y1, x0, x1) of mask > 0 in working coordinates, or None."""
    boxes = []
    for mask in masks:
        rows = torch.nonzero(mask.amax(dim=1) > 0).flatten()
        if rows.numel() == 0:
            boxes.append(None)
            continue
        cols = torch.nonzero(mask.amax(dim=0) > 0).flatten()
        boxes.append((int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1))
    return boxes


def crop_box(guide: tuple[int, int, int, int], margin: int, padded: tuple[int, int]) -> Box:
    """A guidance box grown by ``margin``, snapped out to the 32-px grid, inside the padded frame."""
    y0, y1, x0, x1 = (value + BORDER for value in guide)
    height, width = padded
    return Box(max((y0 - margin) // GRID * GRID, 0), min(-(-(y1 + margin) // GRID) * GRID, height),
               max((x0 - margin) // GRID * GRID, 0), min(-(-(x1 + margin) // GRID) * GRID, width))


def grow_box(box: Box, shape: tuple[int, int], padded: tuple[int, int]) -> Box:
    """``box`` enlarged around its centre to ``shape`` (multiples of 32), slid inside the frame."""
    def span(start, stop, size, limit):
        extra = ((size - (stop - start)) // 2) // GRID * GRID
        start = min(max(start - extra, 0), limit - size)
        return start, start + size
    y0, y1 = span(box.y0, box.y1, shape[0], padded[0])
    x0, x1 = span(box.x0, box.x1, shape[1], padded[1])
    return Box(y0, y1, x0, x1)


class Frame:
    """The normalised working frame and its people's masks, read in padded coordinates."""

    def __init__(self, image: torch.Tensor, masks: torch.Tensor, margin: int):
        """image (1,3,h,w) normalised, masks (K,h,w) float32, both on the pipeline's device."""
        from .preprocess import padded_size

        self.image_t = image
        self.masks = masks
        self.size = tuple(image.shape[-2:])
        self.padded = padded_size(*self.size)
        self.guides = guidance_boxes(masks)
        self.boxes = [None if guide is None else crop_box(guide, margin, self.padded) for guide in self.guides]

    @property
    def count(self) -> int:
        return self.masks.shape[0]

    @property
    def whole(self) -> Box:
        return Box(0, self.padded[0], 0, self.padded[1])

    def _index(self, box: Box) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.masks.device
        rows = torch.from_numpy(reflect_index(box.y0, box.y1, self.size[0])).to(device)
        cols = torch.from_numpy(reflect_index(box.x0, box.x1, self.size[1])).to(device)
        return rows, cols

    def image(self, box: Box) -> torch.Tensor:
        """(1,3,bh,bw) normalised pixels of ``box``."""
        rows, cols = self._index(box)
        return self.image_t[:, :, rows[:, None], cols[None, :]]

    def trimask(self, person: int, box: Box) -> torch.Tensor:
        """(1,3,bh,bw) [T, R, B] of ``person`` inside ``box``; others' masks only where they reach."""
        rows, cols = self._index(box)
        low_y, high_y = int(rows.min()), int(rows.max()) + 1
        low_x, high_x = int(cols.min()), int(cols.max()) + 1
        near = [k for k, guide in enumerate(self.guides)
                if guide is not None and guide[0] < high_y and low_y < guide[1] and guide[2] < high_x and low_x < guide[3]]
        if person not in near:
            near.append(person)
        people = torch.tensor(sorted(near), device=rows.device)
        masks = self.masks[people[:, None, None], rows[None, :, None], cols[None, None, :]]  # one gather
        target = masks[sorted(near).index(person)]
        total = masks.sum(dim=0)
        return torch.stack([target, total - target, 1.0 - total])[None]


@dataclass
class PersonCrop:
    """What one person's pass leaves for the rest of the pipeline."""

    box: Box
    trimatte: torch.Tensor       # (3,bh,bw) after the progressive merge
    band: torch.Tensor           # (1,bh,bw) bool: the OS1 band, where the refiner's answer is used
    feature: torch.Tensor | None  # (C,bh,bw) decoder feature, kept only for the refiner


def run_network(backend, frame: Frame, keep_feature: bool) -> list[PersonCrop | None]:
    """Every person's network pass and progressive merge on their crop, ``backend.chunk`` at a time.

    People batched together share one crop size: each crop is grown (real context, never
    padding) to the largest of its chunk.
    """
    people = [k for k, box in enumerate(frame.boxes) if box is not None]
    chunk = max(int(getattr(backend, "chunk", 1)), 1)
    crops: list[PersonCrop | None] = [None] * frame.count
    for start in range(0, len(people), chunk):
        group = people[start:start + chunk]
        shape = tuple(max(frame.boxes[k].shape[d] for k in group) for d in (0, 1))
        with stage("prepare"):
            boxes = [grow_box(frame.boxes[k], shape, frame.padded) for k in group]
            images = torch.cat([frame.image(box) for box in boxes])
            trimasks = torch.cat([frame.trimask(k, box) for k, box in zip(group, boxes)])
        with stage("network"):
            outputs = backend.matting(images, trimasks)
        del images, trimasks
        with stage("merge"):
            trimatte, band = progressive_merge(outputs)
        feature = outputs["feature"] if keep_feature else None
        del outputs
        for j, (k, box) in enumerate(zip(group, boxes)):
            crops[k] = PersonCrop(box, trimatte[j], band[j], None if feature is None else feature[j])
    return crops
