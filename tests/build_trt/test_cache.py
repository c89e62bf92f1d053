"""Cache keys, sidecars, profiles and the TensorRT 10/11 precision rules (no TensorRT needed)."""

from __future__ import annotations

import json

import pytest

from build_trt.tensorrt_build import (
    BuildError,
    Profile,
    TensorRTUnavailable,
    precision_plan,
    timing_cache_path,
)
from engine.backends.cache import (
    cache_key,
    engine_key_fields,
    file_sha256,
    onnx_key_fields,
    read_sidecar,
    sidecar_path,
    stale_reason,
    tensors_sha256,
    write_sidecar,
)

PROFILE = Profile((1, 64, 64), (2, 320, 320), (4, 640, 640)).as_dict()


def _engine_fields(**changes):
    fields = dict(tensorrt_version="10.9.0.34", compute_capability="8.9", onnx_sha256="ab" * 32,
                  profile=PROFILE, precision="fp16", workspace_mib=4096)
    fields.update(changes)
    return engine_key_fields(**fields)


@pytest.mark.parametrize("change", [
    {"tensorrt_version": "11.0.0"}, {"compute_capability": "9.0"}, {"onnx_sha256": "cd" * 32},
    {"profile": Profile((1, 64, 64), (2, 320, 320), (8, 640, 640)).as_dict()},
    {"profile": Profile((1, 64, 64), (1, 320, 320), (4, 640, 640)).as_dict()},
    {"precision": "fp32"}, {"workspace_mib": 2048},
])
def test_engine_key_changes_when_any_part_changes(change):
    assert cache_key(_engine_fields(**change)) != cache_key(_engine_fields())
    assert cache_key(_engine_fields()) == cache_key(_engine_fields())


@pytest.mark.parametrize("change", [{"weights_sha256": "2"}, {"width": 1.0}, {"opset": 18},
                                    {"precision": "fp16"}, {"export_version": 2}])
def test_onnx_key_changes_when_any_part_changes(change):
    base = dict(weights_sha256="1", width=0.25, opset=17, precision="fp32", export_version=1)
    assert cache_key(onnx_key_fields(**{**base, **change})) != cache_key(onnx_key_fields(**base))


def test_weight_hashes_see_every_value(tiny_model, tmp_path):
    import torch

    state = {key: value.clone() for key, value in tiny_model.state_dict().items()}
    before = tensors_sha256(state)
    first = next(key for key, value in state.items() if value.is_floating_point())
    state[first].view(-1)[0] += 1e-6
    assert tensors_sha256(state) != before
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"x" * 9 + b"y")
    assert file_sha256(a) != file_sha256(b)
    assert torch.is_tensor(state[first])


def test_sidecar_marks_engines_stale(tmp_path):
    engine = tmp_path / "instmatt-x.plan"
    fields = _engine_fields()
    assert "does not exist" in stale_reason(engine, fields)
    engine.write_bytes(b"plan")
    assert "no readable sidecar" in stale_reason(engine, fields)
    write_sidecar(engine, fields, {"onnx": "a.onnx"})
    assert stale_reason(engine, fields) is None
    assert read_sidecar(engine)["key"] == cache_key(fields)
    assert "tensorrt_version" in stale_reason(engine, _engine_fields(tensorrt_version="11.1.0"))
    assert "compute_capability" in stale_reason(engine, _engine_fields(compute_capability="12.0"))
    assert "profile" in stale_reason(engine, _engine_fields(profile=Profile().as_dict()))
    sidecar_path(engine).write_text("{not json")
    assert "no readable sidecar" in stale_reason(engine, fields)
    payload = {"key": cache_key(fields), "fields": {**fields, "onnx_sha256": "ee" * 32}}
    sidecar_path(engine).write_text(json.dumps(payload))
    assert "onnx_sha256" in stale_reason(engine, fields)


