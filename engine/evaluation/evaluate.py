"""``instmatt eval``: IMQ of predicted alphas against a HIM2K-layout ground truth.

GT/alphas/SUBSET/NAME/NN.png is the ground truth (one PNG per person), and predictions
are laid out the same way under PRED: PRED/SUBSET/NAME/NN.png. Every folder under
GT/alphas is a subset (``comp``, ``natural``, ...). File names inside an image folder
need not match: predictions are matched to people by mask IoU.

Unlike the authors' script, an image whose prediction folder is missing (or empty) is not
skipped: its people count as missed (FN), and the report says how many such images there
were. ``--skip-missing`` restores the authors' behaviour, to compare with their numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from engine.errors import InputFileError, UserError
from engine.evaluation.metrics import ERRORS, IMQAccumulator
from engine.io.images import unit_range

TABLE_COLUMNS = [f"IMQ_{e}" for e in ERRORS] + [f"MQ_{e}" for e in ERRORS] + ["RQ"]


def read_alpha(path: Path) -> np.ndarray:
    """(H, W) float32 in [0, 1] from an 8- or 16-bit PNG; one clear error otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file not found")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputFileError(path, "cannot be read as an image (corrupt or not a PNG)")
    if image.ndim == 3:
        # colour mattes: grey conversion, as the reference's cv2.imread(path, 0) does
        if image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
        elif image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif image.shape[2] == 1:
            image = image[:, :, 0]
        else:
            raise InputFileError(path, f"unsupported number of channels {image.shape[2]}")
    if image.dtype in (np.uint8, np.uint16):
        return unit_range(image)
    raise InputFileError(path, f"unsupported pixel type {image.dtype}; expected an 8-bit or 16-bit PNG")


def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))


def _read_stack(paths: list[Path], size: tuple[int, int] | None, size_of: Path | None):
    """Read mattes that must all have ``size`` (from ``size_of``); returns (stack, size, first path)."""
    alphas = []
    for path in paths:
        alpha = read_alpha(path)
        if size is None:
            size, size_of = alpha.shape, path
        elif alpha.shape != size:
            raise InputFileError(
                path,
                f"size {alpha.shape[1]}x{alpha.shape[0]} does not match {size_of} ({size[1]}x{size[0]})",
            )
        alphas.append(alpha)
    stack = np.stack(alphas) if alphas else np.zeros((0,) + (size or (0, 0)), dtype=np.float32)
    return stack, size, size_of


def alphas_root(gt: Path) -> Path:
    """GT/alphas for a HIM2K root; a folder already holding the subsets is taken as is."""
    if not gt.is_dir():
        raise InputFileError(gt, "ground-truth folder not found")
    if (gt / "alphas").is_dir():
        return gt / "alphas"
    if next(gt.glob("*/*/*.png"), None) is not None:
        return gt  # already the alphas folder: SUBSET/NAME/NN.png
    raise InputFileError(gt, "no alphas/SUBSET/NAME/NN.png ground truth found (expected a HIM2K layout)")


def evaluate(
    pred: Path,
    gt: Path,
    subsets: list[str] | None = None,
    skip_missing: bool = False,
    progress: bool = True,
) -> dict:
    """{SUBSET: IMQAccumulator.result() + "skipped_images", "unmatched_folders"}."""
    pred, gt = Path(pred), Path(gt)
    root = alphas_root(gt)
    if not pred.is_dir():
        raise InputFileError(pred, "prediction folder not found")
    available = sorted(d.name for d in root.iterdir() if d.is_dir())
    if subsets:
        unknown = [s for s in subsets if s not in available]
        if unknown:
            raise UserError(f"no subset {unknown[0]!r} in {root} (found: {', '.join(available) or 'none'})")
        available = [s for s in available if s in subsets]
    if not available:
        raise InputFileError(root, "no subset folders in the ground truth")

    plan = {s: sorted(d for d in (root / s).iterdir() if d.is_dir()) for s in available}
    bar = tqdm(total=sum(len(v) for v in plan.values()), desc="eval", unit="img", disable=not progress)
    results = {}
    for subset, image_dirs in plan.items():
        pred_subset = pred / subset
        bar.set_description(f"eval {subset}")
        if not pred_subset.is_dir():
            print(f"instmatt eval: warning: {pred_subset} not found; every image of {subset!r} counts as missed",
                  file=sys.stderr)
        acc = IMQAccumulator()
        skipped = 0
        for image_dir in image_dirs:
            gt_stack, size, size_of = _read_stack(_pngs(image_dir), None, None)
            pred_dir = pred_subset / image_dir.name
            if pred_dir.is_dir():
                pred_stack, _, _ = _read_stack(_pngs(pred_dir), size, size_of)
            elif skip_missing:
                skipped += 1
                bar.update(1)
                continue
            else:
                pred_stack = np.zeros((0,) + gt_stack.shape[1:], dtype=np.float32)
            acc.add(pred_stack, gt_stack)
            bar.update(1)
        result = acc.result()
        result["skipped_images"] = skipped
        names = {d.name for d in image_dirs}
        extra = [d for d in pred_subset.iterdir() if d.is_dir() and d.name not in names] if pred_subset.is_dir() else []
        result["unmatched_folders"] = len(extra)
        results[subset] = result
    bar.close()
    return results


