"""engine.inference.trimask, engine.inference.progressive and engine.inference.pipeline.matte."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from engine.inference.pipeline import matte
from engine.inference.preprocess import BORDER, prepare, working_size
from engine.inference.progressive import (
    OS1_KERNEL,
    OS4_KERNEL,
    progressive_merge,
    uncertain_band,
)
from engine.inference.refine_windowed import duplicate_people, select_windows
from engine.inference.trimask import build_trimasks
from engine.model import load_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return load_model(None, width=0.25)


def test_trimask_matches_definition_and_keeps_negative_background():
    masks = torch.zeros(3, 4, 4)
    masks[0, :2] = 1.0
    masks[1, 1:3] = 0.75
    masks[2, 3, 3] = 0.5
    tri = build_trimasks(masks)
    assert tri.shape == (3, 3, 4, 4)
    assert torch.equal(tri[:, 0], masks)
    assert torch.allclose(tri[0, 1], masks[1] + masks[2])
    assert torch.allclose(tri[2, 1], masks[0] + masks[1])
    # row 1: masks 0 and 1 overlap -> 1 - 1.75 = -0.75, left unclipped on purpose
    assert torch.allclose(tri[:, 2, 1, 0], torch.full((3,), -0.75))
    assert torch.allclose(tri.sum(dim=1), torch.ones(3, 4, 4))  # T + R + B = 1 by construction


def test_tensor_dilation_matches_opencv():
    rng = np.random.default_rng(1)
    trimatte = torch.from_numpy(rng.choice([0.0, 1.0, 0.5], size=(2, 3, 40, 50), p=[0.48, 0.48, 0.04])).float()
    for kernel in (OS4_KERNEL, OS1_KERNEL):
        band = uncertain_band(trimatte, kernel).numpy()[:, 0]
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
        for k in range(2):
            per_channel = [cv2.dilate(((c > 1 / 255) & (c < 254 / 255)).astype(np.uint8), element)
                           for c in trimatte[k].numpy()]
            expected = np.max(per_channel, axis=0).astype(bool)
            assert np.array_equal(band[k], expected)


def test_progressive_merge_takes_each_head_in_its_zone():
    os8 = torch.zeros(1, 3, 64, 64)
    os8[..., 30:34, 30:34] = 0.5  # one uncertain patch
    outputs = {"alpha_os8": os8, "alpha_os4": torch.full_like(os8, 0.25), "alpha_os1": torch.full_like(os8, 0.75)}
    merged, band = progressive_merge(outputs)
    assert merged[0, 0, 0, 0] == 0  # far away: OS8
    assert merged[0, 0, 32, 32] == 0.75  # centre: OS1
    assert band[0, 0, 32, 32] and not band[0, 0, 0, 0]


def test_shapes_ranges_and_odd_sizes(model, make_scene):
    for height, width in ((101, 157), (33, 47), (64, 64)):
        image, masks = make_scene(height, width)
        for refine in ("none", "dense", "windowed"):
            alphas = matte(model, image, masks, refine=refine)
            assert alphas.shape == (2, height, width) and alphas.dtype == np.float32
            assert np.isfinite(alphas).all() and alphas.min() >= 0 and alphas.max() <= 1


def test_zero_and_one_person(model, make_scene):
    image, masks = make_scene()
    empty = matte(model, image, masks[:0])
    assert empty.shape == (0, 101, 157) and empty.dtype == np.float32
    single = matte(model, image, masks[:1])
    assert single.shape == (1, 101, 157)


def test_max_side_downscales_and_restores_size(model, make_scene):
    image, masks = make_scene(90, 200)
    assert working_size(90, 200, 100) == (45, 100)
    alphas = matte(model, image, masks, refine="none", max_side=100)
    assert alphas.shape == (2, 90, 200)


def test_padding_is_reflective_and_to_multiple_of_32(make_scene):
    image, masks = make_scene(101, 157)
    image_t, masks_t, (h, w) = prepare(image, masks, max_side=1280)
    assert (h, w) == (101, 157)
    assert image_t.shape[-2:] == (101 + 27 + 64, 157 + 3 + 64)
    assert image_t.shape[-2] % 32 == 0 and image_t.shape[-1] % 32 == 0
    # reflect (no edge repeat): padded row BORDER - 1 equals image row 1
    assert torch.allclose(masks_t[:, BORDER - 1, BORDER:BORDER + w], torch.from_numpy(masks[:, 1]))


@pytest.mark.parametrize("bad, message", [
    (lambda i, m: (i, m[:, :-1]), "mask size 157x100 does not match image size 157x101"),
    (lambda i, m: (i, m * 2), r"masks must be in \[0, 1\]"),
    (lambda i, m: (i.astype(np.float32), m), "uint8 RGB"),
    (lambda i, m: (i[..., :2], m), "uint8 RGB"),
    (lambda i, m: (i, m[0]), r"\(K, H, W\)"),
])
def test_bad_inputs_get_clear_errors(model, bad, message, make_scene):
    image, masks = make_scene()
    image, masks = bad(image, masks)
    with pytest.raises(ValueError, match=message):
        matte(model, image, masks)


def test_unknown_refine_mode(model, make_scene):
    image, masks = make_scene()
    with pytest.raises(ValueError, match="refine must be one of"):
        matte(model, image, masks, refine="cycle")


def test_pipeline_is_permutation_equivariant(model, make_scene):
    image, masks = make_scene(people=3, seed=4)
    order = [2, 0, 1]
    for refine in ("dense", "windowed"):
        straight = matte(model, image, masks, refine=refine)
        shuffled = matte(model, image, masks[order], refine=refine)
        assert np.allclose(straight[order], shuffled, atol=1e-5)


def test_duplicates_are_left_out_of_refinement():
    target = torch.zeros(3, 1, 20, 20)
    target[0, 0, :10] = 1
    target[1, 0, :10] = 1  # a second detection of person 0
    target[2, 0, 12:] = 1
    bad = duplicate_people(target)
    assert bad.tolist().count(True) == 1 and not bad[2]


def test_windows_cover_the_disagreement():
    trimatte = torch.zeros(2, 3, 200, 300)
    trimatte[:, 2] = 1.0
    trimatte[0, 0, 100:110, 200:210] = 0.6  # T + B exceeds 1 here
    windows = select_windows(trimatte, 64)
    assert len(windows) >= 1
    x1, y1, x2, y2 = windows[0]
    assert x2 - x1 == 64 and y2 - y1 == 64
    assert x1 <= 200 and x2 >= 210 and y1 <= 100 and y2 >= 110
    assert (windows[:, [0, 1]] >= 0).all() and (windows[:, 2] <= 300).all() and (windows[:, 3] <= 200).all()


def test_snap_makes_certain_regions_exact():
    from engine.inference.pipeline import snap
    alphas = np.array([[[-0.1, 0.001, 0.5, 0.999, 1.2]]], np.float32)
    assert snap(alphas).tolist() == [[[0.0, 0.0, 0.5, 1.0, 1.0]]]


def test_window_choice_is_deterministic_on_ties():
    """Four soft boxes leave a flat disagreement map, so most windows tie. The authors'
    order (numpy's ascending argsort, reversed) leaves ties to numpy's unstable sort, whose
    order changed between numpy builds; ours is the stable version of that rule: among
    equal scores the later window in raster order wins."""
    people, height, width = 4, 416, 544
    generator = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    trimatte = torch.zeros(people, 3, height, width)
    for k in range(people):
        box = ((xx - (80 + k * 120)).abs() < 50) & ((yy - 200).abs() < 150)
        trimatte[k, 0] = box.float() * (0.9 + 0.05 * torch.rand(height, width, generator=generator))
    for k in range(people):
        trimatte[k, 1] = trimatte[:, 0].sum(0) - trimatte[k, 0]
        trimatte[k, 2] = (1 - trimatte[:, 0].sum(0)).clamp(0, 1) * 0.8
    windows = select_windows(trimatte, 320)
    assert windows.tolist() == [[224, 96, 544, 416], [60, 96, 380, 416]]
