"""engine.backends: ONNX Runtime == PyTorch through the whole pipeline, and the choice of backend."""

from __future__ import annotations

import logging
import sys
import types

import numpy as np
import pytest
import torch

from engine.backends import BackendUnavailable, create_backend
from engine.inference.pipeline import matte

TOLERANCE = 1e-4

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_model(random_tiny_model):
    return random_tiny_model


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("instmatt-cache")


@pytest.fixture(scope="module")
def pair(tiny_model, cache_dir):
    """The same weights behind the PyTorch and the ONNX Runtime backends."""
    pytorch = create_backend("pytorch", weights=tiny_model, device="cpu")
    onnxruntime = create_backend("onnxruntime", weights=tiny_model, device="cpu", cache_dir=cache_dir, threads=1)
    return pytorch, onnxruntime


def scene(height: int, width: int, people: int, seed: int = 0):
    """An image and ``people`` soft, overlapping elliptical masks."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    masks = []
    for _ in range(people):
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        ry, rx = rng.uniform(0.15, 0.4) * height, rng.uniform(0.1, 0.3) * width
        distance = np.sqrt(((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2)
        masks.append(np.clip((1.2 - distance) / 0.4, 0.0, 1.0))
    return image, np.stack(masks).astype(np.float32)


@pytest.mark.parametrize("refine", ["none", "dense", "windowed"])
@pytest.mark.parametrize("people", [1, 2, 5])
@pytest.mark.parametrize("size", [(70, 90), (100, 130)])
def test_onnxruntime_matches_pytorch_through_the_pipeline(pair, size, people, refine):
    pytorch, onnxruntime = pair
    image, masks = scene(*size, people, seed=people)
    expected = matte(pytorch, image, masks, refine=refine)
    got = matte(onnxruntime, image, masks, refine=refine)
    assert got.shape == expected.shape == (people, *size)
    assert np.abs(got - expected).max() < TOLERANCE


def test_onnxruntime_matches_pytorch_when_the_frame_is_downscaled(pair):
    pytorch, onnxruntime = pair
    image, masks = scene(100, 130, 3, seed=7)
    expected = matte(pytorch, image, masks, refine="dense", max_side=96)
    got = matte(onnxruntime, image, masks, refine="dense", max_side=96)
    assert np.abs(got - expected).max() < TOLERANCE


def test_onnxruntime_nets_match_for_several_sizes_and_chunks(pair, tiny_model):
    _, onnxruntime = pair
    for people, height, width in [(1, 64, 96), (5, 96, 64), (2, 160, 224)]:  # 5 people: two chunks
        image, trimask = torch.randn(people, 3, height, width), torch.rand(people, 3, height, width)
        with torch.no_grad():
            expected = tiny_model.matting(image, trimask)
        got = onnxruntime.matting(image, trimask)
        for name in expected:
            assert got[name].shape == expected[name].shape
            assert (got[name] - expected[name]).abs().max() < TOLERANCE, name
        # the refiner graph takes any size (windows are 320x320 crops, frames whatever is padded)
        crop = (slice(None), slice(None), slice(3, 3 + height - 7), slice(1, 1 + width - 5))
        with torch.no_grad():
            refined = tiny_model.refiner(image[crop], expected["alpha_os1"][crop], expected["feature"][crop])
        got = onnxruntime.refiner(image[crop], expected["alpha_os1"][crop], expected["feature"][crop])
        assert (got - refined).abs().max() < TOLERANCE


def test_backends_offer_the_interface(pair):
    for backend in pair:
        assert backend.name in ("pytorch", "onnxruntime")
        assert backend.reason
        assert backend.device == torch.device("cpu")
        assert backend.describe()["backend"] == backend.name


def test_onnx_cache_is_reused_for_the_same_weights(tiny_model, cache_dir):
    onnx_files = sorted(cache_dir.glob("onnx/*.onnx"))
    assert onnx_files  # written by the `pair` fixture or here
    stamps = {path: path.stat().st_mtime_ns for path in onnx_files}
    again = create_backend("onnxruntime", weights=tiny_model, device="cpu", cache_dir=cache_dir)
    assert again.matting_path in stamps
    assert {path: path.stat().st_mtime_ns for path in onnx_files} == stamps


# --- the automatic choice ----------------------------------------------------------------------

def _no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError


def test_auto_falls_back_to_onnxruntime_without_tensorrt(monkeypatch, tiny_model, cache_dir, caplog):
    _no_tensorrt(monkeypatch)
    with caplog.at_level(logging.INFO, logger="instmatt"):
        backend = create_backend("auto", weights=tiny_model, device="cpu", cache_dir=cache_dir, bf16=False)
    assert backend.name == "onnxruntime"
    assert "TensorRT unavailable: tensorrt is not importable" in backend.reason
    assert any("backend onnxruntime" in record.message for record in caplog.records)


def test_auto_falls_back_to_onnxruntime_without_cuda(monkeypatch, tiny_model, cache_dir):
    fake = types.ModuleType("tensorrt")
    fake.__version__ = "10.9.0"
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    backend = create_backend("auto", weights=tiny_model, cache_dir=cache_dir, bf16=False)
    assert backend.name == "onnxruntime"
    assert backend.device == torch.device("cpu")
    assert "CUDA is not available" in backend.reason


def test_auto_takes_pytorch_bf16_on_a_cpu_with_native_bf16(monkeypatch, tiny_model, cache_dir):
    _no_tensorrt(monkeypatch)
    monkeypatch.setattr("engine.backends.reduced.cpu_has_bf16", lambda: True)
    backend = create_backend("auto", weights=tiny_model, device="cpu", cache_dir=cache_dir)
    assert (backend.name, backend.precision) == ("pytorch", "bf16")
    assert "computes bf16 natively" in backend.reason and "tensorrt is not importable" in backend.reason
    monkeypatch.setattr("engine.backends.reduced.cpu_has_bf16", lambda: False)
    assert create_backend("auto", weights=tiny_model, device="cpu", cache_dir=cache_dir).name == "onnxruntime"
    # asked for by name, PyTorch stays fp32 (the reference)
    assert create_backend("pytorch", weights=tiny_model, device="cpu").precision == "fp32"


def test_auto_falls_back_to_pytorch_without_onnxruntime(monkeypatch, tiny_model, cache_dir):
    _no_tensorrt(monkeypatch)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    backend = create_backend("auto", weights=tiny_model, device="cpu", cache_dir=cache_dir, bf16=False)
    assert backend.name == "pytorch"
    assert "ONNX Runtime unavailable: onnxruntime is not importable" in backend.reason
    assert "tensorrt is not importable" in backend.reason


def test_backends_can_be_disabled_by_environment(monkeypatch, tiny_model, cache_dir):
    monkeypatch.setenv("INSTMATT_DISABLE_BACKENDS", "tensorrt, onnxruntime")
    backend = create_backend("auto", weights=tiny_model, device="cpu", cache_dir=cache_dir, bf16=False)
    assert backend.name == "pytorch"
    assert "ONNX Runtime disabled by INSTMATT_DISABLE_BACKENDS" in backend.reason


def test_asking_for_a_missing_backend_says_why(monkeypatch, tiny_model, cache_dir):
    _no_tensorrt(monkeypatch)
    with pytest.raises(BackendUnavailable, match="tensorrt is not importable"):
        create_backend("tensorrt", weights=tiny_model, cache_dir=cache_dir)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BackendUnavailable, match="onnxruntime is not importable"):
        create_backend("onnxruntime", weights=tiny_model, device="cpu", cache_dir=cache_dir)
    with pytest.raises(ValueError, match="preference"):
        create_backend("openvino", weights=tiny_model)


def test_random_weights_only_when_asked_for_by_name(caplog):
    with caplog.at_level(logging.WARNING, logger="instmatt"):
        backend = create_backend("pytorch", weights="random", device="cpu", width=0.25)
    assert backend.width == 0.25
    assert backend.weights_path is None
    assert any("RANDOM weights" in record.message for record in caplog.records)


def test_no_weights_means_the_shipped_checkpoint():
    from engine.weights import SHIPPED

    backend = create_backend("pytorch", device="cpu", threads=1)
    assert backend.weights_path == str(SHIPPED)


def test_onnx_export_bug_is_raised_not_hidden_by_a_fallback(monkeypatch, tiny_model, cache_dir):
    """Only 'unavailable' falls back; an exception inside the export reaches the caller."""
    def broken(*args, **kwargs):
        raise RuntimeError("export bug")

    monkeypatch.setattr("engine.backends.onnx_export.cached_graphs", broken)
    _no_tensorrt(monkeypatch)
    with pytest.raises(RuntimeError, match="export bug"):
        create_backend("auto", weights=tiny_model, device="cpu", cache_dir=cache_dir, bf16=False)


def test_pytorch_bf16_autocast_runs_and_stays_close(tiny_model):
    backend = create_backend("pytorch", weights=tiny_model, device="cpu", bf16=True)
    image, masks = scene(70, 90, 2)
    got = matte(backend, image, masks, refine="dense")
    backend.bf16 = False
    expected = matte(backend, image, masks, refine="dense")
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() < 0.05  # bf16 keeps 8 bits of mantissa; measured in the benchmark
