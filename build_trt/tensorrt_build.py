"""TensorRT engines from the exported ONNX: profile, workspace, timing cache, precision.

Everything that talks to TensorRT imports it lazily, so this module (its profile and
precision logic, which the tests check everywhere) loads without TensorRT or a GPU.

Precision (see docs/backends.md):

- ``fp32``: the FP32 graph. TensorRT 10 may use TF32 for convolutions (its default);
  TensorRT 11 builds it strongly typed as it does every network.
- ``fp16``: the FP16 graph from :mod:`build_trt.fp16` (FP16 body, FP32 I/O, heads and
  reductions FP32), built as a *strongly typed* network so the types in the graph are
  the types that run. That is the only FP16 in TensorRT 11 (``BuilderFlag.FP16`` is
  gone) and the same engine on TensorRT 10 (network flag ``STRONGLY_TYPED``). Only when
  an FP32 graph is given to TensorRT 10 with ``fp16`` does the builder fall back to weak
  typing with ``BuilderFlag.FP16`` (TensorRT then picks per layer); TensorRT 11 refuses
  that combination and says to export the FP16 graph.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .cache import (cache_key, engine_key_fields, engines_dir, file_sha256, stale_reason, write_sidecar)

logger = logging.getLogger("instmatt")

DEFAULT_WORKSPACE_MIB = 4096
MATTING_INPUTS = ("image", "trimask")


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or CUDA) is missing here; the message says which."""


class BuildError(RuntimeError):
    """The ONNX graph could not be parsed or built into an engine."""


@dataclass(frozen=True)
class Profile:
    """Optimisation profile in (people, height, width) for the padded network input.

    The pipeline caps the longest side at 1280 and pads to a multiple of 32 plus 32 px
    on every side, so 1344 covers every frame it sends; 800x1344 is a padded 1280x720.
    """

    min: tuple[int, int, int] = (1, 64, 64)
    opt: tuple[int, int, int] = (2, 800, 1344)
    max: tuple[int, int, int] = (4, 1344, 1344)

    def __post_init__(self):
        for name in ("min", "opt", "max"):
            value = tuple(int(v) for v in getattr(self, name))
            if len(value) != 3 or min(value) < 1:
                raise ValueError(f"profile {name} must be three positive numbers (people, height, width), got {value}")
            if value[1] % 32 or value[2] % 32:
                raise ValueError(f"profile {name} height and width must be multiples of 32, got {value[1]}x{value[2]}")
            object.__setattr__(self, name, value)
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise ValueError(f"profile must satisfy min <= opt <= max in every axis, got {self.min}, {self.opt}, {self.max}")

    def shapes(self, channels: int = 3) -> tuple[tuple, tuple, tuple]:
        return tuple((n, channels, h, w) for n, h, w in (self.min, self.opt, self.max))

    def as_dict(self) -> dict:
        return {key: list(value) for key, value in asdict(self).items()}

    @classmethod
    def parse(cls, min: str | None = None, opt: str | None = None, max: str | None = None) -> "Profile":
        """From strings like ``"1x64x64"`` or ``"1,64,64"`` (people, height, width)."""
        default = cls()

        def one(text, fallback):
            if text is None:
                return fallback
            parts = str(text).replace("x", ",").split(",")
            try:
                return tuple(int(part) for part in parts)
            except ValueError:
                raise ValueError(f"profile shapes are PEOPLExHEIGHTxWIDTH, got {text!r}") from None

        return cls(one(min, default.min), one(opt, default.opt), one(max, default.max))


def tensorrt_version_tuple(version: str) -> tuple[int, ...]:
    numbers = []
    for part in str(version).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


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


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable(f"tensorrt is not importable ({exc})") from None
    return tensorrt


def cuda_compute_capability(device=None) -> str:
    try:
        import torch
    except ImportError:
        raise TensorRTUnavailable("torch is not importable, so the GPU cannot be identified") from None
    if not torch.cuda.is_available():
        raise TensorRTUnavailable("CUDA is not available (torch.cuda.is_available() is False)")
    major, minor = torch.cuda.get_device_capability(device)
    return f"{major}.{minor}"


def onnx_precision_of(onnx_path: str | Path) -> str:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    return metadata.get("instmatt.precision", "fp32")


def engine_fields(onnx_path: str | Path, profile: Profile, precision: str, workspace_mib: int,
                  tensorrt_version: str, compute_capability: str) -> dict:
    return engine_key_fields(tensorrt_version, compute_capability, file_sha256(onnx_path), profile.as_dict(),
                             precision, workspace_mib)


def engine_path_for(fields: dict, cache_dir: str | Path | None = None) -> Path:
    return engines_dir(cache_dir) / f"instmatt-{cache_key(fields)}.plan"


def timing_cache_path(tensorrt_version: str, compute_capability: str, cache_dir: str | Path | None = None) -> Path:
    return engines_dir(cache_dir) / f"timing-trt{tensorrt_version}-sm{compute_capability.replace('.', '')}.cache"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + f".partial{os.getpid()}")
    temporary.write_bytes(data)
    temporary.replace(path)


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
    _write_atomic(engine_path, bytes(serialized))
    _write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
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
