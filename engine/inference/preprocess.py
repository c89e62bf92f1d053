"""The network's view of a frame: longest side capped (bilinear image, nearest masks),
ImageNet-normalised, reflect-padded to a multiple of 32 plus 32 px on every side."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)


IMAGENET_STD = (0.229, 0.224, 0.225)


BORDER = 32


def working_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """The size the network sees before padding (the reference truncates, as here)."""
    if max(height, width) <= max_side:
        return height, width
    ratio = max_side / max(height, width)
    return max(int(ratio * height), 1), max(int(ratio * width), 1)


def padding(height: int, width: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom): 32 px everywhere, plus up to a multiple of 32."""
    extra_h = -height % 32
    extra_w = -width % 32
    return BORDER, BORDER + extra_w, BORDER, BORDER + extra_h


def padded_size(height: int, width: int) -> tuple[int, int]:
    left, right, top, bottom = padding(height, width)
    return height + top + bottom, width + left + right


def resize_inputs(image: np.ndarray, masks: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """The frame and masks at the working size (bilinear image, nearest masks)."""
    height, width = working_size(*image.shape[:2], max_side)
    if (height, width) != image.shape[:2]:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        masks = np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST) for m in masks])
    return image, masks


def normalise(image: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """(H,W,3) uint8 RGB -> (1,3,H,W) float32, ImageNet mean/std."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    image_t = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float()
    return (image_t / 255.0 - mean) / std


def prepare(image: np.ndarray, masks: np.ndarray, max_side: int, device: str | torch.device = "cpu"):
    """Resize, normalise and pad: returns (image (1,3,Hp,Wp), masks (K,Hp,Wp), (h, w))."""
    image, masks = resize_inputs(image, masks, max_side)
    height, width = image.shape[:2]
    image_t = normalise(image, device)
    masks_t = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32)).to(device)
    pad = padding(height, width)
    return _reflect_pad(image_t, pad), _reflect_pad(masks_t[None], pad)[0], (height, width)


def _reflect_pad(tensor: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    if min(tensor.shape[-2:]) > max(pad):
        return F.pad(tensor, pad, mode="reflect")
    # torch cannot reflect a border wider than the frame; numpy reflects repeatedly, as the reference does
    left, right, top, bottom = pad
    array = np.pad(tensor.cpu().numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)), mode="reflect")
    return torch.from_numpy(array).to(tensor.device)
