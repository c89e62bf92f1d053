"""People in a frame: torchvision's Mask R-CNN, persons only (the paper's detector).

Defaults follow the paper: COCO label 1 (person), score >= 0.7, mask area >= 2 % of the
frame. Masks are the network's soft masks thresholded at 0.5, as InstMatt's guidance.

Weights are never downloaded here. They are read from ``--detector-weights PATH`` or from
torchvision's own cache, ``<torch.hub.get_dir()>/checkpoints/`` + ``COCO_WEIGHTS_FILE``
(where torchvision puts them when it downloads them, e.g. once on a machine with network
access). Without either, the engine stops with a message that says where to put the file
and how to give masks instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.errors import InputFileError, UserError
from engine.settings import DETECTOR_SIZE, MIN_AREA, SCORE, check_detector

from .base import Guidance, Guide

PERSON_LABEL = 1
COCO_WEIGHTS_FILE = "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
COCO_WEIGHTS_URL = "https://download.pytorch.org/models/" + COCO_WEIGHTS_FILE


def cached_weights_path() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / COCO_WEIGHTS_FILE


def missing_weights_message() -> str:
    return (f"no Mask R-CNN weights for the person detector: put {COCO_WEIGHTS_FILE} "
            f"(from {COCO_WEIGHTS_URL}) at {cached_weights_path()} or pass --detector-weights PATH; "
            f"or skip the detector and give the people yourself with --masks DIR (DIR/<frame>/<NN>.png) "
            f"or --index PATTERN (one ID image per frame)")


def resolve_weights(path: str | os.PathLike | None) -> Path:
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputFileError(path, "detector weights not found")
        if path.stat().st_size == 0:
            raise InputFileError(path, "detector weights file is empty (0 bytes)")
        return path
    cached = cached_weights_path()
    if cached.is_file() and cached.stat().st_size > 0:
        return cached
    raise UserError(missing_weights_message())


def _load_state_dict(path: Path) -> dict:
    import torch

    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputFileError(path, f"not a readable PyTorch weights file ({type(exc).__name__})") from None
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        payload = payload["model"]
    if not isinstance(payload, dict):
        raise InputFileError(path, "not a Mask R-CNN state_dict")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in payload.items()}


class PersonDetector:
    """``detect(rgb8) -> (masks (K,H,W) float32 0/1, scores (K,), boxes (K,4) x0,y0,x1,y1)``,
    highest score first."""

    def __init__(self, weights: str | os.PathLike | None = None, score: float = SCORE,
                 min_area: float = MIN_AREA, device: str | None = None, max_people: int = 100,
                 size: int = DETECTOR_SIZE):
        import torch
        from torchvision.models.detection import maskrcnn_resnet50_fpn

        check_detector(score, min_area, size)
        self.weights_path = resolve_weights(weights)
        self.score = float(score)
        self.min_area = float(min_area)
        self.size = int(size)
        self.device = torch.device(device or "cpu")
        # the model's own score filter must not be stricter than ours
        model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                      box_score_thresh=min(self.score, 0.05), box_detections_per_img=max_people,
                                      min_size=self.size, max_size=round(self.size * 1333 / 800))
        state_dict = _load_state_dict(self.weights_path)
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise InputFileError(self.weights_path, f"weights do not fit torchvision's maskrcnn_resnet50_fpn ({first})") from None
        self.model = model.eval().to(self.device)

    def detect(self, rgb8: np.ndarray):
        import torch

        height, width = rgb8.shape[:2]
        image = torch.from_numpy(np.ascontiguousarray(rgb8)).to(self.device).permute(2, 0, 1).float() / 255.0
        with torch.inference_mode():
            output = self.model([image])[0]
        labels = output["labels"].cpu().numpy()
        scores = output["scores"].cpu().numpy()
        keep = (labels == PERSON_LABEL) & (scores >= self.score)
        masks = (output["masks"][:, 0].cpu().numpy()[keep] >= 0.5)
        boxes = output["boxes"].cpu().numpy()[keep]
        scores = scores[keep]
        area = masks.reshape(masks.shape[0], -1).mean(axis=1) if masks.shape[0] else np.zeros(0)
        big = area >= max(self.min_area, 1e-9)
        order = np.argsort(-scores[big], kind="stable")
        return (masks[big][order].astype(np.float32).reshape(-1, height, width), scores[big][order],
                boxes[big][order])


class DetectorGuidance(Guidance):
    kind = "detector"
    tracked = True

    def __init__(self, detector):
        self.detector = detector

    def people(self, frame: int, rgb8: np.ndarray) -> Guide:
        masks, scores, _ = self.detector.detect(rgb8)
        return Guide(masks, None, [float(s) for s in scores])

    def describe(self) -> dict:
        return {"kind": "detector", "weights": str(self.detector.weights_path), "score": self.detector.score,
                "min_area": self.detector.min_area, "size": self.detector.size}
