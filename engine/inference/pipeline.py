"""One frame in, one alpha per person out: the InstMatt inference pipeline.

    image (H,W,3) uint8 RGB + K soft masks (K,H,W)
      -> cap the longest side at ``max_side`` (bilinear image, nearest masks)
      -> reflect-pad to a multiple of 32 plus 32 px on every side
      -> tri-masks -> matting net -> progressive OS8/OS4/OS1 merge
      -> multi-instance refiner ("windowed" as the authors run it, "dense" over the
         whole frame, or "none"), used only inside the OS1 uncertain band
      -> crop, resize back, snap values within 1/255 of 0 or 1 to exactly 0 or 1
      -> K alphas (K,H,W) float32 in [0, 1]

By default every person's network pass runs on a crop around their guidance, and the
refiner runs once, densely, over everyone's band (:mod:`crops`, :mod:`refine_crops`; the
margin and what it costs in quality are measured in docs/performance.md). ``exact=True``
runs the authors' computation on the whole frame for every person, with the refine mode
asked for (the parity tests use it).

``backend`` is anything with ``matting(image, trimask) -> dict`` and
``refiner(image, trimatte, feature)``: a backend (``engine.create_backend``) or the
PyTorch network itself.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from engine.settings import CROP_MARGIN, EXACT, MAX_SIDE, REFINE, REFINE_MODES

from .crops import Frame, run_network
from .preprocess import BORDER, normalise, prepare, resize_inputs
from .progressive import EPSILON, progressive_merge
from .refine_crops import refine_dense_crops
from .refine_windowed import refine_windowed
from .timing import stage
from .trimask import build_trimasks


def check_inputs(image: np.ndarray, masks: np.ndarray, refine: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got "
                         f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
    if masks.ndim != 3:
        raise ValueError(f"masks must be (K, H, W), got shape {masks.shape}")
    if masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"mask size {masks.shape[2]}x{masks.shape[1]} does not match image size "
                         f"{image.shape[1]}x{image.shape[0]}")
    if masks.size and (not np.isfinite(masks).all() or masks.min() < 0.0 or masks.max() > 1.0):
        raise ValueError(f"masks must be in [0, 1], got values in [{masks.min():g}, {masks.max():g}]")
    if refine not in REFINE_MODES:
        raise ValueError(f"refine must be one of {', '.join(REFINE_MODES)}, got {refine!r}")


@torch.inference_mode()
def matte_tensors(backend, image_t: torch.Tensor, masks_t: torch.Tensor, refine: str = "windowed") -> torch.Tensor:
    """Padded, normalised inputs -> tri-mattes (K,3,Hp,Wp) after progressive merge and refinement."""
    with stage("prepare"):
        trimask = build_trimasks(masks_t)
        images = image_t.expand(trimask.shape[0], -1, -1, -1)
    with stage("network"):
        outputs = backend.matting(images, trimask)
    with stage("merge"):
        trimatte, band = progressive_merge(outputs)
    if refine == "none":
        return trimatte
    feature = outputs["feature"]
    with stage("refine"):
        if refine == "windowed":
            refined = refine_windowed(backend.refiner, images, trimatte, feature)
        else:
            refined = backend.refiner(images, trimatte, feature)
        return torch.where(band, refined, trimatte)


def matte(backend, image: np.ndarray, masks: np.ndarray, refine: str = REFINE, max_side: int = MAX_SIDE,
          device: str | torch.device | None = None, exact: bool = EXACT, margin: int = CROP_MARGIN) -> np.ndarray:
    """K alphas (K,H,W) float32 in [0,1] for the K people given by ``masks``.

    exact: the whole frame through the network for every person, as the authors run it;
    otherwise each person's crop (their guidance box plus ``margin`` px of context).
    """
    masks = np.asarray(masks, dtype=np.float32)
    check_inputs(image, masks, refine)
    height, width = image.shape[:2]
    if masks.shape[0] == 0:
        return np.zeros((0, height, width), np.float32)
    if device is None:
        device = getattr(backend, "device", None) or next(backend.parameters()).device
    if exact:
        with stage("prepare"):
            image_t, masks_t, (h, w) = prepare(image, masks, max_side, device)
        trimatte = matte_tensors(backend, image_t, masks_t, refine)
        with stage("output"):
            alphas = trimatte[:, 0, BORDER:BORDER + h, BORDER:BORDER + w].float().clamp(0, 1).cpu().numpy()
        del trimatte
    else:
        alphas = _matte_crops(backend, image, masks, refine, max_side, device, margin)
    with stage("output"):
        if alphas.shape[1:] != (height, width):
            alphas = np.stack([cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR) for a in alphas])
        return snap(alphas)


@torch.inference_mode()
def _matte_crops(backend, image, masks, refine: str, max_side: int, device, margin: int) -> np.ndarray:
    """The crop path at the working size: (K,h,w) float32 alphas, 0 outside each person's crop."""
    with stage("prepare"):
        image, masks = resize_inputs(image, masks, max_side)
        frame = Frame(normalise(image, device), torch.from_numpy(np.ascontiguousarray(masks)).to(device), margin)
        del image, masks
    crops = run_network(backend, frame, keep_feature=refine != "none")
    with stage("refine"):
        # on crops both modes refine every person's band in one dense pass: measured as close
        # to the authors' windows as their own schedule run on crops, at half its cost
        # (docs/performance.md); the windows' schedule exists to bound a full frame's memory
        refined = [None] * len(crops) if refine == "none" else refine_dense_crops(backend.refiner, frame, crops)
    with stage("output"):
        return _paste(frame, crops, refined)


def _paste(frame: Frame, crops, refined) -> np.ndarray:
    height, width = frame.size
    inner = (BORDER, BORDER + height, BORDER, BORDER + width)
    alphas = np.zeros((frame.count, height, width), np.float32)
    for k, crop in enumerate(crops):
        if crop is None:
            continue
        target = crop.trimatte[0] if refined[k] is None else torch.where(crop.band[0], refined[k][0], crop.trimatte[0])
        y0, y1 = max(crop.box.y0, inner[0]), min(crop.box.y1, inner[1])
        x0, x1 = max(crop.box.x0, inner[2]), min(crop.box.x1, inner[3])
        if y0 < y1 and x0 < x1:
            part = target[y0 - crop.box.y0:y1 - crop.box.y0, x0 - crop.box.x0:x1 - crop.box.x0]
            alphas[k, y0 - BORDER:y1 - BORDER, x0 - BORDER:x1 - BORDER] = part.float().clamp(0, 1).cpu().numpy()
        crops[k] = refined[k] = None  # free as we go
    return alphas


def snap(alphas: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and make the certain regions exact.

    (tanh + 1) / 2 never reaches 0 or 1, so without this every person would carry a faint
    haze over the whole frame: visible when grading a matte, and counted as foreground by
    IMQ (which binarises at > 0). The threshold is the pipeline's own notion of "certain"
    (1/255), the same the reference reaches by writing 8-bit PNGs.
    """
    np.clip(alphas, 0.0, 1.0, out=alphas)
    alphas[alphas < EPSILON] = 0.0
    alphas[alphas > 1.0 - EPSILON] = 1.0
    return alphas
