"""The multi-instance refiner on person crops, in the frame's coordinates.

The refiner mixes features across people (sums and means over everyone), so all people
must be seen in one coordinate frame. Each window (or dense tile) is assembled for every
person from their crop; outside a person's crop their tri-matte is what a certain
network predicts away from them, T = 0, R = S, B = 1 - S with S the sum of everyone's
target matte there, and their feature is 0. The windows are chosen, the duplicates left
out and the two passes run exactly as in :mod:`refine_windowed` (the authors' schedule);
writes land only inside each person's crop. Nothing frame-sized is kept per person.
"""

from __future__ import annotations

import torch

from .crops import Box, Frame, PersonCrop
from .refine_windowed import (
    HALF_RESOLUTION_ABOVE,
    MARGIN,
    PRESENT,
    duplicates_from_counts,
    window_size,
    windows_from_disagreement,
)

# the refiner's receptive field: four 3x3 convolutions
HALO = 4
TILE = 256


def _paste_sum(crops: list[PersonCrop | None], shape, channel: int, device) -> torch.Tensor:
    total = torch.zeros(shape, device=device)
    for crop in crops:
        if crop is not None:
            total[crop.box.y0:crop.box.y1, crop.box.x0:crop.box.x1] += crop.trimatte[channel]
    return total


