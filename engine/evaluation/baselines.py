"""Baseline predictions for the IMQ table: rows that InstMatt has to beat.

- ``masks_as_alpha``: the guidance mask itself is the alpha (the paper's "Mask R-CNN
  only" row).
- ``guided_filter_alpha``: a classical refinement. The mask is filtered with He et al.'s
  guided filter (colour guide), and the result is used only in a band around the mask's
  edge (mask dilated minus mask eroded); inside the band's core the alpha is 1, outside 0.

Command line, for a HIM2K root with images and a folder of guidance masks laid out like
the alphas (MASKROOT/SUBSET/NAME/NN.png):

    python -m engine.evaluation.baselines --gt HIM2K --masks MASKROOT --method guided --out PRED
    instmatt eval --pred PRED --gt HIM2K
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from engine.errors import InputFileError, UserError
from engine.io.images import alpha_to_png, unit_range, write_png

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _mask_stack(masks, shape: tuple[int, int]) -> np.ndarray:
    """(K, H, W) float32 in [0, 1] from uint8 (0..255), uint16, bool or float masks."""
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"masks: expected (K, H, W), got shape {masks.shape}")
    if masks.shape[0] and masks.shape[1:] != tuple(shape):
        raise ValueError(f"masks are {masks.shape[2]}x{masks.shape[1]}, the image is {shape[1]}x{shape[0]}")
    return unit_range(masks)


def masks_as_alpha(image, masks) -> np.ndarray:
    """The "Mask R-CNN only" row: each guidance mask is its person's alpha. (K, H, W)."""
    return _mask_stack(masks, np.asarray(image).shape[:2])


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window; reflected edges keep the mean unbiased near borders."""
    return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def default_radius(shape: tuple[int, int]) -> int:
    """About 1 % of the long side (19 px at 1080p, at least 4): the scale of hair and mask slop."""
    return max(4, int(round(0.01 * max(shape))))


def guided_filter_alpha(image, masks, radius: int | None = None, eps: float = 1e-3, band: int | None = None) -> np.ndarray:
    """Guided-filter refinement of each mask inside a band around its edge. (K, H, W).

    image: (H, W, 3) uint8 RGB (or float in [0, 1]); masks: (K, H, W). The colour guided
    filter fits, per window, alpha ~ a . I + b; the guide statistics are shared by all
    masks, so each extra person costs a handful of box filters. ``band`` (pixels each
    side of the edge, default 2 * radius) limits the change to where masks are unsure.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"image: expected (H, W, 3) RGB, got shape {image.shape}")
    shape = image.shape[:2]
    masks = _mask_stack(masks, shape)
    if len(masks) == 0:
        return masks
    radius = default_radius(shape) if radius is None else int(radius)
    band = 2 * radius if band is None else int(band)
    guide = image[:, :, :3].astype(np.float32)
    if image.dtype == np.uint8:
        guide /= 255
    channels = [np.ascontiguousarray(guide[:, :, c]) for c in range(3)]
    means = [_box(c, radius) for c in channels]

    # covariance of the guide in every window, + eps on the diagonal, and its inverse
    def cov(i: int, j: int) -> np.ndarray:
        return _box(channels[i] * channels[j], radius) - means[i] * means[j]

    s00, s01, s02 = cov(0, 0) + eps, cov(0, 1), cov(0, 2)
    s11, s12, s22 = cov(1, 1) + eps, cov(1, 2), cov(2, 2) + eps
    inv00, inv01, inv02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    inv11, inv12, inv22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    det = s00 * inv00 + s01 * inv01 + s02 * inv02  # > 0: eps keeps the matrix positive definite
    inverse = [[inv00, inv01, inv02], [inv01, inv11, inv12], [inv02, inv12, inv22]]

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    out = np.empty_like(masks)
    for k, mask in enumerate(masks):
        mean_p = _box(mask, radius)
        cov_ip = [_box(channels[c] * mask, radius) - means[c] * mean_p for c in range(3)]
        a = [sum(inverse[r][c] * cov_ip[c] for c in range(3)) / det for r in range(3)]
        b = mean_p - sum(a[c] * means[c] for c in range(3))
        refined = sum(_box(a[c], radius) * channels[c] for c in range(3)) + _box(b, radius)
        # the trimask: sure foreground (eroded), sure background (outside the dilation)
        fg = (mask >= 0.5).astype(np.uint8)
        sure_fg = cv2.erode(fg, kernel).astype(bool)
        unsure = cv2.dilate(fg, kernel).astype(bool) & ~sure_fg
        alpha = sure_fg.astype(np.float32)
        alpha[unsure] = np.clip(refined[unsure], 0.0, 1.0)
        out[k] = alpha
    return out


