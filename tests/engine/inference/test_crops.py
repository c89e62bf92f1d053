"""Person-crop inference (engine.inference.crops, refine_crops) against the full-frame path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.inference.crops import GRID, Frame, crop_box, reflect_index
from engine.inference.pipeline import matte
from engine.inference.preprocess import BORDER, normalise, prepare
from engine.inference.refine_crops import HALO, TILE
from engine.inference.trimask import build_trimasks
from engine.settings import CROP_MARGIN

pytestmark = pytest.mark.usefixtures("one_thread")

# |crop - full frame| for one person alone in a 640x360 frame, shipped weights, margin 64
# (measured: largest 0.33, mean 4.4e-4, on a few pixels at the top of the person; margin 256,
# which covers most of this frame, brings the largest to 0.023). The network sees less
# context, and its ASPP averages over the crop instead of the frame.
ALONE_LARGEST, ALONE_MEAN = 0.4, 1e-3


@pytest.fixture(scope="module")
def model(random_tiny_model):
    return random_tiny_model


@pytest.fixture(scope="module")
def shipped_model():
    """The trained network: a random one answers 0.5 everywhere, so nothing is 'outside' a person."""
    from engine.model import load_model
    from engine.weights import default_weights_path

    return load_model(default_weights_path())


def blob(height: int, width: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.sqrt(((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2)
    return np.clip((1.1 - distance) / 0.2, 0.0, 1.0).astype(np.float32)


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xs / width, ys / height, 0.5 + 0.5 * np.sin(xs / 9.0)], axis=-1) * 200
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [1, 2, 5, 40, 97])
def test_reflect_index_is_numpys_reflect_padding(size):
    source = np.arange(size)
    padded = np.pad(source, (BORDER, BORDER + 37), mode="reflect") if size > 1 else np.zeros(size + 2 * BORDER + 37, int)
    assert np.array_equal(source[reflect_index(0, len(padded), size)], padded)
    assert np.array_equal(source[reflect_index(20, 90, size)], padded[20:90])


def test_frame_reads_the_padded_frame_and_trimasks_of_prepare(make_scene):
    image, masks = make_scene(37, 45, people=3, seed=2)  # smaller than the border: repeated reflection
    image_t, masks_t, _ = prepare(image, masks, 1280)
    frame = Frame(normalise(image), torch.from_numpy(masks), CROP_MARGIN)
    whole = frame.whole
    assert frame.padded == tuple(image_t.shape[-2:])
    assert torch.equal(frame.image(whole), image_t)
    expected = build_trimasks(masks_t)
    for k in range(3):
        assert torch.allclose(frame.trimask(k, whole)[0], expected[k], atol=1e-6)


def test_crop_boxes_are_on_the_grid_inside_the_frame_and_hold_the_margin():
    padded = (800, 1344)
    box = crop_box((100, 300, 500, 620), 64, padded)
    assert box.y0 % GRID == 0 and box.y1 % GRID == 0 and box.x0 % GRID == 0 and box.x1 % GRID == 0
    assert box.y0 <= 100 + BORDER - 64 and box.y1 >= 300 + BORDER + 64
    assert box.x0 <= 500 + BORDER - 64 and box.x1 >= 620 + BORDER + 64
    edge = crop_box((0, 720, 1200, 1280), 64, padded)  # at the frame's edges: clamped to the padding
    assert (edge.y0, edge.y1, edge.x1) == (0, 800, 1344)


@pytest.mark.parametrize("refine, exact_refine", [("none", "none"), ("dense", "dense"), ("windowed", "dense")])
def test_crops_covering_the_frame_are_the_exact_computation(model, refine, exact_refine):
    """On crops the refiner always runs densely (one pass over the bands)."""
    image = textured(90, 130, seed=1)
    masks = np.stack([blob(90, 130, 45, 40, 30, 20), blob(90, 130, 50, 90, 35, 25)])
    exact = matte(model, image, masks, refine=exact_refine, exact=True)  # the bare network: both in one batch
    crops = matte(model, image, masks, refine=refine, margin=10_000)  # one person per pass
    assert np.abs(exact - crops).max() < 1e-5  # batched vs single passes differ by rounding only


def test_a_person_alone_in_a_big_frame_matches_the_full_frame(shipped_model):
    model = shipped_model
    height, width = 360, 640
    image = textured(height, width, seed=3)
    masks = blob(height, width, 180, 300, 70, 40)[None]
    frame = Frame(normalise(image), torch.from_numpy(masks), CROP_MARGIN)
    box = frame.boxes[0]
    assert box.shape[0] * box.shape[1] < 0.4 * frame.padded[0] * frame.padded[1]  # a real crop
    for refine in ("none", "dense"):  # (on crops "windowed" runs densely too)
        exact = matte(model, image, masks, refine=refine, exact=True)
        crops = matte(model, image, masks, refine=refine)
        difference = np.abs(exact - crops)
        assert difference.max() < ALONE_LARGEST and difference.mean() < ALONE_MEAN, refine
        # alpha is zero outside the crop (frame coordinates = padded - BORDER)
        outside = np.ones((height, width), bool)
        outside[max(box.y0 - BORDER, 0):box.y1 - BORDER, max(box.x0 - BORDER, 0):box.x1 - BORDER] = False
        assert crops[0][outside].max() == 0.0


def test_people_at_the_frame_edge_and_nobody(model):
    height, width = 200, 300
    image = textured(height, width, seed=4)
    masks = np.stack([blob(height, width, 100, 0, 60, 40), blob(height, width, 199, 299, 50, 50)])
    alphas = matte(model, image, masks)
    assert alphas.shape == (2, height, width) and np.isfinite(alphas).all()
    assert alphas[0, :, :5].max() > 0 and alphas[1, -5:, -5:].max() > 0
    assert matte(model, image, masks[:0]).shape == (0, height, width)
    empty = np.concatenate([masks, np.zeros((1, height, width), np.float32)])
    with_empty = matte(model, image, empty)
    assert with_empty[2].max() == 0.0  # no guidance, no crop, no alpha


@pytest.mark.parametrize("refine", ["dense", "windowed"])
def test_crop_path_is_permutation_equivariant(model, refine):
    height, width = 240, 400
    image = textured(height, width, seed=5)
    masks = np.stack([blob(height, width, 120, 80, 70, 40), blob(height, width, 110, 170, 80, 40),
                      blob(height, width, 130, 330, 60, 40)])
    order = [2, 0, 1]
    straight = matte(model, image, masks, refine=refine)
    shuffled = matte(model, image, masks[order], refine=refine)
    assert np.allclose(straight[order], shuffled, atol=1e-5)


class Recorder:
    """A backend that records the size of every tensor the pipeline hands the networks."""

    def __init__(self, model):
        self.model = model
        self.device = torch.device("cpu")
        self.chunk = 1
        self.matting_sizes, self.refiner_sizes = [], []

    def matting(self, image, trimask):
        self.matting_sizes.append(image.numel() + trimask.numel())
        return self.model.matting(image, trimask)

    def refiner(self, image, trimatte, feature):
        self.refiner_sizes.append(image.numel() + trimatte.numel() + feature.numel())
        return self.model.refiner(image, trimatte, feature)


def test_network_inputs_follow_the_people_not_k_times_the_frame(model):
    """Many small people in a big frame: no network input is anywhere near K frames."""
    height, width, people = 480, 800, 12
    image = textured(height, width, seed=6)
    masks = np.stack([blob(height, width, 120 + 240 * (k // 6), 65 + 133 * (k % 6), 50, 25) for k in range(people)])
    recorder = Recorder(model)
    with torch.inference_mode():
        matte(recorder, image, masks)
    padded = (height + 2 * BORDER) * (width + 2 * BORDER + 32)
    assert len(recorder.matting_sizes) == people
    assert max(recorder.matting_sizes) < 0.2 * 6 * padded  # one crop, not the frame
    window = (TILE + 2 * HALO) ** 2 * people * (3 + 3 + model.decoder.feature_channels)
    assert recorder.refiner_sizes and max(recorder.refiner_sizes) <= window
