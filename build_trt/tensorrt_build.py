"""TensorRT engines from the exported ONNX: profile, workspace, timing cache, precision.

Everything that talks to TensorRT imports it lazily, so this module (its profile and
precision logic, which the tests check everywhere) loads without TensorRT or a GPU.

Precision (see docs/backends.md):

- ``fp32``: the FP32 graph. TensorRT 10 may use TF32 for convolutions (its default);
  TensorRT 11 builds it strongly typed as it does every network.
- ``fp16``: the FP16 graph from :mod:`engine.backends.onnx_fp16` (FP16 body, FP32 I/O, heads and
  reductions FP32), built as a *strongly typed* network so the types in the graph are
  the types that run. That is the only FP16 in TensorRT 11 (``BuilderFlag.FP16`` is
  gone) and the same engine on TensorRT 10 (network flag ``STRONGLY_TYPED``). Only when
  an FP32 graph is given to TensorRT 10 with ``fp16`` does the builder fall back to weak
  typing with ``BuilderFlag.FP16`` (TensorRT then picks per layer); TensorRT 11 refuses
  that combination and says to export the FP16 graph.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.backends.base import MATTING_INPUTS
from engine.backends.cache import stale_reason, write_sidecar
from engine.backends.tensorrt_keys import (
    DEFAULT_WORKSPACE_MIB,
    Profile,
    TensorRTUnavailable,
    cuda_compute_capability,
    engine_fields,
    engine_path_for,
    import_tensorrt,
    onnx_precision_of,
    tensorrt_version_tuple,
    timing_cache_path,
)
from engine.io.atomic import write_bytes_atomic

logger = logging.getLogger("instmatt")

__all__ = ["BuildError", "Profile", "TensorRTUnavailable", "build_engine", "ensure_engine", "precision_plan",
           "timing_cache_path", "DEFAULT_WORKSPACE_MIB"]


class BuildError(RuntimeError):
    """The ONNX graph could not be parsed or built into an engine."""


def precision_plan(tensorrt_version: str, onnx_precision: str, precision: str) -> dict:
    """How to build: ``{"strongly_typed": bool, "fp16_flag": bool}`` or BuildError.

    ``onnx_precision`` is the graph's own (its ``instmatt.precision`` metadata).
    """
    version = tensorrt_version_tuple(tensorrt_version)
    major = version[0] if version else 0
    if precision not in ("fp32", "fp16"):
        raise BuildError(f"precision must be fp32 or fp16, got {precision!r}")
    if onnx_precision not in ("fp32", "fp16"):
        raise BuildError(f"unknown ONNX precision {onnx_precision!r}")
    if major < 10:
        raise BuildError(f"TensorRT {tensorrt_version} is too old: TensorRT 10 or newer is needed")
    if precision == "fp32":
        if onnx_precision != "fp32":
            raise BuildError("an fp32 engine needs the fp32 ONNX graph (export with --precision fp32)")
        return {"strongly_typed": major >= 11, "fp16_flag": False}
    if onnx_precision == "fp16":
        return {"strongly_typed": True, "fp16_flag": False}
    if major >= 11:
        raise BuildError("TensorRT 11 has no FP16 builder flag: export the FP16 graph "
                         "(python -m build_trt export --precision fp16) and build that")
    return {"strongly_typed": False, "fp16_flag": True}


def build_engine(onnx_path: str | Path, engine_path: str | Path | None = None, profile: Profile | None = None,
                 precision: str = "fp32", workspace_mib: int = DEFAULT_WORKSPACE_MIB,
                 cache_dir: str | Path | None = None, timing_cache: str | Path | None = None,
                 device=None) -> Path:
    """Build (always) an engine for ``onnx_path``; writes the plan, its sidecar and the timing cache."""
    trt = import_tensorrt()
    compute_capability = cuda_compute_capability(device)
    profile = profile or Profile()
    onnx_path = Path(onnx_path)
    plan = precision_plan(trt.__version__, onnx_precision_of(onnx_path), precision)
    fields = engine_fields(onnx_path, profile, precision, workspace_mib, trt.__version__, compute_capability)
    engine_path = Path(engine_path) if engine_path else engine_path_for(fields, cache_dir)
    timing_cache = Path(timing_cache) if timing_cache else timing_cache_path(trt.__version__, compute_capability, cache_dir)

    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    flags = 0
    if plan["strongly_typed"]:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(index)) for index in range(parser.num_errors)]
        raise BuildError(f"TensorRT could not parse {onnx_path.name}: " + "; ".join(errors[:5]))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    if plan["fp16_flag"]:
        config.set_flag(trt.BuilderFlag.FP16)  # TensorRT 10 only (weak typing), see module doc
    optimisation = builder.create_optimization_profile()
    input_names = [network.get_input(index).name for index in range(network.num_inputs)]
    if sorted(input_names) != sorted(MATTING_INPUTS):
        raise BuildError(f"{onnx_path.name} has inputs {input_names}, expected {list(MATTING_INPUTS)}")
    for name in input_names:
        optimisation.set_shape(name, *profile.shapes(3))
    config.add_optimization_profile(optimisation)

    cache_bytes = timing_cache.read_bytes() if timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    if not config.set_timing_cache(cache, False):
        logger.warning("timing cache %s did not match this TensorRT/GPU; starting a new one", timing_cache)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)

    logger.info("building TensorRT %s engine from %s (profile %s, %s); this takes minutes",
                trt.__version__, onnx_path.name, profile.as_dict(), precision)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"TensorRT failed to build an engine from {onnx_path.name} (see the log above)")
    write_bytes_atomic(engine_path, bytes(serialized))
    write_bytes_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    write_sidecar(engine_path, fields, {"onnx": str(onnx_path), "plan": plan})
    return engine_path


def ensure_engine(onnx_path: str | Path, profile: Profile | None = None, precision: str = "fp32",
                  workspace_mib: int = DEFAULT_WORKSPACE_MIB, cache_dir: str | Path | None = None,
                  engine_path: str | Path | None = None, build: bool = True, device=None) -> Path:
    """The cached engine for this ONNX/profile/precision/TensorRT/GPU, built or rebuilt if stale."""
    trt = import_tensorrt()
    compute_capability = cuda_compute_capability(device)
    profile = profile or Profile()
    fields = engine_fields(onnx_path, profile, precision, workspace_mib, trt.__version__, compute_capability)
    path = Path(engine_path) if engine_path else engine_path_for(fields, cache_dir)
    reason = stale_reason(path, fields)
    if reason is None:
        return path
    if not build:
        raise TensorRTUnavailable(f"no current engine ({reason}); build one with `instmatt-build build`")
    logger.info("TensorRT engine %s: %s, rebuilding", path.name, reason)
    return build_engine(onnx_path, path, profile, precision, workspace_mib, cache_dir, device=device)
