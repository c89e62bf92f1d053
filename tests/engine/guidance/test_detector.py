"""engine.guidance.detector: the real torchvision Mask R-CNN code path with random weights, and the
offline 'no weights' message."""

from __future__ import annotations

import os

import numpy as np
import pytest

from engine.errors import InputFileError, UserError


def test_no_weights_offline_names_the_fetch_command_and_what_else(isolated_torch_hub):
    from engine.guidance.detector import PersonDetector
    from engine.registry.resolve import ModelMissing

    with pytest.raises(ModelMissing) as info:
        PersonDetector()
    message = str(info.value)
    assert info.value.model == "detector"
    assert "`instmatt models fetch detector`" in message and os.environ["INSTMATT_CACHE"] in message
    assert "--masks" in message and "--index" in message
    assert "\n" not in message


def test_torchvision_cache_is_found(isolated_torch_hub, random_detector_weights):
    from engine.guidance.detector import COCO_WEIGHTS_FILE, resolve_weights

    cached = isolated_torch_hub / "checkpoints" / COCO_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.symlink_to(random_detector_weights)
    assert resolve_weights(None) == cached


def test_bad_weight_files(tmp_path):
    import torch

    from engine.guidance.detector import PersonDetector

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        PersonDetector(empty)
    with pytest.raises(InputFileError, match="not found"):
        PersonDetector(tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(InputFileError, match="do not fit"):
        PersonDetector(wrong)
    with pytest.raises(UserError, match="score"):
        PersonDetector(wrong, score=1.5)


def test_random_detector_finds_people(person_detector_weights):
    from engine.guidance.detector import PersonDetector

    detector = PersonDetector(person_detector_weights, min_area=0.0, size=128, max_people=5)
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    masks, scores, boxes = detector.detect(image)
    assert masks.shape[0] >= 1 and masks.shape[1:] == (48, 64)
    assert set(np.unique(masks)) <= {0.0, 1.0}
    assert np.all(scores >= 0.7) and np.all(np.diff(scores) <= 0)  # best first
    assert boxes.shape == (masks.shape[0], 4)
    # the area rule drops everything when it asks for the whole frame
    strict = PersonDetector(person_detector_weights, min_area=0.99, size=128, max_people=5)
    assert strict.detect(image)[0].shape == (0, 48, 64)


def test_random_detector_finds_nobody_at_the_paper_threshold(random_detector_weights):
    from engine.guidance.detector import PersonDetector

    detector = PersonDetector(random_detector_weights, size=128)
    masks, scores, _ = detector.detect(np.full((48, 64, 3), 128, np.uint8))
    assert masks.shape == (0, 48, 64) and scores.shape == (0,)
