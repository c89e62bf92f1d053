"""Generated scenes: smooth textured backgrounds and layers composited over them in order."""

from __future__ import annotations

import cv2
import numpy as np


def random_colour(rng: np.random.Generator, lo: float = 0.05, hi: float = 0.95) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)



def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    grid = rng.uniform(-1, 1, (cells, max(int(cells * width / max(height, 1)), 2))).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def make_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A plausible indoor/street scene: wall + floor, shapes, blur and noise. (H,W,3) float32."""
    horizon = int(height * rng.uniform(0.5, 0.8))
    wall, floor = random_colour(rng, 0.2, 0.9), random_colour(rng, 0.1, 0.7)
    img = np.empty((height, width, 3), np.float32)
    ramp = np.linspace(1.1, 0.85, max(horizon, 1), dtype=np.float32)[:, None, None]
    img[:horizon] = wall * ramp
    img[horizon:] = floor * np.linspace(0.8, 1.05, height - horizon, dtype=np.float32)[:, None, None]
    for _ in range(int(rng.integers(3, 9))):   # furniture, windows, posters, plants
        colour = tuple(float(c) for c in random_colour(rng))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 16, width // 3)), int(rng.integers(height // 16, height // 2))
        if rng.random() < 0.6:
            cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1)
        else:
            cv2.ellipse(img, (x, y), (w // 2, h // 2), float(rng.uniform(0, 180)), 0, 360, colour, -1)
    for _ in range(int(rng.integers(0, 6))):   # thin lines: edges that are not people
        colour = tuple(float(c) for c in random_colour(rng))
        cv2.line(img, (int(rng.integers(0, width)), int(rng.integers(0, height))),
                 (int(rng.integers(0, width)), int(rng.integers(0, height))), colour, int(rng.integers(1, 3)))
    img *= (1.0 + 0.15 * _smooth_noise(rng, height, width, 6))[..., None]
    img += 0.03 * _smooth_noise(rng, height, width, max(height // 4, 2))[..., None]
    blur = float(rng.uniform(0.3, 2.0))   # depth of field
    img = cv2.GaussianBlur(img, (0, 0), blur)
    return np.clip(img, 0.0, 1.0)


def composite_layers(background: np.ndarray, colours, alphas) -> tuple[np.ndarray, np.ndarray]:
    """Composite layers in order, each over the ones before; returns (image, alphas (K,H,W)).

    I_i = I_{i-1} (1 - alpha_i) + alpha_i F_i and, for every earlier layer j,
    alpha_j *= (1 - alpha_i), so the returned alphas are what is visible of each layer:
    they satisfy I = sum_k alpha_k F_k + (1 - sum_k alpha_k) B and sum to at most 1.
    """
    image = np.asarray(background, np.float32).copy()
    visible: list[np.ndarray] = []
    for colour, alpha in zip(colours, alphas):
        a = np.asarray(alpha, np.float32)
        image = image * (1.0 - a[..., None]) + a[..., None] * colour
        visible = [v * (1.0 - a) for v in visible]
        visible.append(a.copy())
    stack = np.stack(visible) if visible else np.zeros((0,) + image.shape[:2], np.float32)
    return image, stack


def put_clip_frame(images: np.ndarray, alphas: np.ndarray, t: int, order, background: np.ndarray,
                   colours, planes) -> None:
    """Composite frame ``t`` of a clip (layers in ``order``, later ones in front) into
    ``images[t]`` (uint8) and give each person ``order[slot]`` their visible alpha."""
    image, visible = composite_layers(background, colours, planes)
    for slot, k in enumerate(order):
        alphas[t, k] = visible[slot]
    images[t] = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
