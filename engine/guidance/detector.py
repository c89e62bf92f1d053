"""People in a frame: torchvision's Mask R-CNN, persons only (the paper's detector).

Defaults follow the paper: COCO label 1 (person), score >= 0.7, mask area >= 2 % of the
frame. Masks are the network's soft masks thresholded at 0.5, as InstMatt's guidance.

Weights come from ``--detector-weights PATH``, else from the model registry
(:mod:`engine.registry`: its cache, or torchvision's own cache where that already holds
``maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth``). Missing, they are fetched (with progress)
when network use is allowed; offline, the engine stops with one line naming
``instmatt models fetch`` and the mask/index guidance that needs no detector.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from engine.errors import InputFileError
from engine.registry.catalog import MODELS
from engine.settings import DETECTOR_SIZE, MIN_AREA, SCORE, check_detector

from .base import Guidance, Guide

PERSON_LABEL = 1
MODEL_NAME = "detector"  # its name in the registry
COCO_WEIGHTS_FILE = MODELS[MODEL_NAME].file
NO_DETECTOR_ALTERNATIVES = ("; or skip the detector and give the people yourself with --masks DIR "
                            "(DIR/<frame>/<NN>.png) or --index PATTERN (one ID image per frame)")


def resolve_weights(path: str | os.PathLike | None, progress=None, report=None,
                    cancel: threading.Event | None = None) -> Path:
    """The given file, else the registry's (fetched first when missing and allowed)."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputFileError(path, "detector weights not found")
        if path.stat().st_size == 0:
            raise InputFileError(path, "detector weights file is empty (0 bytes)")
        return path
    from engine.registry.resolve import require

    return require(MODEL_NAME, progress=progress, report=report, cancel=cancel,
                   alternatives=NO_DETECTOR_ALTERNATIVES)


class PersonDetector:
    """``detect(rgb8) -> (masks (K,H,W) float32 0/1, scores (K,), boxes (K,4) x0,y0,x1,y1)``,
    highest score first."""

    def __init__(self, weights: str | os.PathLike | None = None, score: float = SCORE,
                 min_area: float = MIN_AREA, device: str | None = None, max_people: int = 100,
                 size: int = DETECTOR_SIZE, progress=None, report=None):
        import torch
        from torchvision.models.detection import maskrcnn_resnet50_fpn

        check_detector(score, min_area, size)
        self.weights_path = resolve_weights(weights, progress, report)
        self.score = float(score)
        self.min_area = float(min_area)
        self.size = int(size)
        self.device = torch.device(device or "cpu")
        # the model's own score filter must not be stricter than ours
        model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                      box_score_thresh=min(self.score, 0.05), box_detections_per_img=max_people,
                                      min_size=self.size, max_size=round(self.size * 1333 / 800))
        from engine.registry.checks import read_maskrcnn_state_dict

        state_dict = read_maskrcnn_state_dict(self.weights_path)
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise InputFileError(self.weights_path, f"weights do not fit torchvision's maskrcnn_resnet50_fpn ({first})") from None
        self.model = model.eval().to(self.device)

    def describe(self) -> dict:
        return {"kind": "detector", "weights": str(self.weights_path), "score": self.score,
                "min_area": self.min_area, "size": self.size}

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
        return self.detector.describe()
