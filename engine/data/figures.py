"""Procedural people: articulated soft-edged figures, backgrounds and moving clips.

No human matting data can be downloaded where this project is built and tested, so the
repository draws its own foreground layers. A figure is a stack of soft-edged primitives
(capsules for limbs and torso, an ellipse for the head) composited front-to-back in body
order, plus a hair cap and thin semi-transparent strands that give the fine, partially
transparent structures matting is about. Everything is numpy; a 256x384 clip of three
people takes a fraction of a second.

These figures are a stand-in, not people: they make training, tests and the demo run
offline. Real use trains on HIM2K or on the user's own layers (see docs/training.md).

Public entry points:

* :func:`random_figure` - appearance (colours, texture, proportions, hair).
* :func:`random_pose` / :func:`walking_pose` - joint angles.
* :func:`render_figure` - (alpha (H,W), colour (H,W,3)) on a canvas.
* :func:`make_foreground` - one figure on its own tight canvas, for the synthesiser.
* :func:`make_background` - a generated room/street-like background.
* :func:`make_clip` - frames + occlusion-aware per-person alphas of people walking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .scene import make_background, put_clip_frame, random_colour

__all__ = [
    "Figure",
    "Pose",
    "random_figure",
    "random_pose",
    "walking_pose",
    "render_figure",
    "make_foreground",
    "make_clip",
]


# ---------------------------------------------------------------- appearance / pose


@dataclass
class Figure:
    """How a figure looks: colours (RGB in [0,1]), proportions, texture and hair."""

    skin: np.ndarray
    shirt: np.ndarray
    trousers: np.ndarray
    hair: np.ndarray
    stripe_freq: float          # 0 = plain shirt
    stripe_phase: float
    width_scale: float          # body girth multiplier
    head_scale: float
    hair_long: float            # 0 = short, 1 = shoulder length
    strands: list = field(default_factory=list)   # [(anchor angle, length, curl, width, opacity)]
    noise_seed: int = 0


@dataclass
class Pose:
    """Angles in radians from straight down (positive = towards the facing side)."""

    upper_arm: tuple[float, float] = (0.15, -0.15)
    forearm: tuple[float, float] = (0.1, -0.1)
    thigh: tuple[float, float] = (0.1, -0.1)
    shin: tuple[float, float] = (0.0, 0.0)
    lean: float = 0.0
    head_tilt: float = 0.0
    facing: int = 1             # +1 faces right, -1 faces left


def random_figure(rng: np.random.Generator) -> Figure:
    """A random appearance: skin tone, clothes, texture, hair style and strands."""
    tone = rng.uniform(0.25, 0.95)
    skin = np.array([tone, tone * rng.uniform(0.7, 0.85), tone * rng.uniform(0.55, 0.7)], np.float32)
    hair_base = rng.choice([0.08, 0.2, 0.45, 0.75])
    hair = np.clip(np.array([hair_base * rng.uniform(0.9, 1.3), hair_base * rng.uniform(0.7, 1.0),
                             hair_base * rng.uniform(0.4, 0.8)]), 0, 1).astype(np.float32)
    strands = []
    for _ in range(int(rng.integers(18, 50))):
        strands.append((rng.uniform(-2.2, 2.2), rng.uniform(0.04, 0.22), rng.uniform(-1.5, 1.5),
                        rng.uniform(0.35, 1.1), rng.uniform(0.35, 0.95)))
    return Figure(
        skin=skin,
        shirt=random_colour(rng),
        trousers=random_colour(rng, 0.05, 0.7),
        hair=hair,
        stripe_freq=float(rng.choice([0.0, 0.0, rng.uniform(20, 60)])),
        stripe_phase=float(rng.uniform(0, 2 * math.pi)),
        width_scale=float(rng.uniform(0.8, 1.3)),
        head_scale=float(rng.uniform(0.9, 1.15)),
        hair_long=float(rng.uniform(0, 1)),
        strands=strands,
        noise_seed=int(rng.integers(1 << 30)),
    )


def walking_pose(phase: float, facing: int = 1, stride: float = 0.45, arm_swing: float = 0.4) -> Pose:
    """A walk cycle: legs swing opposite to each other, arms opposite to the legs."""
    s = math.sin(phase)
    knee = lambda p: max(0.0, math.sin(p - 0.8)) * 0.7  # noqa: E731 - bend on the swing
    return Pose(
        upper_arm=(-arm_swing * s, arm_swing * s),
        forearm=(-arm_swing * s + 0.35, arm_swing * s + 0.35),
        thigh=(stride * s, -stride * s),
        shin=(stride * s - knee(phase), -stride * s - knee(phase + math.pi)),
        lean=0.05,
        head_tilt=0.05 * math.sin(2 * phase),
        facing=facing,
    )


def random_pose(rng: np.random.Generator) -> Pose:
    """Standing, walking, waving or reaching: varied silhouettes."""
    kind = rng.integers(4)
    facing = int(rng.choice([-1, 1]))
    if kind == 0:
        return walking_pose(rng.uniform(0, 2 * math.pi), facing, rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.6))
    up = lambda: rng.uniform(-0.6, 0.6)  # noqa: E731
    arms = (rng.uniform(-0.4, 2.8) if kind >= 2 else up(), rng.uniform(-2.8, 0.4) if kind == 3 else up())
    return Pose(
        upper_arm=arms,
        forearm=(arms[0] + rng.uniform(-0.3, 1.2), arms[1] + rng.uniform(-1.2, 0.3)),
        thigh=(rng.uniform(-0.15, 0.45), rng.uniform(-0.45, 0.15)),
        shin=(rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2)),
        lean=float(rng.uniform(-0.15, 0.15)),
        head_tilt=float(rng.uniform(-0.25, 0.25)),
        facing=facing,
    )


# ---------------------------------------------------------------- rasterisation


def _limb_end(start: np.ndarray, angle: float, length: float) -> np.ndarray:
    return start + length * np.array([math.sin(angle), math.cos(angle)])


def _segment_distance(xx, yy, a, b):
    """Distance from every pixel to the segment a-b, and the position t in [0,1] along it."""
    ab = b - a
    denom = float(ab @ ab) or 1e-9
    t = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / denom, 0.0, 1.0)
    dx = xx - (a[0] + t * ab[0])
    dy = yy - (a[1] + t * ab[1])
    return np.sqrt(dx * dx + dy * dy), t


class _Canvas:
    """Premultiplied front-to-back-free 'over' accumulation of soft primitives."""

    def __init__(self, height: int, width: int):
        self.alpha = np.zeros((height, width), np.float32)
        self.premult = np.zeros((height, width, 3), np.float32)
        self.h, self.w = height, width

    def window(self, points: np.ndarray, pad: float):
        x0 = max(int(math.floor(points[:, 0].min() - pad)), 0)
        x1 = min(int(math.ceil(points[:, 0].max() + pad)) + 1, self.w)
        y0 = max(int(math.floor(points[:, 1].min() - pad)), 0)
        y1 = min(int(math.ceil(points[:, 1].max() + pad)) + 1, self.h)
        if x0 >= x1 or y0 >= y1:
            return None
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        return (slice(y0, y1), slice(x0, x1)), xx + 0.5, yy + 0.5

    def over(self, region, coverage: np.ndarray, colour: np.ndarray) -> None:
        cov = coverage[..., None]
        self.premult[region] = colour * cov + self.premult[region] * (1.0 - cov)
        self.alpha[region] = coverage + self.alpha[region] * (1.0 - coverage)


def _texture(figure: Figure, xx, yy, base: np.ndarray, unit: float, stripes: bool) -> np.ndarray:
    colour = np.broadcast_to(base, xx.shape + (3,)).copy()
    if stripes and figure.stripe_freq > 0:
        band = 0.5 + 0.5 * np.sin(yy / unit * figure.stripe_freq + figure.stripe_phase)
        colour *= (0.65 + 0.35 * band)[..., None]
    # cheap deterministic fabric grain
    grain = np.sin(xx * 1.7 + figure.noise_seed % 97) * np.sin(yy * 2.3 + figure.noise_seed % 89)
    colour *= (1.0 + 0.04 * grain)[..., None]
    return colour


def _capsule(canvas: _Canvas, figure: Figure, a, b, radius: float, base, unit: float,
             softness: float, stripes: bool = False) -> None:
    win = canvas.window(np.stack([a, b]), radius + 2 * softness + 1)
    if win is None:
        return
    region, xx, yy = win
    dist, _ = _segment_distance(xx, yy, a, b)
    coverage = np.clip(0.5 - (dist - radius) / softness, 0.0, 1.0).astype(np.float32)
    shade = 0.72 + 0.28 * np.clip(1.0 - dist / max(radius, 1e-3), 0.0, 1.0) ** 0.5
    colour = _texture(figure, xx, yy, base, unit, stripes) * shade[..., None]
    canvas.over(region, coverage, np.clip(colour, 0, 1))


def _ellipse(canvas: _Canvas, figure: Figure, centre, rx: float, ry: float, angle: float, base,
             unit: float, softness: float, half: str | None = None) -> None:
    r = max(rx, ry)
    win = canvas.window(centre[None], r + 2 * softness + 1)
    if win is None:
        return
    region, xx, yy = win
    c, s = math.cos(angle), math.sin(angle)
    u = (xx - centre[0]) * c + (yy - centre[1]) * s
    v = -(xx - centre[0]) * s + (yy - centre[1]) * c
    rho = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
    dist = (rho - 1.0) * min(rx, ry)
    coverage = np.clip(0.5 - dist / softness, 0.0, 1.0)
    if half == "top":   # hair cap: only the upper part of the head, with a soft hairline
        coverage *= np.clip(0.5 - (v + 0.15 * ry) / softness, 0.0, 1.0)
    shade = 0.75 + 0.25 * np.clip(1.0 - rho, 0.0, 1.0) ** 0.5
    colour = _texture(figure, xx, yy, base, unit, False) * shade[..., None]
    canvas.over(region, coverage.astype(np.float32), np.clip(colour, 0, 1))


def _strand(canvas: _Canvas, points: np.ndarray, width: float, opacity: float, colour) -> None:
    win = canvas.window(points, width + 2)
    if win is None:
        return
    region, xx, yy = win
    dist = np.full(xx.shape, np.inf, np.float32)
    for a, b in zip(points[:-1], points[1:]):
        dist = np.minimum(dist, _segment_distance(xx, yy, a, b)[0])
    # a line thinner than a pixel covers a fraction of it: partial alpha, as real hair does
    coverage = np.clip(width * 0.5 + 0.5 - dist, 0.0, 1.0) * min(width, 1.0) * opacity
    canvas.over(region, coverage.astype(np.float32), colour)


def render_figure(figure: Figure, pose: Pose, height: int, width: int, feet_x: float, feet_y: float,
                  size: float, softness: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Draw one figure whose feet stand at (feet_x, feet_y), ``size`` pixels tall.

    Returns (alpha (H,W) float32 in [0,1], colour (H,W,3) float32 in [0,1]); the colour is
    the un-premultiplied foreground (meaningful where alpha > 0, the base colour elsewhere).
    """
    canvas = _Canvas(height, width)
    unit = float(size)
    f = pose.facing
    top = np.array([feet_x, feet_y - unit], np.float64)

    def P(x: float, y: float) -> np.ndarray:   # body units -> pixels, with a lean about the feet
        px = x * f + pose.lean * f * (1.0 - y)
        return top + unit * np.array([px, y])

    soft = softness * max(unit / 160.0, 0.8)
    g = figure.width_scale
    shoulder = (P(-0.085 * g, 0.2), P(0.085 * g, 0.2))
    hip = (P(-0.055 * g, 0.52), P(0.055 * g, 0.52))
    neck, pelvis = P(0.0, 0.2), P(0.0, 0.5)

    def limb(start, a1, a2, l1, l2, r1, r2, colour1, colour2):
        a1f, a2f = a1 * f + pose.lean * f, a2 * f + pose.lean * f
        mid = _limb_end(start, a1f, l1 * unit)
        end = _limb_end(mid, a2f, l2 * unit)
        _capsule(canvas, figure, start, mid, r1 * unit, colour1, unit, soft)
        _capsule(canvas, figure, mid, end, r2 * unit, colour2, unit, soft)
        return end

    # back limbs first, then torso, then front limbs, then head and hair (painter's order)
    for side in (0, 1):
        if side == 1:
            _capsule(canvas, figure, P(0.0, 0.25), P(0.0, 0.47), 0.1 * g * unit, figure.shirt, unit, soft, True)
            _capsule(canvas, figure, hip[0], hip[1], 0.07 * g * unit, figure.trousers, unit, soft)
            _capsule(canvas, figure, P(0, 0.14), neck, 0.03 * unit, figure.skin, unit, soft)
        limb(hip[side], pose.thigh[side], pose.shin[side], 0.25, 0.24, 0.05 * g, 0.04 * g,
             figure.trousers, figure.trousers)
        hand = limb(shoulder[side], pose.upper_arm[side], pose.forearm[side], 0.16, 0.15, 0.032 * g, 0.027 * g,
                    figure.shirt, figure.skin)
        _ellipse(canvas, figure, hand, 0.028 * unit, 0.028 * unit, 0.0, figure.skin, unit, soft)
    del pelvis

    head_c = P(0.0, 0.085)
    hr = 0.058 * figure.head_scale * unit
    if figure.hair_long > 0.5:   # long hair falling behind the head and shoulders
        back = head_c + np.array([-0.2 * hr * f, 0.0])
        _capsule(canvas, figure, back, back + np.array([0.0, hr * (1.0 + 1.5 * figure.hair_long)]),
                 hr * 0.8, figure.hair, unit, soft)
    _ellipse(canvas, figure, head_c, hr * 0.85, hr, pose.head_tilt * f, figure.skin, unit, soft)
    _ellipse(canvas, figure, head_c + np.array([0.0, -0.06 * hr]), hr * 0.95, hr * 1.05,
             pose.head_tilt * f, figure.hair, unit, soft, half="top")

    # thin strands radiating from the scalp, curling as they go
    for angle, length, curl, w, opacity in figure.strands:
        base_angle = angle + pose.head_tilt * f
        start = head_c + hr * np.array([math.sin(base_angle) * 0.9, -math.cos(base_angle)])
        pts = [start]
        direction = base_angle
        side = math.copysign(1.0, base_angle) if base_angle else 1.0
        seg = length * unit / 5.0
        for _ in range(5):   # strands leave the scalp outwards and fall under gravity
            direction += 0.3 * (side * math.pi - direction) + curl * 0.15
            pts.append(pts[-1] + seg * np.array([math.sin(direction), -math.cos(direction)]))
        _strand(canvas, np.stack(pts), w * max(unit / 200.0, 0.6), opacity, figure.hair)

    alpha = np.clip(canvas.alpha, 0.0, 1.0)
    colour = canvas.premult / np.maximum(alpha, 1e-6)[..., None]
    colour = np.where(alpha[..., None] > 1e-6, colour, figure.shirt)
    return alpha.astype(np.float32), np.clip(colour, 0.0, 1.0).astype(np.float32)