METHODS = {"mask": masks_as_alpha, "guided": guided_filter_alpha}


def _find_image(images: Path, name: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (images / f"{name}{suffix}", images / f"{name}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def _read_image_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputFileError(path, "cannot be read as an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_alpha(path: Path, alpha: np.ndarray) -> None:
    """8-bit PNG, the format the HIM2K ground truth and the authors' reader use."""
    try:
        write_png(path, alpha_to_png(alpha, 8))
    except OSError as exc:
        raise InputFileError(path, f"cannot write: {exc.strerror or exc}") from None


def produce(gt: Path, masks_root: Path, out: Path, method: str = "guided", subsets=None, progress: bool = True, **options) -> int:
    """Write baseline alphas for every MASKROOT/SUBSET/NAME folder; returns the image count."""
    from engine.evaluation.evaluate import (
        read_alpha,  # one PNG reader with one set of messages
    )

    if method not in METHODS:
        raise UserError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    if not masks_root.is_dir():
        raise InputFileError(masks_root, "mask folder not found")
    images_root = gt / "images"
    if method != "mask" and not images_root.is_dir():
        raise InputFileError(images_root, "image folder not found (expected GT/images/SUBSET/NAME.jpg)")
    names = sorted(d.name for d in masks_root.iterdir() if d.is_dir())
    if subsets:
        names = [s for s in names if s in subsets]
    jobs = [(s, d) for s in names for d in sorted(p for p in (masks_root / s).iterdir() if p.is_dir())]
    if not jobs:
        raise InputFileError(masks_root, "no SUBSET/NAME mask folders found")
    bar = tqdm(total=len(jobs), desc=method, unit="img", disable=not progress)
    for subset, mask_dir in jobs:
        mask_paths = sorted(p for p in mask_dir.iterdir() if p.suffix.lower() == ".png")
        masks = [read_alpha(p) for p in mask_paths]
        image = None
        image_path = _find_image(images_root / subset, mask_dir.name) if images_root.is_dir() else None
        if image_path is not None:
            image = _read_image_rgb(image_path)
        elif method != "mask":
            raise InputFileError(images_root / subset / f"{mask_dir.name}.jpg", "image not found for these masks")
        if image is not None:
            # detector masks may come at another size: nearest, as the authors' inference does
            h, w = image.shape[:2]
            masks = [m if m.shape == (h, w) else cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) for m in masks]
        elif masks:
            image = np.zeros(masks[0].shape + (3,), dtype=np.uint8)  # "mask" needs only the size
        for m, p in zip(masks, mask_paths):
            if m.shape != masks[0].shape:
                raise InputFileError(p, f"size {m.shape[1]}x{m.shape[0]} differs from {mask_paths[0].name}")
        target = out / subset / mask_dir.name
        target.mkdir(parents=True, exist_ok=True)  # an empty folder still says "nobody found"
        if masks:
            alphas = METHODS[method](image, np.stack(masks), **(options if method == "guided" else {}))
            for alpha, p in zip(alphas, mask_paths):
                write_alpha(target / p.name, alpha)
        bar.update(1)
    return len(jobs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.evaluation.baselines", description=__doc__.splitlines()[0])
    parser.add_argument("--gt", required=True, type=Path, help="HIM2K root with images/SUBSET/NAME.jpg")
    parser.add_argument("--masks", required=True, type=Path, help="guidance masks: MASKROOT/SUBSET/NAME/NN.png")
    parser.add_argument("--method", choices=sorted(METHODS), default="guided")
    parser.add_argument("--out", required=True, type=Path, help="where to write PRED/SUBSET/NAME/NN.png")
    parser.add_argument("--radius", type=int, default=None, help="guided filter radius (default 1%% of the long side, at least 4)")
    parser.add_argument("--eps", type=float, default=1e-3, help="guided filter regularisation")
    parser.add_argument("--band", type=int, default=None, help="edge band half width in pixels (default 2 * radius)")
    parser.add_argument("--subset", action="append", default=None, help="only this subset (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        n = produce(args.gt, args.masks, args.out, args.method, args.subset, progress=not args.quiet,
                    radius=args.radius, eps=args.eps, band=args.band)
    except UserError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.method} baseline alphas for {n} images under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
