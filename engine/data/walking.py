"""Clips of person layers that walk across a background and occlude each other, with
exact per-person ground truth: for testing propagation, ID stability and flicker.

    frames, alphas = walking_clip(layers, background, frames=30, height=360, width=640)
    # frames (T, H, W, 3) uint8 RGB, alphas (T, K, H, W) float32 (what is visible of each)

Each person keeps their index in every frame. People start on alternating sides and walk
through the centre, so their paths cross; nearer people (larger, feet lower) are
composited later and cover the others, as in :func:`engine.data.scene.composite_layers`.
A slow scale change and a small vertical bob make the motion more than a translation.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .scene import put_clip_frame


def _scaled(layer_colour: np.ndarray, layer_alpha: np.ndarray, target_h: float):
    ratio = target_h / layer_alpha.shape[0]
    size = (max(int(round(layer_alpha.shape[1] * ratio)), 1), max(int(round(layer_alpha.shape[0] * ratio)), 1))
    interp = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    alpha = np.clip(cv2.resize(np.ascontiguousarray(layer_alpha), size, interpolation=interp), 0.0, 1.0)
    colour = np.clip(cv2.resize(np.ascontiguousarray(layer_colour), size, interpolation=interp), 0.0, 1.0)
    return colour, alpha


def _paste(colour: np.ndarray, alpha: np.ndarray, height: int, width: int, centre_x: float, bottom: float):
    """Place a layer with sub-pixel accuracy (an affine warp): (colour (H,W,3), alpha (H,W))."""
    h, w = alpha.shape
    matrix = np.array([[1.0, 0.0, centre_x - w / 2.0], [0.0, 1.0, bottom - h]], np.float32)
    canvas_a = cv2.warpAffine(alpha, matrix, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    canvas_c = cv2.warpAffine(colour, matrix, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    return canvas_c, np.clip(canvas_a, 0.0, 1.0)


def walking_clip(layers, background: np.ndarray, frames: int = 30, height: int = 360, width: int = 640,
                 seed: int = 0, travel: tuple[float, float] = (0.35, 0.6)) -> tuple[np.ndarray, np.ndarray]:
    """``layers``: objects with ``colour`` (h,w,3) and ``alpha`` (h,w) in [0, 1] (e.g.
    :func:`engine.data.synth.load_people`); ``background`` (h,w,3) float in [0, 1], resized to
    the clip. ``travel``: the range of the distance each person walks, as a fraction of the width."""
    if frames < 1 or not layers:
        raise ValueError("walking_clip needs frames >= 1 and at least one layer")
    rng = np.random.default_rng(seed)
    back = cv2.resize(np.ascontiguousarray(background, np.float32), (width, height), interpolation=cv2.INTER_AREA)
    cast = []
    for k, layer in enumerate(layers):
        direction = 1 if k % 2 == 0 else -1
        depth = rng.uniform(0.0, 1.0)  # 1 = nearest
        size = height * (0.6 + 0.35 * depth)
        distance = width * rng.uniform(*travel)
        start = width / 2 - direction * distance / 2 + rng.uniform(-0.08, 0.08) * width
        colour = np.asarray(layer.colour, np.float32)
        alpha = np.asarray(layer.alpha, np.float32)
        if direction < 0:  # face the way they walk
            colour, alpha = colour[:, ::-1], alpha[:, ::-1]
        cast.append(dict(colour=colour, alpha=alpha, size=size, depth=depth, start=start,
                         speed=direction * distance / max(frames - 1, 1), growth=rng.uniform(-0.1, 0.1),
                         bottom=height * (0.98 + 0.12 * depth), phase=rng.uniform(0, 2 * math.pi)))
    order = sorted(range(len(cast)), key=lambda k: cast[k]["depth"])  # far first, near last
    images = np.empty((frames, height, width, 3), np.uint8)
    alphas = np.zeros((frames, len(cast), height, width), np.float32)
    for t in range(frames):
        colours, planes = [], []
        progress = t / max(frames - 1, 1)
        for k in order:
            c = cast[k]
            colour, alpha = _scaled(c["colour"], c["alpha"], c["size"] * (1.0 + c["growth"] * progress))
            bob = 0.012 * height * math.sin(c["phase"] + 0.9 * t)
            layer_c, layer_a = _paste(colour, alpha, height, width, c["start"] + c["speed"] * t, c["bottom"] + bob)
            colours.append(layer_c)
            planes.append(layer_a)
        put_clip_frame(images, alphas, t, order, back, colours, planes)
    return images, np.clip(alphas, 0.0, 1.0)
