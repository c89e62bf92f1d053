"""Stable person IDs over a shot: the same person keeps the same number in every frame.

Each frame's masks are matched to the tracks of the frames before by the Hungarian method
on a cost with three terms:

    cost = (1 - IoU(mask, predicted track mask))
         + distance_weight   * |box centre - predicted centre| / track box diagonal
         + appearance_weight * (1 - Bhattacharyya(colour histogram, track histogram))

The prediction moves the track's last mask and box centre by its smoothed velocity, so
two people who cross are told apart by where they are heading, and their clothes' colours
settle the cases where the masks overlap. A pair is only allowed when the predicted masks
overlap (IoU >= min_iou) or the centres are close (within ``max_distance`` box diagonals),
so a person who leaves and someone who enters elsewhere are not confused. A track that
finds no mask is kept ("lost") for ``max_lost`` frames, so someone missed for a few frames,
or hidden behind another person, gets their number back. Unmatched masks start new
tracks, numbered in order of first appearance: 1, 2, 3, ... (``person_01``, ...).

Masks are compared at a reduced size (longest side ``work_side``): exact enough for
matching and cheap at 4K.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

BLOCKED = 1e6
HIST_BINS = (8, 8, 8)


@dataclass
class Track:
    number: int
    mask: np.ndarray  # (h, w) bool at the working size
    centre: np.ndarray  # (2,) x, y in [0, 1]
    diagonal: float  # box diagonal in [0, 1] units
    histogram: np.ndarray | None = None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    lost: int = 0
    age: int = 1

    def offset(self) -> np.ndarray:
        return self.velocity * (self.lost + 1)

    def predicted_centre(self) -> np.ndarray:
        return self.centre + self.offset()


def small_masks(masks: np.ndarray, work_side: int) -> np.ndarray:
    masks = np.asarray(masks, dtype=np.float32)
    if masks.shape[0] == 0:
        return np.zeros(masks.shape, bool)
    height, width = masks.shape[1:]
    scale = min(1.0, work_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        masks = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_AREA) for m in masks])
    return masks >= 0.5


def mask_boxes(small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box centres (K, 2) and diagonals (K,) in [0, 1] units; NaN centre for an empty mask."""
    centres = np.full((small.shape[0], 2), np.nan)
    diagonals = np.zeros(small.shape[0])
    if small.shape[0] == 0:
        return centres, diagonals
    height, width = small.shape[1:]
    for k, mask in enumerate(small):
        ys = np.flatnonzero(mask.any(axis=1))
        xs = np.flatnonzero(mask.any(axis=0))
        if ys.size:
            centres[k] = ((xs[0] + xs[-1] + 1) / 2 / width, (ys[0] + ys[-1] + 1) / 2 / height)
            diagonals[k] = np.hypot((xs[-1] - xs[0] + 1) / width, (ys[-1] - ys[0] + 1) / height)
    return centres, diagonals


def colour_histograms(image: np.ndarray | None, small: np.ndarray) -> list[np.ndarray | None]:
    """Normalised RGB histograms of each person's pixels (None without an image)."""
    if image is None or small.shape[0] == 0:
        return [None] * small.shape[0]
    height, width = small.shape[1:]
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    image = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
    out = []
    for mask in small:
        if not mask.any():
            out.append(None)
            continue
        hist = cv2.calcHist([image], [0, 1, 2], mask.astype(np.uint8), list(HIST_BINS), [0, 256] * 3).ravel()
        out.append(hist / max(hist.sum(), 1.0))
    return out


def look_distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """1 - Bhattacharyya coefficient of two colour histograms: 0 the same look, 1 nothing alike
    (0 when either is unknown)."""
    return 0.0 if a is None or b is None else 1.0 - float(np.sum(np.sqrt(a * b)))


def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The mask moved by (dx, dy) pixels, zeros shifted in."""
    if dx == 0 and dy == 0:
        return mask
    out = np.zeros_like(mask)
    height, width = mask.shape
    if abs(dx) >= width or abs(dy) >= height:
        return out
    out[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
        mask[max(-dy, 0):height - max(dy, 0), max(-dx, 0):width - max(dx, 0)]
    return out


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boolean mask stacks (A, h, w) and (B, h, w)."""
    a = a.reshape(a.shape[0], -1).astype(np.float32)
    b = b.reshape(b.shape[0], -1).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


