"""Data: generated figures and clips, HIM2K-style compositing, guidance masks, I/O."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from engine.data.figures import make_clip, make_foreground
from engine.data.foreground import estimate_foreground
from engine.data.him2k import Him2kDataset, write_sample
from engine.data.perturb import simulate_guidance, swap_patches
from engine.data.scene import composite_layers, make_background
from engine.data.synth import (
    Layer,
    LayerPool,
    compose,
    load_people,
    procedural_layers,
    trimatte_targets,
)

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "people" / "images").is_dir(),
                                  reason=f"real person layers not found at {SHARED.resolve()} "
                                         "(../shared/data is never committed and absent on users' machines)")


# ---------------------------------------------------------------- make_clip


def test_make_clip_shapes_dtypes_and_sum():
    frames, alphas = make_clip(frames=3, height=64, width=96, people=3, seed=1)
    assert frames.shape == (3, 64, 96, 3) and frames.dtype == np.uint8
    assert alphas.shape == (3, 3, 64, 96) and alphas.dtype == np.float32
    assert alphas.min() >= 0.0 and alphas.max() <= 1.0
    assert alphas.sum(axis=1).max() <= 1.0 + 1e-5
    # every person is visible somewhere in the clip
    assert (alphas.reshape(3, 3, -1).max(axis=2) > 0.5).any(axis=0).all()


def test_make_clip_defaults_and_repeatable():
    frames, alphas = make_clip()
    assert frames.shape == (8, 256, 384, 3) and alphas.shape == (8, 3, 256, 384)
    again, again_alphas = make_clip(seed=0)
    np.testing.assert_array_equal(again, frames)
    np.testing.assert_array_equal(again_alphas, alphas)
    other, _ = make_clip(seed=1)
    assert not np.array_equal(other, frames)


def test_make_clip_people_move_smoothly_and_keep_their_index():
    _, alphas = make_clip(frames=4, height=96, width=160, people=2, seed=3)
    xs = np.arange(160)
    centres = (alphas.sum(axis=2) * xs).sum(axis=-1) / np.maximum(alphas.sum(axis=(2, 3)), 1e-6)   # (T, K)
    steps = np.abs(np.diff(centres, axis=0))
    assert steps.max() < 160 * 0.3   # no jumps: the same person stays on their path


def test_make_clip_zero_people():
    frames, alphas = make_clip(frames=1, height=32, width=32, people=0)
    assert frames.shape == (1, 32, 32, 3) and alphas.shape == (1, 0, 32, 32)


# ---------------------------------------------------------------- compositing


def test_composite_layers_obeys_compositing_equation():
    rng = np.random.default_rng(0)
    h, w = 40, 50
    background = rng.random((h, w, 3), dtype=np.float32)
    colours = [rng.random((h, w, 3), dtype=np.float32) for _ in range(3)]
    alphas = [rng.random((h, w), dtype=np.float32) for _ in range(3)]
    image, visible = composite_layers(background, colours, alphas)
    assert visible.sum(axis=0).max() <= 1.0 + 1e-6
    rebuilt = (visible[..., None] * np.stack(colours)).sum(axis=0) + (1 - visible.sum(axis=0))[..., None] * background
    np.testing.assert_allclose(image, rebuilt, atol=1e-5)
    # later layers cover earlier ones: an opaque last layer hides everything before it
    alphas[-1][:] = 1.0
    _, visible = composite_layers(background, colours, alphas)
    assert np.abs(visible[:-1]).max() == 0.0


def test_compose_with_figures_obeys_equation_and_targets():
    rng = np.random.default_rng(1)
    layers = procedural_layers(rng, 4, size=96)
    background = make_background(rng, 64, 64)
    composite = compose(rng, layers, background, people=3)
    k = len(composite.alphas)
    assert 1 <= k <= 3 and composite.masks.shape == composite.alphas.shape
    assert composite.alphas.sum(axis=0).max() <= 1.0 + 1e-5
    total = composite.alphas.sum(axis=0)
    rebuilt = (composite.alphas[..., None] * composite.colours).sum(axis=0) + (1 - total)[..., None] * background
    np.testing.assert_allclose(composite.image, rebuilt, atol=1e-5)
    target, colours = trimatte_targets(composite)
    assert target.shape == (k, 3, 64, 64) and colours.shape == (k, 3, 64, 64, 3)
    np.testing.assert_allclose(target.sum(axis=1), 1.0, atol=1e-5)
    merged = (target[..., None] * colours).sum(axis=1)
    np.testing.assert_allclose(merged, np.broadcast_to(composite.image, merged.shape), atol=1e-4)


def test_layer_pool_without_real_data():
    pool = LayerPool(seed=0, figures=3, figure_size=64, people_dir="/nonexistent", backgrounds_dir=None)
    assert pool.people == [] and pool.backgrounds == []
    composite = pool.composite(np.random.default_rng(0), 48, 64, people=(2, 3))
    assert composite.image.shape == (48, 64, 3) and composite.image.dtype == np.float32
    assert 0.0 <= composite.image.min() and composite.image.max() <= 1.0


def test_make_foreground_has_soft_edges_and_thin_strands():
    colour, alpha = make_foreground(np.random.default_rng(2), 128)
    assert colour.shape == (128, 128, 3) and alpha.shape == (128, 128)
    soft = (alpha > 0.02) & (alpha < 0.98)
    assert soft.sum() > 50                     # a real transition band, not a binary mask
    assert (alpha > 0.98).sum() > 500          # and a solid body


# ---------------------------------------------------------------- guidance masks


def test_simulated_guidance_is_imperfect_but_close():
    rng = np.random.default_rng(3)
    _, alpha = make_foreground(rng, 96)
    alphas = np.stack([alpha, alpha[:, ::-1]])
    masks = simulate_guidance(rng, alphas, strength=1.0)
    assert masks.shape == alphas.shape and masks.dtype == np.float32
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    for m, a in zip(masks, alphas):
        inter = ((m > 0.5) & (a > 0.5)).sum()
        union = ((m > 0.5) | (a > 0.5)).sum()
        assert inter / union > 0.2
    exact = simulate_guidance(rng, alphas, strength=0.0)
    np.testing.assert_array_equal(exact, (alphas >= 0.5).astype(np.float32))


def test_swap_patches_exchanges_between_people():
    masks = np.stack([np.zeros((32, 32), np.float32), np.ones((32, 32), np.float32)])
    swapped = swap_patches(np.random.default_rng(0), masks.copy())
    assert swapped[0].sum() > 0 and swapped[1].sum() < 32 * 32
    assert swapped.sum() == masks.sum()


# ---------------------------------------------------------------- foreground estimation


def test_estimate_foreground_removes_the_old_background():
    rng = np.random.default_rng(4)
    h, w = 48, 48
    fg = np.zeros((h, w, 3), np.float32)
    fg[...] = (0.9, 0.2, 0.1)
    bg = np.zeros((h, w, 3), np.float32)
    bg[...] = (0.0, 0.3, 0.9)
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = np.clip((24 - np.hypot(yy - 24, xx - 24)) / 6.0, 0, 1).astype(np.float32)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg + rng.normal(0, 0.005, (h, w, 3)).astype(np.float32)
    estimate = estimate_foreground(np.clip(image, 0, 1), alpha)
    band = (alpha > 0.1) & (alpha < 0.9)
    naive = np.abs(image[band] - fg[band]).mean()
    ours = np.abs(estimate[band] - fg[band]).mean()
    assert ours < 0.5 * naive


# ---------------------------------------------------------------- HIM2K layout and the synth command


def test_him2k_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    image = (rng.random((20, 30, 3)) * 255).astype(np.uint8)
    alphas = rng.random((2, 20, 30)).astype(np.float32)
    masks = (alphas > 0.5).astype(np.float32)
    write_sample(tmp_path, "comp", "a", image, alphas, masks)
    write_sample(tmp_path, "natural", "b", image, alphas[:1])
    data = Him2kDataset(tmp_path)
    assert len(data) == 2
    sample = data[0]
    assert sample.name == "a" and sample.subset == "comp" and sample.image.shape == (20, 30, 3)
    np.testing.assert_allclose(sample.alphas, alphas, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(sample.masks, masks)
    assert data[1].masks is None and data[1].alphas.shape == (1, 20, 30)
    assert len(Him2kDataset(tmp_path, "natural")) == 1


def test_synth_command_writes_him2k_layout(tmp_path):
    from engine.commands import synth as synth_cli

    args = argparse.Namespace(fg=None, bg=None, out=tmp_path / "set", count=2, size=(48, 64), people=(2, 3),
                              figures=3, real_share=0.5, mask_strength=0.5, subset="comp", seed=0)
    assert synth_cli.run(args) == 0
    data = Him2kDataset(tmp_path / "set", "comp")
    assert len(data) == 2
    for sample in data:
        assert sample.image.shape == (48, 64, 3)
        assert sample.masks is not None and sample.masks.shape == sample.alphas.shape
        assert sample.alphas.sum(axis=0).max() <= 1.0 + 2.0 / 255


# ---------------------------------------------------------------- real data (skipped when absent)


@needs_shared
def test_real_people_layers_and_composite():
    layers = load_people(SHARED / "people", max_side=160, names=["p_07141906"])
    assert len(layers) == 1
    layer = layers[0]
    assert layer.colour.shape[:2] == layer.alpha.shape and layer.colour.dtype == np.float32
    assert 0.0 <= layer.colour.min() and layer.colour.max() <= 1.0
    rng = np.random.default_rng(6)
    background = make_background(rng, 64, 64)
    composite = compose(rng, [layer, Layer(*make_foreground(rng, 64))], background, people=2)
    total = composite.alphas.sum(axis=0)
    assert total.max() <= 1.0 + 1e-5
    rebuilt = (composite.alphas[..., None] * composite.colours).sum(axis=0) + (1 - total)[..., None] * background
    np.testing.assert_allclose(composite.image, rebuilt, atol=1e-5)