def make_foreground(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One random figure in a random pose on a square canvas ``size`` px, feet near the bottom.

    Returns (colour (size,size,3) float32, alpha (size,size) float32), as a person layer.
    """
    figure = random_figure(rng)
    pose = random_pose(rng)
    tall = size * rng.uniform(0.75, 0.95)
    alpha, colour = render_figure(figure, pose, size, size, size * rng.uniform(0.4, 0.6),
                                  size * rng.uniform(0.93, 1.0), tall, softness=rng.uniform(0.8, 2.0))
    return colour, alpha


# ---------------------------------------------------------------- backgrounds and clips


def make_clip(frames: int = 8, height: int = 256, width: int = 384, people: int = 3,
              seed: int = 0, pace: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A generated clip of ``people`` figures walking across a generated background.

    Returns ``(frames (T,H,W,3) uint8 RGB, alphas (T,K,H,W) float32 in [0,1])``. The alphas
    are occlusion-aware (what is visible of each person; they sum to at most 1 per pixel),
    person k keeps index k in every frame, and people walk in alternating directions so
    that they cross and overlap. Deterministic for a given seed. ``pace`` scales the walk
    cycle per frame (1: 0.5-0.9 rad, a brisk cartoon walk for short clips; about 0.35 is a
    real walk at 25 fps), not how far people go.
    """
    if frames < 1 or height < 8 or width < 8 or people < 0:
        raise ValueError("make_clip needs frames >= 1, height/width >= 8 and people >= 0")
    rng = np.random.default_rng(seed)
    background = make_background(rng, height, width)
    cast = []
    for k in range(people):
        direction = 1 if k % 2 == 0 else -1
        size = height * rng.uniform(0.55, 0.85)
        feet_y = height * rng.uniform(0.88, 0.99)
        # start on one side of the centre and walk through it: the paths cross mid-clip
        x0 = width * (0.5 - direction * rng.uniform(0.12, 0.32)) + rng.uniform(-0.05, 0.05) * width
        speed = direction * width * rng.uniform(0.25, 0.5) / max(frames - 1, 1)
        cast.append(dict(figure=random_figure(rng), size=size, feet_y=feet_y, x0=x0, speed=speed,
                         phase0=rng.uniform(0, 2 * math.pi), cadence=pace * rng.uniform(0.5, 0.9),
                         facing=direction))
    # nearer people (feet lower in the frame) are composited later, so they cover the others
    order = sorted(range(people), key=lambda k: cast[k]["feet_y"])
    images = np.empty((frames, height, width, 3), np.uint8)
    alphas = np.zeros((frames, people, height, width), np.float32)
    for t in range(frames):
        colours, layer_alphas = [], []
        for k in order:
            c = cast[k]
            pose = walking_pose(c["phase0"] + c["cadence"] * t, c["facing"])
            bob = 0.01 * c["size"] * abs(math.sin(c["phase0"] + c["cadence"] * t))
            a, col = render_figure(c["figure"], pose, height, width, c["x0"] + c["speed"] * t,
                                   c["feet_y"] - bob, c["size"])
            colours.append(col)
            layer_alphas.append(a)
        put_clip_frame(images, alphas, t, order, background, colours, layer_alphas)
    return images, np.clip(alphas, 0.0, 1.0)