def test_onnx_cache_reexports_when_its_sidecar_disagrees(tiny_model, tmp_path):
    from engine.backends.onnx_export import cached_graphs

    path, refiner = cached_graphs(tiny_model, "weights-hash", tmp_path)
    assert path.is_file() and refiner.is_file() and sidecar_path(path).is_file()
    stamp = path.stat().st_mtime_ns
    assert cached_graphs(tiny_model, "weights-hash", tmp_path)[0] == path
    assert path.stat().st_mtime_ns == stamp
    sidecar = json.loads(sidecar_path(path).read_text())
    sidecar["fields"]["export_version"] = -1
    sidecar_path(path).write_text(json.dumps(sidecar))
    assert cached_graphs(tiny_model, "weights-hash", tmp_path)[0] == path
    assert json.loads(sidecar_path(path).read_text())["fields"]["export_version"] != -1
    other, _ = cached_graphs(tiny_model, "weights-hash", tmp_path, precision="fp16")
    assert other != path


def test_profile_validation_and_parsing():
    profile = Profile.parse("1x64x64", "2,320,640", "4x640x1280")
    assert profile.shapes() == ((1, 3, 64, 64), (2, 3, 320, 640), (4, 3, 640, 1280))
    assert Profile.parse().as_dict() == Profile().as_dict()
    with pytest.raises(ValueError, match="multiples of 32"):
        Profile((1, 64, 64), (2, 300, 320), (4, 640, 640))
    with pytest.raises(ValueError, match="min <= opt <= max"):
        Profile((1, 64, 64), (8, 320, 320), (4, 640, 640))
    with pytest.raises(ValueError, match="PEOPLExHEIGHTxWIDTH"):
        Profile.parse(max="big")


def test_precision_rules_for_tensorrt_10_and_11():
    # FP16 graph: strongly typed on both (TensorRT 11 has no FP16 flag)
    assert precision_plan("10.9.0", "fp16", "fp16") == {"strongly_typed": True, "fp16_flag": False}
    assert precision_plan("11.0.0", "fp16", "fp16") == {"strongly_typed": True, "fp16_flag": False}
    # FP32 graph asked to run FP16: weak typing with BuilderFlag.FP16 on 10, refused on 11
    assert precision_plan("10.3.0", "fp32", "fp16") == {"strongly_typed": False, "fp16_flag": True}
    with pytest.raises(BuildError, match="no FP16 builder flag"):
        precision_plan("11.2.0", "fp32", "fp16")
    assert precision_plan("10.9.0", "fp32", "fp32") == {"strongly_typed": False, "fp16_flag": False}
    assert precision_plan("11.0.0", "fp32", "fp32") == {"strongly_typed": True, "fp16_flag": False}
    with pytest.raises(BuildError, match="fp32 ONNX"):
        precision_plan("10.9.0", "fp16", "fp32")
    with pytest.raises(BuildError, match="too old"):
        precision_plan("8.6.1", "fp32", "fp32")


def test_timing_cache_is_per_tensorrt_and_gpu(tmp_path):
    a = timing_cache_path("10.9.0", "8.9", tmp_path)
    assert a != timing_cache_path("10.9.0", "9.0", tmp_path) != timing_cache_path("11.0.0", "8.9", tmp_path)
    assert a.parent == tmp_path / "engines"


def test_default_engine_cache_dir(monkeypatch, tmp_path):
    from pathlib import Path

    from engine.backends.cache import engines_dir

    monkeypatch.delenv("INSTMATT_CACHE_DIR", raising=False)
    assert engines_dir() == Path.home() / ".cache" / "blender-instmatt" / "engines"
    monkeypatch.setenv("INSTMATT_CACHE_DIR", str(tmp_path))
    assert engines_dir() == tmp_path / "engines"
    assert engines_dir(tmp_path / "x") == tmp_path / "x" / "engines"


def test_building_without_tensorrt_says_why(monkeypatch, tmp_path):
    import sys

    from build_trt.tensorrt_build import build_engine

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(TensorRTUnavailable, match="tensorrt is not importable"):
        build_engine(tmp_path / "missing.onnx")
