"""The HIM2K folder layout: reading it, and writing synthetic sets in it.

    ROOT/images/{comp,natural}/NAME.jpg          the composite (or natural photo)
    ROOT/alphas/{comp,natural}/NAME/NN.png       one 8-bit alpha per person (00.png, 01.png, ...)
    ROOT/masks/{comp,natural}/NAME/NN.png        optional guidance masks (written by ``instmatt synth``)

The subsets are ``comp`` (synthetic composites) and ``natural`` (real photos); a root
may hold either or both. Person files are sorted by name, so NN is the person's index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.errors import UserError
from engine.io.images import unit_range, write_png

SUBSETS = ("comp", "natural")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class Him2kItem:
    name: str
    subset: str
    image_path: Path
    alpha_paths: list[Path]
    mask_paths: list[Path]


@dataclass
class Him2kSample:
    name: str
    subset: str
    image: np.ndarray          # (H,W,3) uint8 RGB
    alphas: np.ndarray         # (K,H,W) float32 in [0,1]
    masks: np.ndarray | None   # (K,H,W) float32 in [0,1], when the set has guidance


def _pngs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")


class Him2kDataset:
    """Index of a HIM2K-layout folder; ``subset`` None reads both subsets."""

    def __init__(self, root: str | Path, subset: str | None = None):
        self.root = Path(root)
        if subset is not None and subset not in SUBSETS:
            raise UserError(f"HIM2K subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
        if not (self.root / "images").is_dir():
            raise UserError(f"{self.root} is not a HIM2K-layout folder (no images/ inside)")
        self.items: list[Him2kItem] = []
        for name in (subset,) if subset else SUBSETS:
            images = self.root / "images" / name
            if not images.is_dir():
                continue
            for path in sorted(images.iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                alphas = _pngs(self.root / "alphas" / name / path.stem)
                if not alphas:
                    continue   # an image without ground truth is not part of the benchmark
                masks = _pngs(self.root / "masks" / name / path.stem)
                self.items.append(Him2kItem(path.stem, name, path, alphas, masks if len(masks) == len(alphas) else []))
        if subset and not self.items:
            raise UserError(f"{self.root}: no images with alphas in subset '{subset}'")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Him2kSample:
        item = self.items[index]
        image = cv2.imread(str(item.image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"cannot read {item.image_path}")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        alphas = np.stack([_read_gray(p, image.shape[:2]) for p in item.alpha_paths])
        masks = np.stack([_read_gray(p, image.shape[:2]) for p in item.mask_paths]) if item.mask_paths else None
        return Him2kSample(item.name, item.subset, image, alphas, masks)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


def _read_gray(path: Path, shape) -> np.ndarray:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise UserError(f"cannot read {path}")
    if raw.ndim == 3:
        raw = raw[..., -1] if raw.shape[2] == 4 else raw[..., 0]
    alpha = unit_range(raw)
    if alpha.shape != tuple(shape):   # the HIM2K reference evaluates at the image's size
        alpha = cv2.resize(alpha, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return alpha


def _to_png(alpha: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(alpha, np.float32) * 255.0), 0, 255).astype(np.uint8)


def write_sample(root: str | Path, subset: str, name: str, image: np.ndarray, alphas: np.ndarray,
                 masks: np.ndarray | None = None, quality: int = 95) -> Path:
    """Write one image (uint8 RGB or float in [0,1]), its alphas and optional masks."""
    root = Path(root)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    image_path = write_png(root / "images" / subset / f"{name}.jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    for folder, stack in (("alphas", alphas), ("masks", masks)):
        if stack is None:
            continue
        out = root / folder / subset / name
        out.mkdir(parents=True, exist_ok=True)  # an empty folder still says "nobody here"
        for k, alpha in enumerate(stack):
            write_png(out / f"{k:02d}.png", _to_png(alpha))
    return image_path
