"""ONNX Runtime's telemetry is off: nothing written under ~/.cache/Microsoft (issue 14.11)."""

from __future__ import annotations

import os
import subprocess

import pytest

pytest.importorskip("onnxruntime")

SCRIPT = """
import sys
import numpy as np
from engine.backends import create_backend
backend = create_backend("onnxruntime", weights=sys.argv[1], device="cpu", threads=1)
image = np.zeros((64, 64, 3), np.uint8)
masks = np.zeros((1, 64, 64), np.float32)
masks[0, 16:48, 16:48] = 1
from engine.inference import matte
print(matte(backend, image, masks, refine="none").shape)
"""


def test_an_onnx_runtime_session_writes_no_telemetry(engine_python, repo_root, tiny_weights, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), OMP_NUM_THREADS="1", INSTMATT_CACHE_DIR=str(tmp_path / "cache"))
    run = subprocess.run([engine_python, "-c", SCRIPT, str(tiny_weights)], cwd=repo_root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "(1, 64, 64)" in run.stdout
    assert not (home / ".cache" / "Microsoft").exists(), sorted(str(p) for p in home.rglob("*"))
