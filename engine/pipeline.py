"""One frame in, one alpha per person out: the InstMatt inference pipeline.

    image (H,W,3) uint8 RGB + K soft masks (K,H,W)
      -> cap the longest side at ``max_side`` (bilinear image, nearest masks)
      -> reflect-pad to a multiple of 32 plus 32 px on every side
      -> tri-masks -> matting net (all people batched) -> progressive OS8/OS4/OS1 merge
      -> multi-instance refiner ("windowed" as the authors run it, "dense" over the
         whole frame, or "none"), used only inside the OS1 uncertain band
      -> crop, resize back, snap values within 1/255 of 0 or 1 to exactly 0 or 1
      -> K alphas (K,H,W) float32 in [0, 1]

``model`` is anything with ``matting(image, trimask) -> dict`` and
``refiner(image, trimatte, feature)``: the PyTorch network or a compiled backend.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .progressive import EPSILON, progressive_merge
from .trimask import build_trimasks
from .windowed_refine import refine_windowed

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BORDER = 32
REFINE_MODES = ("windowed", "dense", "none")


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


def working_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """The size the network sees before padding (the reference truncates, as here)."""
    if max(height, width) <= max_side:
        return height, width
    ratio = max_side / max(height, width)
    return max(int(ratio * height), 1), max(int(ratio * width), 1)


def _padding(height: int, width: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom): 32 px everywhere, plus up to a multiple of 32."""
    extra_h = -height % 32
    extra_w = -width % 32
    return BORDER, BORDER + extra_w, BORDER, BORDER + extra_h


def prepare(image: np.ndarray, masks: np.ndarray, max_side: int, device: str | torch.device = "cpu"):
    """Resize, normalise and pad: returns (image (1,3,Hp,Wp), masks (K,Hp,Wp), (h, w))."""
    height, width = working_size(*image.shape[:2], max_side)
    if (height, width) != image.shape[:2]:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        masks = np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST) for m in masks])
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    image_t = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float()
    image_t = (image_t / 255.0 - mean) / std
    masks_t = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32)).to(device)
    pad = _padding(height, width)
    return _reflect_pad(image_t, pad), _reflect_pad(masks_t[None], pad)[0], (height, width)


def _reflect_pad(tensor: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    if min(tensor.shape[-2:]) > max(pad):
        return F.pad(tensor, pad, mode="reflect")
    # torch cannot reflect a border wider than the frame; numpy reflects repeatedly, as the reference does
    left, right, top, bottom = pad
    array = np.pad(tensor.cpu().numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)), mode="reflect")
    return torch.from_numpy(array).to(tensor.device)


@torch.inference_mode()
def matte_tensors(model, image_t: torch.Tensor, masks_t: torch.Tensor, refine: str = "windowed") -> torch.Tensor:
    """Padded, normalised inputs -> tri-mattes (K,3,Hp,Wp) after progressive merge and refinement."""
    trimask = build_trimasks(masks_t)
    images = image_t.expand(trimask.shape[0], -1, -1, -1)
    outputs = model.matting(images, trimask)
    trimatte, band = progressive_merge(outputs)
    if refine == "none":
        return trimatte
    feature = outputs["feature"]
    if refine == "windowed":
        refined = refine_windowed(model.refiner, images, trimatte, feature)
    else:
        refined = model.refiner(images, trimatte, feature)
    return torch.where(band, refined, trimatte)


def matte(model, image: np.ndarray, masks: np.ndarray, refine: str = "windowed", max_side: int = 1280,
          device: str | torch.device | None = None) -> np.ndarray:
    """K alphas (K,H,W) float32 in [0,1] for the K people given by ``masks``."""
    masks = np.asarray(masks, dtype=np.float32)
    check_inputs(image, masks, refine)
    height, width = image.shape[:2]
    if masks.shape[0] == 0:
        return np.zeros((0, height, width), np.float32)
    if device is None:
        device = getattr(model, "device", None) or next(model.parameters()).device
    image_t, masks_t, (h, w) = prepare(image, masks, max_side, device)
    trimatte = matte_tensors(model, image_t, masks_t, refine)
    alphas = trimatte[:, 0, BORDER:BORDER + h, BORDER:BORDER + w].float().clamp(0, 1).cpu().numpy()
    if (h, w) != (height, width):
        alphas = np.stack([cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR) for a in alphas])
    return snap(alphas)


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