class Tracker:
    def __init__(self, max_lost: int = 12, min_iou: float = 0.05, max_distance: float = 1.0,
                 distance_weight: float = 0.5, appearance_weight: float = 1.0, work_side: int = 256,
                 lost_penalty: float = 0.05, smoothing: float = 0.5):
        self.max_lost = int(max_lost)
        self.min_iou = float(min_iou)
        self.max_distance = float(max_distance)
        self.distance_weight = float(distance_weight)
        self.appearance_weight = float(appearance_weight)
        self.work_side = int(work_side)
        self.lost_penalty = float(lost_penalty)
        self.smoothing = float(smoothing)
        self.tracks: list[Track] = []
        self.next_number = 1
        self.seen: list[int] = []  # numbers in order of first appearance

    def _saw(self, number: int) -> None:
        if number not in self.seen:
            self.seen.append(number)

    def seed(self, numbers: list[int], masks: np.ndarray, image: np.ndarray | None = None) -> None:
        """Start from known people (e.g. the last frame already written when a job resumes)."""
        small = small_masks(masks, self.work_side)
        centres, diagonals = mask_boxes(small)
        histograms = colour_histograms(image, small)
        for number, mask, centre, diagonal, hist in zip(numbers, small, centres, diagonals, histograms):
            if np.isnan(centre).any():
                continue
            self.tracks.append(Track(int(number), mask, centre, diagonal, hist))
            self._saw(int(number))
        if len(numbers):
            self.next_number = max(self.next_number, max(int(n) for n in numbers) + 1)

    def cost_matrix(self, small: np.ndarray, centres: np.ndarray, histograms) -> tuple[np.ndarray, np.ndarray]:
        """(cost, allowed) between the current masks (rows) and the tracks (columns)."""
        shape = (small.shape[0], len(self.tracks))
        if not self.tracks or small.shape[0] == 0:
            return np.zeros(shape), np.zeros(shape, bool)
        height, width = small.shape[1:]
        if self.tracks[0].mask.shape != (height, width):  # the frame size changed: positions only
            iou = np.zeros(shape)
        else:
            predicted = []
            for track in self.tracks:
                dx, dy = np.rint(track.offset() * (width, height)).astype(int)
                predicted.append(_shift(track.mask, int(dx), int(dy)))
            iou = mask_iou(small, np.stack(predicted))
        centre_t = np.stack([t.predicted_centre() for t in self.tracks])
        scale = np.array([max(t.diagonal, 0.05) for t in self.tracks])
        distance = np.linalg.norm(centres[:, None, :] - centre_t[None, :, :], axis=-1) / scale[None, :]
        distance = np.nan_to_num(distance, nan=np.inf)
        appearance = np.array([[look_distance(hist, track.histogram) for track in self.tracks] for hist in histograms])
        lost = np.array([t.lost for t in self.tracks], dtype=np.float64)
        cost = ((1.0 - iou) + self.distance_weight * np.minimum(distance, 2.0)
                + self.appearance_weight * appearance + self.lost_penalty * lost[None, :])
        allowed = (iou >= self.min_iou) | (distance <= self.max_distance * (1 + 0.25 * lost[None, :]))
        return cost, allowed

    def update(self, masks: np.ndarray, image: np.ndarray | None = None) -> list[int]:
        """Numbers for this frame's masks (K, H, W), in the masks' order. ``image`` (H, W, 3)
        uint8, when given, adds the colour of each person's pixels to the matching."""
        small = small_masks(masks, self.work_side)
        centres, diagonals = mask_boxes(small)
        histograms = colour_histograms(image, small)
        cost, allowed = self.cost_matrix(small, centres, histograms)
        numbers: list[int | None] = [None] * small.shape[0]
        matched: set[int] = set()
        if cost.size:
            rows, cols = linear_sum_assignment(np.where(allowed, cost, BLOCKED))
            for r, c in zip(rows, cols):
                if not allowed[r, c]:
                    continue
                track = self.tracks[c]
                step = (centres[r] - track.centre) / (track.lost + 1)
                track.velocity = self.smoothing * track.velocity + (1 - self.smoothing) * step
                track.centre = centres[r]
                track.diagonal = diagonals[r]
                track.mask = small[r]
                if histograms[r] is not None:
                    track.histogram = (histograms[r] if track.histogram is None
                                       else 0.7 * track.histogram + 0.3 * histograms[r])
                track.lost = 0
                track.age += 1
                numbers[r] = track.number
                matched.add(c)
        survivors = []
        for c, track in enumerate(self.tracks):
            if c not in matched:
                track.lost += 1
                if track.lost > self.max_lost:
                    continue
            survivors.append(track)
        self.tracks = survivors
        for r in range(small.shape[0]):
            if numbers[r] is None:
                number = self.next_number
                self.next_number += 1
                centre = centres[r] if not np.isnan(centres[r]).any() else np.array([0.5, 0.5])
                self.tracks.append(Track(number, small[r], centre, diagonals[r], histograms[r]))
                numbers[r] = number
        for number in numbers:
            self._saw(number)
        return [int(n) for n in numbers]
