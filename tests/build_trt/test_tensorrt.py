"""TensorRT engines: build, run through the pipeline, cache, rebuild when stale.

These need the ``tensorrt`` package and a CUDA GPU; elsewhere they skip and say which
is missing. (The profile, key and precision logic is tested everywhere in test_cache.py.)
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch


def _missing() -> str | None:
    try:
        importlib.import_module("tensorrt")
    except ImportError as exc:
        return f"needs TensorRT: tensorrt is not importable ({exc})"
    if not torch.cuda.is_available():
        return "needs a CUDA GPU: torch.cuda.is_available() is False"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")

SMALL = {"min": (1, 64, 64), "opt": (2, 160, 160), "max": (5, 320, 320)}


@pytest.fixture(scope="module")
def cuda_model():
    from engine.model import load_model

    torch.manual_seed(0)
    return load_model(None, "cuda", width=0.25)


@pytest.mark.parametrize("precision, tolerance", [("fp32", 5e-3), ("fp16", 3e-2)])
def test_engine_matches_pytorch_through_the_pipeline(cuda_model, tmp_path, precision, tolerance, make_scene):
    from build_trt.tensorrt_build import Profile
    from engine.backends import create_backend
    from engine.inference.pipeline import matte

    reference = create_backend("pytorch", weights=cuda_model, device="cuda")
    backend = create_backend("tensorrt", weights=cuda_model, device="cuda", cache_dir=tmp_path,
                             precision=precision, tensorrt={"profile": Profile(**SMALL), "workspace_mib": 1024})
    assert backend.name == "tensorrt"
    assert backend.engine_path.is_file()
    for size, people in [((70, 90), 1), ((100, 130), 5), ((200, 150), 7)]:  # 7 > max people: chunks
        image, masks = make_scene(*size, people, seed=people)
        for refine in ("none", "dense"):
            expected = matte(reference, image, masks, refine=refine)
            got = matte(backend, image, masks, refine=refine)
            assert np.abs(got - expected).max() < tolerance, (size, people, refine)


def test_engine_is_cached_and_rebuilt_when_stale(cuda_model, tmp_path):
    import tensorrt

    from build_trt.tensorrt_build import Profile, ensure_engine, timing_cache_path
    from engine.backends.cache import sidecar_path, tensors_sha256
    from engine.backends.onnx_export import cached_graphs

    cpu_model = __import__("copy").deepcopy(cuda_model).cpu()
    onnx_path, _ = cached_graphs(cpu_model, tensors_sha256(cpu_model.state_dict()), tmp_path)
    profile = Profile(**SMALL)
    engine = ensure_engine(onnx_path, profile, "fp32", 1024, tmp_path)
    stamp = engine.stat().st_mtime_ns
    capability = "{}.{}".format(*torch.cuda.get_device_capability())
    assert timing_cache_path(tensorrt.__version__, capability, tmp_path).is_file()
    assert ensure_engine(onnx_path, profile, "fp32", 1024, tmp_path) == engine
    assert engine.stat().st_mtime_ns == stamp  # reused
    sidecar = json.loads(sidecar_path(engine).read_text())
    sidecar["fields"]["tensorrt_version"] = "0.0.0"
    sidecar_path(engine).write_text(json.dumps(sidecar))
    assert ensure_engine(onnx_path, profile, "fp32", 1024, tmp_path) == engine
    assert engine.stat().st_mtime_ns != stamp  # stale: rebuilt, not run
    assert json.loads(sidecar_path(engine).read_text())["fields"]["tensorrt_version"] == tensorrt.__version__


def test_auto_picks_a_built_engine_and_refuses_sizes_outside_its_profile(cuda_model, tmp_path):
    from build_trt.tensorrt_build import Profile
    from engine.backends import create_backend

    options = {"profile": Profile(**SMALL), "workspace_mib": 1024}
    auto = create_backend("auto", weights=cuda_model, device="cuda", cache_dir=tmp_path, tensorrt=options)
    assert auto.name == "onnxruntime" or auto.name == "pytorch"  # nothing built yet: no surprise build
    assert "no engine built yet" in auto.reason
    create_backend("tensorrt", weights=cuda_model, device="cuda", cache_dir=tmp_path, tensorrt=options)
    auto = create_backend("auto", weights=cuda_model, device="cuda", cache_dir=tmp_path, tensorrt=options)
    assert auto.name == "tensorrt"
    too_big = torch.zeros(1, 3, 352, 352, device="cuda")
    with pytest.raises(ValueError, match="outside the engine's profile"):
        auto.matting(too_big, too_big)


def test_cli_builds_an_engine(tmp_path, capsys):
    from build_trt.__main__ import main

    onnx_path = tmp_path / "tiny.onnx"
    assert main(["export", "--random-width", "0.25", "--out", str(onnx_path), "--precision", "fp16"]) == 0
    assert main(["build", "--onnx", str(onnx_path), "--precision", "fp16", "--cache-dir", str(tmp_path),
                 "--min-shape", "1x64x64", "--opt-shape", "1x128x128", "--max-shape", "2x256x256",
                 "--workspace-mib", "1024"]) == 0
    assert "engine:" in capsys.readouterr().out
