"""The multi-instance refiner run over windows, as the authors' inference runs it.

1. People whose target matte mostly duplicates another person's (mask-overlap ratio
   > 0.5 or overlapping two others by > 0.3) are left out, so a double detection does
   not cancel itself in the interaction.
2. Windows are centred on a 10-pixel grid and scored by |1 - sum_k T_k - mean_k B_k|,
   the disagreement of the people's mattes; windows scoring > 0.01 survive a
   non-maximum suppression (IoU 0.3 among windows whose centres are closer than half a
   window). The window is 320 px for up to 8 people, 256 up to 14, else 128.
3. Each window runs the refiner on its crop and replaces the prediction inside a
   10-pixel margin; windows are visited in score order and see earlier windows' results.
4. A second pass refines the people whose target changed by more than 0.01. The
   reference loops "until stable" but, because it keeps a reference to (not a copy of)
   the previous prediction, always stops after that second pass; we do exactly two.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

GRID = 10
MARGIN = 10
MIN_SCORE = 0.01
NMS_IOU = 0.3
PRESENT = 0.01
HALF_RESOLUTION_ABOVE = 8  # people


def window_size(people: int, height: int, width: int) -> int:
    size = 320 if people <= 8 else 256 if people <= 14 else 128
    return min(size, height, width)


def duplicate_people(target: torch.Tensor) -> torch.Tensor:
    """(K,1,H,W) target mattes -> (K,) bool, True for people to leave out."""
    present = target > PRESENT
    if target.shape[0] > HALF_RESOLUTION_ABOVE:  # the reference halves the resolution for many people
        present = F.interpolate(target, scale_factor=0.5) > PRESENT
    flat = present.flatten(1).float()
    return duplicates_from_counts(flat @ flat.t(), flat.sum(dim=1))


def duplicates_from_counts(intersection: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """(K,K) pixels present in both, (K,) pixels present -> (K,) bool, True for duplicates."""
    count = area.shape[0]
    overlap = intersection / (torch.minimum(area[:, None], area[None, :]) + 1.0)
    overlap.fill_diagonal_(0)
    bad = (overlap > 0.3).sum(dim=1) > 1
    for i in range(count):
        for j in range(i + 1, count):
            if overlap[i, j] > 0.5 or overlap[j, i] > 0.5:
                bad[i if overlap[i, j] > overlap[j, i] else j] = True
    return bad


def _suppress(boxes: np.ndarray, scores: np.ndarray, size: int) -> np.ndarray:
    """Greedy NMS in score order; suppression needs IoU > 0.3 *and* nearby centres."""
    # descending by reversing an ascending sort, as the reference does. Windows often tie
    # (flat disagreement) and the tie order decides which survive; numpy's default sort
    # orders ties differently across versions and CPUs, so a stable sort fixes the rule:
    # among equal scores the later window (raster order) comes first
    order = np.argsort(scores, kind="stable")[::-1]
    x1, y1, x2, y2 = boxes.T.astype(np.float64)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter_w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        inter_h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = inter_w * inter_h
        iou = inter / (areas[best] + areas[rest] - inter)
        near = ((np.abs((x1[best] + x2[best]) - (x1[rest] + x2[rest])) / 2 < size // 2)
                & (np.abs((y1[best] + y2[best]) - (y1[rest] + y2[rest])) / 2 < size // 2))
        order = rest[~((iou > NMS_IOU) & near)]
    return boxes[keep]


def select_windows(trimatte: torch.Tensor, size: int) -> np.ndarray:
    """(K,3,H,W) -> (M, 4) int windows x1, y1, x2, y2 (x2 - x1 = y2 - y1 = size)."""
    disagreement = (1.0 - trimatte[:, 0].sum(dim=0) - trimatte[:, 2].mean(dim=0)).abs()
    return windows_from_disagreement(disagreement, size)


def windows_from_disagreement(disagreement: torch.Tensor, size: int) -> np.ndarray:
    """(H,W) |1 - sum_k T_k - mean_k B_k| -> (M, 4) int windows x1, y1, x2, y2."""
    height, width = disagreement.shape
    # sample every GRID-th pixel, as nearest-neighbour downscaling by 1/GRID does
    scores = disagreement[::GRID, ::GRID][: max(height // GRID, 1), : max(width // GRID, 1)].cpu().numpy()
    ys, xs = np.mgrid[0:scores.shape[0], 0:scores.shape[1]]
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1) * GRID
    half = size // 2
    boxes = np.concatenate([centres - half, centres + half], axis=1)
    # slide windows that stick out back inside the frame
    shift_x = np.clip(-boxes[:, 0], 0, None) - np.clip(boxes[:, 2] - width, 0, None)
    shift_y = np.clip(-boxes[:, 1], 0, None) - np.clip(boxes[:, 3] - height, 0, None)
    boxes = boxes + np.stack([shift_x, shift_y, shift_x, shift_y], axis=1)
    scores = scores.ravel()
    valid = scores > MIN_SCORE
    if not valid.any():
        return boxes[[int(np.argmax(scores))]]
    return _suppress(boxes[valid], scores[valid], size)


def refine_windowed(refiner, image: torch.Tensor, trimatte: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
    """Run ``refiner(image, trimatte, feature)`` over windows; returns refined (K,3,H,W)."""
    height, width = trimatte.shape[-2:]
    result = trimatte.clone()
    active = ~duplicate_people(trimatte[:, 0:1])
    if not active.any():
        return result
    size = window_size(trimatte.shape[0], height, width)
    windows = select_windows(trimatte, size)
    writing = active.clone()
    for _ in range(2):
        before = result[:, 0].clone()
        for x1, y1, x2, y2 in windows.tolist():
            crop = (slice(None), slice(None), slice(y1, y2), slice(x1, x2))
            # crop first (a view), then pick the people: copies only the window
            refined = refiner(image[crop][active], result[crop][active], feature[crop][active])
            inner = refined[:, :, MARGIN:y2 - y1 - MARGIN, MARGIN:x2 - x1 - MARGIN]
            chosen = writing[active]
            result[writing, :, y1 + MARGIN:y2 - MARGIN, x1 + MARGIN:x2 - MARGIN] = inner[chosen]
        changed = (result[:, 0] - before).abs().flatten(1).amax(dim=1) > 0.01
        writing = writing & changed
        if not writing.any():
            break
    return result
