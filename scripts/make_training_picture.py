"""docs/img/training_examples.png: held-out generated composites, their guidance, the shipped
tiny model's mattes and the ground truth (colours mark people, brightness is alpha).

Only generated figures and backgrounds are drawn, so the picture holds no real person.

    .venv/bin/python scripts/make_training_picture.py [--out docs/img/training_examples.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.model import load_model  # noqa: E402
from engine.training.validate import make_heldout, predict  # noqa: E402
from engine.weights import default_weights_path  # noqa: E402

COLOURS = np.array([[230, 60, 60], [60, 200, 80], [70, 110, 240], [240, 200, 40], [200, 80, 220]], np.float32)
TITLES = ("held-out composite", "guidance (masks)", "tiny model", "ground truth")


def colourise(alphas: np.ndarray) -> np.ndarray:
    picture = np.zeros(alphas.shape[1:] + (3,), np.float32)
    for k, alpha in enumerate(alphas):
        picture += alpha[..., None] * COLOURS[k % len(COLOURS)]
    return np.clip(picture, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/img/training_examples.png")
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    heldout = make_heldout(args.rows, 192, args.seed, figures=40, people=(2, 3), mask_strength=1.0)
    model = load_model(default_weights_path())
    predictions = predict(model, heldout, refine="windowed")
    rows = []
    for image, masks, pred, truth in zip(heldout.images, heldout.masks, predictions, heldout.alphas):
        tiles = [image, colourise(masks), colourise(pred), colourise(truth)]
        rows.append(np.concatenate([np.pad(t, ((4, 4), (4, 4), (0, 0)), constant_values=255) for t in tiles], axis=1))
    header = np.full((24, rows[0].shape[1], 3), 255, np.uint8)
    for index, title in enumerate(TITLES):
        cv2.putText(header, title, (index * 200 + 8, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    picture = np.concatenate([header] + rows, axis=0)
    cv2.imwrite(args.out, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({picture.shape[1]}x{picture.shape[0]})")


if __name__ == "__main__":
    main()
