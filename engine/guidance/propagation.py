"""Dense optical flow between consecutive frames, with the pixels it cannot track marked.

    motion = FlowEstimator().between(previous_rgb8, current_rgb8)
    motion.warp(previous_alphas)                  # (K, H, W) mattes moved onto this frame
    motion.occluded                               # (H, W) no reliable match in the frame before

Chatter control (:mod:`engine.inference.temporal`) and the warp error
(:mod:`engine.evaluation.video`) use it; people are carried through a shot by
:mod:`engine.guidance.layered`.

The flow is OpenCV's DIS (no weights), computed on grey frames scaled down so the longest
side is about ``FLOW_SIDE`` pixels (DIS costs grow with the pixel count; the guidance is a
chatter control and the flicker measure need no finer motion), then upsampled to the frame. Both directions
are computed: the backward flow (this frame -> the one before) pulls the previous mattes
onto this frame, and its disagreement with the forward flow marks the pixels that were
not visible in the previous frame (occluded or revealed), where a warp carries someone
else's pixels (Sundaram et al. 2010's forward-backward check).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FLOW_SIDE = 640
# forward-backward check: |b + f|^2 > RELATIVE (|b|^2 + |f|^2) + ABSOLUTE (flow-image pixels^2)
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_ABSOLUTE = 0.5
# a match whose grey levels differ by more than this (of 255, after a light blur) is wrong:
# typically background dragged along with a moving person by the smooth flow
PHOTOMETRIC = 24.0


def grey_small(rgb8: np.ndarray, side: int = FLOW_SIDE) -> np.ndarray:
    """uint8 grey frame with its longest side at most ``side`` (area-averaged)."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb8), cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    scale = min(1.0, side / max(height, width))
    if scale < 1.0:
        size = (max(int(round(width * scale)), 8), max(int(round(height * scale)), 8))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey


def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs, ys


def _sample(field: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, border_value: float = 0.0) -> np.ndarray:
    return cv2.remap(field, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=border_value)


@dataclass
class Motion:
    """How one frame's pixels came from the frame before.

    ``backward[y, x]`` = (dx, dy): this frame's pixel (x, y) was at (x + dx, y + dy) in the
    previous frame. ``occluded`` marks pixels with no reliable match in the previous frame.
    """

    backward: np.ndarray  # (H, W, 2) float32, full-resolution pixels
    occluded: np.ndarray  # (H, W) bool
    previous_grey: np.ndarray | None = None  # (H, W) uint8, for checking a warp against the image
    current_grey: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.backward.shape[:2]

    def maps(self) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = _pixel_grid(*self.shape)
        return xs + self.backward[..., 0], ys + self.backward[..., 1]

    def warp(self, planes: np.ndarray, border_value: float = 0.0) -> np.ndarray:
        """The previous frame's planes ((H,W), (H,W,C) or (K,H,W)) moved onto this frame."""
        planes = np.asarray(planes)
        map_x, map_y = self.maps()
        if planes.ndim == 3 and planes.shape[1:] == self.shape:
            out = np.empty(planes.shape, np.float32)
            for k, plane in enumerate(planes):
                out[k] = _sample(np.ascontiguousarray(plane, np.float32), map_x, map_y, border_value)
            return out
        if planes.shape[:2] != self.shape:
            raise ValueError(f"cannot warp planes of shape {planes.shape} with a {self.shape[1]}x{self.shape[0]} flow")
        return _sample(np.ascontiguousarray(planes, np.float32), map_x, map_y, border_value)


def consistency(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """True where the forward flow, sampled where the backward flow points, brings the pixel back."""
    height, width = backward.shape[:2]
    xs, ys = _pixel_grid(height, width)
    map_x, map_y = xs + backward[..., 0], ys + backward[..., 1]
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    there = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    loop = backward + there
    err = (loop ** 2).sum(-1)
    bound = CONSISTENCY_RELATIVE * ((backward ** 2).sum(-1) + (there ** 2).sum(-1)) + CONSISTENCY_ABSOLUTE
    return inside & (err <= bound)


def photometric(previous_grey: np.ndarray, current_grey: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """True where the pixel the backward flow points at looks like this one."""
    height, width = backward.shape[:2]
    xs, ys = _pixel_grid(height, width)
    prev = cv2.GaussianBlur(previous_grey, (3, 3), 0).astype(np.float32)
    cur = cv2.GaussianBlur(current_grey, (3, 3), 0).astype(np.float32)
    pulled = cv2.remap(prev, xs + backward[..., 0], ys + backward[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return np.abs(pulled - cur) <= PHOTOMETRIC


class FlowEstimator:
    """DIS optical flow between consecutive frames, on small grey frames, both directions."""

    PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}

    def __init__(self, side: int = FLOW_SIDE, preset: str = "medium"):
        if preset not in self.PRESETS:
            raise ValueError(f"flow preset must be one of {', '.join(self.PRESETS)}, got {preset!r}")
        if side < 16:
            raise ValueError(f"flow side must be at least 16 pixels, got {side}")
        self.side = int(side)
        self._dis = cv2.DISOpticalFlow_create(self.PRESETS[preset])

    def between(self, previous_rgb8: np.ndarray, current_rgb8: np.ndarray) -> Motion:
        if previous_rgb8.shape != current_rgb8.shape:
            raise ValueError(f"frames differ in size: {previous_rgb8.shape} and {current_rgb8.shape}")
        height, width = current_rgb8.shape[:2]
        prev_small, cur_small = grey_small(previous_rgb8, self.side), grey_small(current_rgb8, self.side)
        backward = self._dis.calc(cur_small, prev_small, None)
        forward = self._dis.calc(prev_small, cur_small, None)
        reliable = consistency(backward, forward) & photometric(prev_small, cur_small, backward)
        small_h, small_w = backward.shape[:2]
        if (small_h, small_w) != (height, width):
            scale = np.array([width / small_w, height / small_h], np.float32)
            backward = cv2.resize(backward, (width, height), interpolation=cv2.INTER_LINEAR) * scale
            reliable = cv2.resize(reliable.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        return Motion(np.ascontiguousarray(backward, np.float32), ~reliable,
                      cv2.cvtColor(np.ascontiguousarray(previous_rgb8), cv2.COLOR_RGB2GRAY),
                      cv2.cvtColor(np.ascontiguousarray(current_rgb8), cv2.COLOR_RGB2GRAY))
