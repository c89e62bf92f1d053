"""The real engine (shipped weights, CLI in a subprocess) writes a Cryptomatte layer whose
decoded coverage equals each person's alpha, on generated and on real-people composites."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np

from engine.io import read_person_exr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cryptomatte_decoder import decode  # noqa: E402


def _run_engine(repo_root, python, rgb, alphas, folder):
    """Matte ``rgb`` with the shipped weights, guided by masks from ``alphas`` > 0.5."""
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "composite.png"), np.ascontiguousarray(rgb[..., ::-1]))
    (folder / "m" / "0001").mkdir(parents=True)
    for k, alpha in enumerate(alphas):
        cv2.imwrite(str(folder / "m" / "0001" / f"{k + 1:02d}.png"), ((alpha > 0.5) * 255).astype(np.uint8))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root))
    done = subprocess.run([python, "-m", "engine", "matte", str(folder / "composite.png"), "-o", str(folder / "out"),
                           "--masks", str(folder / "m"), "--backend", "pytorch", "--device", "cpu", "--threads", "1",
                           "-q"], cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    written = sorted((folder / "out").glob("*.exr"))
    assert len(written) == 1, written
    return written[0]


def _check_every_person(path, people):
    ids, alphas, manifest = read_person_exr(path)
    assert len(ids) == people and alphas[:, :, :].max() > 0.5
    for k, pid in enumerate(ids):
        name = manifest["cryptomatte"]["names"][pid]
        difference = float(np.abs(decode(path, name) - alphas[k]).mean())
        assert difference <= 0.01, (pid, difference)


def test_engine_exr_on_generated_people(repo_root, engine_python, tmp_path):
    from engine.data.figures import make_clip

    frames, alphas = make_clip(frames=1, height=96, width=144, people=3, seed=5)
    path = _run_engine(repo_root, engine_python, frames[0], alphas[0], tmp_path)
    _check_every_person(path, 3)


def test_engine_exr_on_real_people(repo_root, engine_python, shared_data, tmp_path):
    from engine.data.synth import compose, load_backgrounds, load_people

    rng = np.random.default_rng(3)
    people = load_people(shared_data / "people", max_side=320)
    background = load_backgrounds(shared_data / "backgrounds", max_side=400)[0][:240, :400]
    composite = compose(rng, people, background, people=3, mask_strength=None)
    rgb = (np.clip(composite.image, 0, 1) * 255 + 0.5).astype(np.uint8)
    path = _run_engine(repo_root, engine_python, rgb, composite.alphas, tmp_path)
    _check_every_person(path, len(composite.alphas))
