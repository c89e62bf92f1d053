"""HIM2K-style synthesis: 2-5 people composited in turn onto a background.

    I_0 = B,   I_i = I_{i-1} (1 - alpha_i) + alpha_i F_i,   alpha_j *= (1 - alpha_i) for j < i

so later people cover earlier ones and each person's ground-truth alpha is what remains
visible of them (the per-person alphas sum to at most 1 and the image obeys
I = sum_k alpha_k F_k + (1 - sum_k alpha_k) B exactly, in float).

Person layers are (colour (h,w,3) float32 in [0,1], alpha (h,w) float32) pairs from
procedural figures (:mod:`engine.data.figures`), real photos whose foreground colour has
been estimated (:func:`load_people`) or any folder of the same layout. Each layer is
augmented (flip, scale, colour jitter) and placed at a random position (people cluster
around the centre so they overlap often); the background is a random crop of a photo or
a generated scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .figures import make_foreground
from .foreground import estimate_foreground
from .perturb import simulate_guidance
from .scene import composite_layers, make_background

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MIN_VISIBLE = 0.25   # a person must keep this fraction of their own alpha mass visible


@dataclass
class Layer:
    colour: np.ndarray   # (h, w, 3) float32 in [0, 1]
    alpha: np.ndarray    # (h, w) float32 in [0, 1]
    name: str = ""


@dataclass
class Composite:
    image: np.ndarray        # (H, W, 3) float32 in [0, 1]
    alphas: np.ndarray       # (K, H, W) float32, visible (occlusion-aware) alpha per person
    colours: np.ndarray      # (K, H, W, 3) float32, each person's foreground colour
    background: np.ndarray   # (H, W, 3) float32
    masks: np.ndarray | None = None   # (K, H, W) simulated guidance


# ---------------------------------------------------------------- sources


def tight_crop(colour: np.ndarray, alpha: np.ndarray, pad: int = 2) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(alpha > 1e-3)
    if len(xs) == 0:
        return colour, alpha
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, alpha.shape[0])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, alpha.shape[1])
    return colour[y0:y1, x0:x1].copy(), alpha[y0:y1, x0:x1].copy()


def procedural_layers(rng: np.random.Generator, count: int, size: int = 256) -> list[Layer]:
    """``count`` generated figures, each cropped to its extent."""
    layers = []
    for n in range(count):
        colour, alpha = make_foreground(rng, size)
        colour, alpha = tight_crop(colour, alpha)
        layers.append(Layer(colour, alpha, f"figure{n:04d}"))
    return layers


def _resize_max(image: np.ndarray, max_side: int, interpolation=cv2.INTER_AREA) -> np.ndarray:
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    ratio = max_side / max(h, w)
    return cv2.resize(image, (max(int(round(w * ratio)), 1), max(int(round(h * ratio)), 1)), interpolation=interpolation)


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_people(folder: str | Path, max_side: int = 640, names=None) -> list[Layer]:
    """Person layers from ``folder``: either ``images/NAME.jpg`` + ``alphas/NAME.png`` (the
    shared data layout) or RGBA PNGs directly in the folder. The foreground colour is
    estimated (blur fusion), never taken from the photo as it is."""
    folder = Path(folder)
    pairs: list[tuple[str, np.ndarray, np.ndarray]] = []
    if (folder / "images").is_dir() and (folder / "alphas").is_dir():
        for image_path in list_images(folder / "images"):
            alpha_path = next((folder / "alphas" / (image_path.stem + s) for s in (".png", ".jpg")
                               if (folder / "alphas" / (image_path.stem + s)).is_file()), None)
            if alpha_path is None or (names is not None and image_path.stem not in names):
                continue
            image = _read_rgb(image_path)
            alpha = cv2.imread(str(alpha_path), cv2.IMREAD_GRAYSCALE)
            if alpha is None or alpha.shape != image.shape[:2]:
                raise OSError(f"alpha {alpha_path} is unreadable or does not match its image")
            pairs.append((image_path.stem, image, alpha))
    else:
        for path in list_images(folder):
            if names is not None and path.stem not in names:
                continue
            rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
                continue
            pairs.append((path.stem, cv2.cvtColor(rgba[..., :3], cv2.COLOR_BGR2RGB), rgba[..., 3]))
    layers = []
    for name, image, alpha in pairs:
        image = _resize_max(image, max_side)
        alpha = _resize_max(alpha, max_side).astype(np.float32) / 255.0
        colour = estimate_foreground(image, alpha)
        colour, alpha = tight_crop(colour, alpha)
        layers.append(Layer(colour, alpha, name))
    return layers


def load_backgrounds(folder: str | Path, max_side: int = 640) -> list[np.ndarray]:
    return [_resize_max(_read_rgb(p), max_side).astype(np.float32) / 255.0 for p in list_images(Path(folder))]


# ---------------------------------------------------------------- augmentation


def colour_jitter(rng: np.random.Generator, colour: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Random hue shift, saturation and value scaling in HSV, then a little gamma."""
    hsv = cv2.cvtColor(np.ascontiguousarray(colour, np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(-25, 25) * strength, 360.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * (1.0 + rng.uniform(-0.35, 0.35) * strength), 0.0, 1.0)
    hsv[..., 2] = np.clip(hsv[..., 2] * (1.0 + rng.uniform(-0.3, 0.3) * strength), 0.0, 1.0)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(out, 0.0, 1.0) ** rng.uniform(1 - 0.2 * strength, 1 + 0.2 * strength)


def place_layer(rng: np.random.Generator, layer: Layer, height: int, width: int, centre_x: float,
                scale_range=(0.45, 1.05), jitter: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Flip, scale and jitter one layer and paste it into an (H,W) canvas.

    The person's height becomes a random fraction of the canvas height; their feet land
    near the bottom (sometimes below it, cut off by the frame, as in real footage).
    Returns (colour (H,W,3), alpha (H,W)).
    """
    colour, alpha = layer.colour, layer.alpha
    if rng.random() < 0.5:
        colour, alpha = colour[:, ::-1], alpha[:, ::-1]
    target_h = height * rng.uniform(*scale_range)
    ratio = target_h / alpha.shape[0]
    new_w, new_h = max(int(round(alpha.shape[1] * ratio)), 1), max(int(round(alpha.shape[0] * ratio)), 1)
    interp = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    alpha = np.clip(cv2.resize(np.ascontiguousarray(alpha), (new_w, new_h), interpolation=interp), 0.0, 1.0)
    colour = np.clip(cv2.resize(np.ascontiguousarray(colour), (new_w, new_h), interpolation=interp), 0.0, 1.0)
    if jitter:
        colour = colour_jitter(rng, colour)
    bottom = int(height * rng.uniform(0.85, 1.15))
    left = int(round(centre_x - new_w / 2))
    top = bottom - new_h
    canvas_a = np.zeros((height, width), np.float32)
    canvas_c = np.zeros((height, width, 3), np.float32)
    y0, y1 = max(top, 0), min(top + new_h, height)
    x0, x1 = max(left, 0), min(left + new_w, width)
    if y0 < y1 and x0 < x1:
        canvas_a[y0:y1, x0:x1] = alpha[y0 - top:y1 - top, x0 - left:x1 - left]
        canvas_c[y0:y1, x0:x1] = colour[y0 - top:y1 - top, x0 - left:x1 - left]
    return canvas_c, canvas_a


def random_background(rng: np.random.Generator, backgrounds: list[np.ndarray], height: int, width: int,
                      generated_prob: float = 0.3) -> np.ndarray:
    """A random scaled crop of a background photo (or a generated scene)."""
    if not backgrounds or rng.random() < generated_prob:
        return make_background(rng, height, width)
    source = backgrounds[int(rng.integers(len(backgrounds)))]
    sh, sw = source.shape[:2]
    scale = rng.uniform(max(height / sh, width / sw), max(height / sh, width / sw) * 2.5)
    ch, cw = min(int(np.ceil(height / scale)), sh), min(int(np.ceil(width / scale)), sw)
    y, x = int(rng.integers(0, sh - ch + 1)), int(rng.integers(0, sw - cw + 1))
    crop = source[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    out = cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 2.0))
    return np.clip(colour_jitter(rng, out, 0.5), 0.0, 1.0)


# ---------------------------------------------------------------- composition


def compose(rng: np.random.Generator, layers: list[Layer], background: np.ndarray,
            people: int | tuple[int, int] = (2, 5), scale_range=(0.45, 1.05), spread: float = 0.22,
            mask_strength: float | None = 1.0, max_tries: int = 4) -> Composite:
    """Composite ``people`` random layers over ``background`` (H,W,3) in turn.

    People whose visible alpha falls below :data:`MIN_VISIBLE` of their own (hidden behind
    others or cut off by the frame) make the draw be repeated (up to ``max_tries``
    times); if some remain, they are left out of both the image and the ground truth. ``mask_strength`` None skips the
    guidance simulation.
    """
    height, width = background.shape[:2]
    count = people if isinstance(people, int) else int(rng.integers(people[0], people[1] + 1))
    best = None
    for _ in range(max_tries):
        centre = width * rng.uniform(0.35, 0.65)
        colours, alphas = [], []
        for _k in range(count):
            layer = layers[int(rng.integers(len(layers)))]
            x = float(np.clip(rng.normal(centre, spread * width), 0.05 * width, 0.95 * width))
            colour, alpha = place_layer(rng, layer, height, width, x, scale_range)
            colours.append(colour)
            alphas.append(alpha)
        image, visible = composite_layers(background, colours, alphas)
        own = np.array([a.sum() for a in alphas])
        keep = [k for k in range(count) if own[k] > 0 and visible[k].sum() >= MIN_VISIBLE * own[k]]
        candidate = (image, visible, colours, alphas, keep)
        if best is None or len(keep) > len(best[4]):
            best = candidate
        if len(keep) == count:
            break
    image, visible, colours, alphas, keep = best
    if len(keep) < count:   # leave the hidden people out of the image too, so it matches the ground truth
        image, visible = composite_layers(background, [colours[k] for k in keep], [alphas[k] for k in keep])
        colours = [colours[k] for k in keep]
        keep = list(range(len(keep)))
    result = Composite(
        image=image.astype(np.float32),
        alphas=np.clip(visible[keep], 0.0, 1.0).astype(np.float32) if keep else np.zeros((0, height, width), np.float32),
        colours=np.stack([colours[k] for k in keep]).astype(np.float32) if keep
        else np.zeros((0, height, width, 3), np.float32),
        background=np.asarray(background, np.float32),
    )
    if mask_strength is not None:
        result.masks = simulate_guidance(rng, result.alphas, mask_strength)
    return result


def trimatte_targets(composite: Composite) -> tuple[np.ndarray, np.ndarray]:
    """Per-person tri-matte ground truth and colours.

    Returns (alpha (K,3,H,W) = [alpha_T, alpha_R, alpha_B], colours (K,3,H,W,3) =
    [F_T, F_R, F_B]) with F_R the alpha-weighted colour of the other people, so that
    alpha_T F_T + alpha_R F_R + alpha_B F_B = I for every person.
    """
    alphas, colours = composite.alphas, composite.colours
    total = alphas.sum(axis=0)
    weighted = (alphas[..., None] * colours).sum(axis=0)
    background = 1.0 - total
    out_a, out_c = [], []
    for k in range(len(alphas)):
        rest = np.clip(total - alphas[k], 0.0, None)
        rest_colour = (weighted - alphas[k][..., None] * colours[k]) / np.maximum(rest, 1e-6)[..., None]
        rest_colour = np.where(rest[..., None] > 1e-6, np.clip(rest_colour, 0.0, 1.0), 0.0)
        out_a.append(np.stack([alphas[k], rest, background]))
        out_c.append(np.stack([colours[k], rest_colour, composite.background]))
    if not out_a:
        h, w = composite.image.shape[:2]
        return np.zeros((0, 3, h, w), np.float32), np.zeros((0, 3, h, w, 3), np.float32)
    return np.stack(out_a).astype(np.float32), np.stack(out_c).astype(np.float32)


class LayerPool:
    """Foreground layers and backgrounds to draw composites from.

    ``figures`` generated figures (made once, then augmented on every use), plus real
    person layers from ``people_dir`` and photos from ``backgrounds_dir`` when those
    folders exist; ``real_share`` is the probability of drawing a real person (when any).
    """

    def __init__(self, seed: int = 0, figures: int = 200, figure_size: int = 256, people_dir=None,
                 backgrounds_dir=None, people_names=None, exclude_people=(), real_share: float = 0.5,
                 max_side: int = 640, generated_bg_prob: float = 0.3):
        rng = np.random.default_rng([seed, 7919])
        self.figures = procedural_layers(rng, figures, figure_size)
        self.people: list[Layer] = []
        if people_dir is not None and Path(people_dir).is_dir():
            self.people = [layer for layer in load_people(people_dir, max_side, people_names)
                           if layer.name not in set(exclude_people)]
        self.backgrounds: list[np.ndarray] = []
        if backgrounds_dir is not None and Path(backgrounds_dir).is_dir():
            self.backgrounds = load_backgrounds(backgrounds_dir, max_side)
        self.real_share = real_share if self.people else 0.0
        self.generated_bg_prob = generated_bg_prob if self.backgrounds else 1.0

    def draw_layers(self, rng: np.random.Generator, count: int) -> list[Layer]:
        out = []
        for _ in range(count):
            if self.people and (not self.figures or rng.random() < self.real_share):
                out.append(self.people[int(rng.integers(len(self.people)))])
            else:
                out.append(self.figures[int(rng.integers(len(self.figures)))])
        return out

    def composite(self, rng: np.random.Generator, height: int, width: int, people=(2, 5),
                  mask_strength: float | None = 1.0, scale_range=(0.45, 1.05)) -> Composite:
        count = people if isinstance(people, int) else int(rng.integers(people[0], people[1] + 1))
        layers = self.draw_layers(rng, max(count * 2, 1))
        background = random_background(rng, self.backgrounds, height, width, self.generated_bg_prob)
        return compose(rng, layers, background, count, scale_range=scale_range, mask_strength=mask_strength)