def disagreement(crops: list[PersonCrop | None], shape, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(|1 - sum T - mean B|, S = sum T) over the padded frame, people outside their crops filled."""
    count = len(crops)
    target = _paste_sum(crops, shape, 0, device)
    inside_b = _paste_sum(crops, shape, 2, device)
    covered = torch.zeros(shape, device=device)
    for crop in crops:
        if crop is not None:
            covered[crop.box.y0:crop.box.y1, crop.box.x0:crop.box.x1] += 1.0
    mean_b = (inside_b + (count - covered) * (1.0 - target)) / count
    return (1.0 - target - mean_b).abs(), target


def duplicates(crops: list[PersonCrop | None]) -> torch.Tensor:
    """:func:`refine_windowed.duplicate_people` computed on the crops."""
    count = len(crops)
    step = 2 if count > HALF_RESOLUTION_ABOVE else 1  # nearest 1/2 = every other pixel (crops start even)
    present = [None if crop is None else crop.trimatte[0, ::step, ::step] > PRESENT for crop in crops]
    boxes = [None if crop is None else Box(crop.box.y0 // step, crop.box.y0 // step + present[k].shape[0],
                                           crop.box.x0 // step, crop.box.x0 // step + present[k].shape[1])
             for k, crop in enumerate(crops)]
    intersection = torch.zeros(count, count)
    for i in range(count):
        for j in range(i, count):
            common = None if boxes[i] is None or boxes[j] is None else boxes[i].intersect(boxes[j])
            if common is not None:
                a = present[i][common.within(boxes[i])]
                b = present[j][common.within(boxes[j])]
                intersection[i, j] = intersection[j, i] = float(torch.count_nonzero(a & b))
    area = torch.tensor([0.0 if p is None else float(torch.count_nonzero(p)) for p in present])
    return duplicates_from_counts(intersection, area)


def _assemble(frame: Frame, crops, results, people: list[int], window: Box, filled: torch.Tensor):
    """(image, trimatte, feature) of ``people`` inside ``window``, each (A,.,h,w)."""
    height, width = window.shape
    image = frame.image(window).expand(len(people), -1, -1, -1)
    channels = next(crop.feature.shape[0] for crop in crops if crop is not None)
    device = image.device
    trimatte = torch.empty(len(people), 3, height, width, device=device)
    trimatte[:, 0] = 0.0
    trimatte[:, 1] = filled[window.y0:window.y1, window.x0:window.x1]
    trimatte[:, 2] = 1.0 - trimatte[:, 1]
    feature = torch.zeros(len(people), channels, height, width, device=device)
    for a, k in enumerate(people):
        crop = crops[k]
        common = None if crop is None else crop.box.intersect(window)
        if common is not None:
            inside, outside = common.within(crop.box), common.within(window)
            trimatte[a, :, outside[0], outside[1]] = results[k][:, inside[0], inside[1]]
            feature[a, :, outside[0], outside[1]] = crop.feature[:, inside[0], inside[1]].float()
    return image, trimatte, feature


def _write(crops, results, people, window: Box, target: Box, refined: torch.Tensor, writing) -> None:
    """Copy ``refined`` (for ``window``) inside ``target`` into the writing people's crops."""
    for a, k in enumerate(people):
        crop = crops[k]
        common = None if crop is None or not writing[k] else crop.box.intersect(target)
        if common is not None:
            inside, outside = common.within(crop.box), common.within(window)
            results[k][:, inside[0], inside[1]] = refined[a, :, outside[0], outside[1]]


def refine_windowed_crops(refiner, frame: Frame, crops: list[PersonCrop | None], local: bool = False) -> list[torch.Tensor | None]:
    """Refined tri-mattes, one (3,bh,bw) per person's crop (None without a crop)."""
    results = [None if crop is None else crop.trimatte.clone() for crop in crops]
    active = ~duplicates(crops)
    if not active.any():
        return results
    device = frame.masks.device
    scores, filled = disagreement(crops, frame.padded, device)
    size = window_size(len(crops), *frame.padded)
    windows = windows_from_disagreement(scores, size)
    del scores
    people = [k for k in range(len(crops)) if active[k]]
    writing = active.clone()
    for _ in range(2):
        before = [None if r is None else r[0].clone() for r in results]
        for x1, y1, x2, y2 in windows.tolist():
            window = Box(y1, y2, x1, x2)
            near = people if not local else [k for k in people if crops[k] is not None and crops[k].box.intersect(window)]
            if not near:
                continue
            refined = refiner(*_assemble(frame, crops, results, near, window, filled))
            inner = window.shrink(MARGIN)
            if inner is not None:
                _write(crops, results, near, window, inner, refined, writing)
        changed = torch.tensor([r is not None and bool((r[0] - b).abs().max() > 0.01)
                                for r, b in zip(results, before)])
        writing = writing & changed
        if not writing.any():
            break
    return results


def _band_in(crops: list[PersonCrop | None], tile: Box) -> bool:
    """Whether any person's OS1 band (where the refiner's answer is used) reaches into ``tile``."""
    for crop in crops:
        common = None if crop is None else crop.box.intersect(tile)
        if common is not None and bool(crop.band[0][common.within(crop.box)].any()):
            return True
    return False


def refine_dense_crops(refiner, frame: Frame, crops: list[PersonCrop | None],
                       local: bool = False) -> list[torch.Tensor | None]:
    """The dense refiner over the crops, in tiles with a halo: equal to one whole-frame pass with
    the fills. Tiles without any band pixel are skipped (their answer would never be used);
    ``local`` runs each tile with only the people whose crops reach it."""
    results = [None if crop is None else crop.trimatte.clone() for crop in crops]
    boxes = [crop.box for crop in crops if crop is not None]
    if not boxes:
        return results
    device = frame.masks.device
    _, filled = disagreement(crops, frame.padded, device)
    inputs = [None if crop is None else crop.trimatte for crop in crops]
    writing = torch.ones(len(crops), dtype=torch.bool)
    union = Box(min(b.y0 for b in boxes), max(b.y1 for b in boxes), min(b.x0 for b in boxes), max(b.x1 for b in boxes))
    for y in range(union.y0, union.y1, TILE):
        for x in range(union.x0, union.x1, TILE):
            tile = Box(y, min(y + TILE, union.y1), x, min(x + TILE, union.x1))
            if not _band_in(crops, tile):
                continue
            window = Box(max(tile.y0 - HALO, 0), min(tile.y1 + HALO, frame.padded[0]),
                         max(tile.x0 - HALO, 0), min(tile.x1 + HALO, frame.padded[1]))
            people = [k for k, crop in enumerate(crops)
                      if not local or (crop is not None and crop.box.intersect(window))]
            refined = refiner(*_assemble(frame, crops, inputs, people, window, filled))
            _write(crops, results, people, window, tile, refined, writing)
    return results
