"""--temporal in the job: each frame's soft edges held to its neighbour's, person by person."""

from __future__ import annotations

import numpy as np

from engine.evaluation.video import warp_error
from engine.guidance import ArrayGuidance
from engine.inference.temporal import ChatterControl
from engine.io import read_person_exr
from engine.io.sources import ArraySource
from engine.job import MatteJob
from engine.settings import MatteSettings


def _run(tiny_model, frames, alphas, folder, temporal):
    masks = {t + 1: (alphas[t] > 0.5).astype(np.float32) for t in range(len(frames))}
    job = MatteJob(ArraySource(frames, "clip"), str(folder / "clip.####.exr"), ArrayGuidance(masks, {
        t + 1: [1, 2] for t in range(len(frames))}), tiny_model, MatteSettings(refine="none", temporal=temporal))
    assert job.run().written == len(frames)
    return np.stack([read_person_exr(folder / f"clip.{t + 1:04d}.exr")[1] for t in range(len(frames))])


def test_temporal_lowers_the_warp_error_and_leaves_the_first_frame(tiny_model, small_clip, tmp_path):
    frames, alphas = small_clip
    plain = _run(tiny_model, frames, alphas, tmp_path / "off", 0.0)
    held = _run(tiny_model, frames, alphas, tmp_path / "on", 1.0)
    assert np.array_equal(plain[0], held[0])  # nothing before it to hold to
    assert not np.array_equal(plain[1:], held[1:])
    assert warp_error(held, frames) < warp_error(plain, frames)


def test_a_person_new_in_the_frame_and_a_jump_are_left_alone():
    rng = np.random.default_rng(0)
    frame = (rng.random((32, 48, 3)) * 255).astype(np.uint8)
    soft = np.full((1, 32, 48), 0.5, np.float32)
    control = ChatterControl(1.0)
    control(0, frame, ["person_01"], soft)
    new = np.full((1, 32, 48), 0.3, np.float32)
    assert np.array_equal(control(1, frame, ["person_02"], new), new)  # not pulled to person 1
    assert np.array_equal(control(5, frame, ["person_02"], soft), soft)  # frame 5 is no neighbour of 1
    pulled = control(6, frame, ["person_02"], new)
    assert np.allclose(pulled, 0.5, atol=1e-3)  # same image: held fully to the frame before
