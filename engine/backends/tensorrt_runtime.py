"""TensorRT: a deserialised engine run on torch CUDA tensors bound by address.

Per call the input shapes are set on the execution context, the outputs are allocated
as torch tensors of the shapes TensorRT reports, every tensor is bound with
``set_tensor_address`` and ``execute_async_v3`` runs on torch's current CUDA stream, so
the work is ordered with the pipeline's own torch ops and nothing is copied or synced.
People beyond the profile's maximum are run in chunks; frames outside the profile's
height/width range are refused with a message that says how to build a wider engine.
The dense/windowed refiner runs in PyTorch on the same GPU (it is tiny and takes all
the people of a frame at once, which a fixed profile would bound).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import torch

from .base import MATTING_INPUTS, MATTING_OUTPUTS, Backend, BackendUnavailable
from .cache import engines_dir, normalised, read_sidecar, stale_reason
from .tensorrt_keys import (
    DEFAULT_WORKSPACE_MIB,
    Profile,
    TensorRTUnavailable,
    cuda_compute_capability,
    engine_fields,
    engine_path_for,
    import_tensorrt,
)

logger = logging.getLogger("instmatt")


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, engine_path: str | Path, device: torch.device | str, reason: str, torch_refiner,
                 width: float = 1.0, weights_path: str | None = None, precision: str = "fp32", keep=None):
        super().__init__(reason, device, width, weights_path)
        self._keep = keep  # e.g. the temporary folder of a random network's graphs
        trt = import_tensorrt()
        self.trt = trt
        self.engine_path = Path(engine_path)
        self.precision = precision
        self.torch_refiner = torch_refiner
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        with torch.cuda.device(self.device):
            self.engine = self.runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if self.engine is None:
                raise BackendUnavailable(f"TensorRT could not deserialise {self.engine_path.name}")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(index) for index in range(self.engine.num_io_tensors)]
        self.inputs = [name for name in names if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT]
        self.outputs = [name for name in names if name not in self.inputs]
        if sorted(self.inputs) != sorted(MATTING_INPUTS) or sorted(self.outputs) != sorted(MATTING_OUTPUTS):
            raise BackendUnavailable(f"{self.engine_path.name} is not an InstMatt matting engine "
                                     f"(inputs {self.inputs}, outputs {self.outputs})")
        low, _, high = self.engine.get_tensor_profile_shape("image", 0)
        self.min_shape = tuple(int(v) for v in low)
        self.max_shape = tuple(int(v) for v in high)
        self.chunk = self.max_shape[0]
        self.dtypes = {name: self._torch_dtype(self.engine.get_tensor_dtype(name)) for name in names}

    def _torch_dtype(self, dtype):
        trt = self.trt
        table = {trt.float32: torch.float32, trt.float16: torch.float16}
        if dtype not in table:
            raise BackendUnavailable(f"unexpected engine tensor type {dtype}")
        return table[dtype]

    def _check_size(self, height: int, width: int) -> None:
        _, _, low_h, low_w = self.min_shape
        _, _, high_h, high_w = self.max_shape
        if not (low_h <= height <= high_h and low_w <= width <= high_w):
            raise ValueError(f"padded frame {width}x{height} is outside the engine's profile "
                             f"({low_w}x{low_h} to {high_w}x{high_h}); rebuild with a wider profile "
                             f"(instmatt-build build --max-shape ...) or lower max_side")

    def matting(self, image: torch.Tensor, trimask: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check_size(image.shape[2], image.shape[3])
        return super().matting(image, trimask)

    @torch.inference_mode()
    def _matting_batch(self, image: torch.Tensor, trimask: torch.Tensor) -> dict[str, torch.Tensor]:
        stream = torch.cuda.current_stream(self.device)
        results = {}
        for name, tensor in (("image", image), ("trimask", trimask)):
            tensor = tensor.to(self.device, self.dtypes[name]).contiguous()
            results[name] = tensor  # referenced until the work is queued on this stream
            if not self.context.set_input_shape(name, tuple(tensor.shape)):
                raise ValueError(f"TensorRT refused the shape {tuple(tensor.shape)} for {name}")
            self.context.set_tensor_address(name, tensor.data_ptr())
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            results[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
            self.context.set_tensor_address(name, results[name].data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        # torch's allocator reuses the inputs' memory only for later work on this same stream
        return {name: results[name].float() for name in MATTING_OUTPUTS}

    @torch.inference_mode()
    def refiner(self, image: torch.Tensor, trimatte: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        return self.torch_refiner(image.float(), trimatte.float(), feature.float())

    def describe(self) -> dict:
        return {**super().describe(), "engine": str(self.engine_path), "precision": self.precision,
                "tensorrt": self.trt.__version__, "profile": {"min": self.min_shape, "max": self.max_shape}}


def open_tensorrt(weights, device: torch.device, reason: str, cache_dir, precision: str, options: dict,
                  build_missing: bool) -> TensorRTBackend:
    """A TensorRT backend for ``weights`` or BackendUnavailable saying why not.

    Checks, in order: tensorrt importable, CUDA present, device is CUDA; then looks for
    the engine keyed by (TensorRT version, compute capability, ONNX hash, profile,
    precision): ``options["engine"]`` if given (its profile read from its sidecar), else
    the cache entry for ``options["profile"]`` (default profile), else - when no profile
    was asked for - any cached engine built for this TensorRT, GPU, graph and precision
    (e.g. by ``instmatt-build build`` with a custom profile). A missing engine is built
    only when ``build_missing`` (an explicit request); a stale one (its sidecar disagrees)
    is rebuilt, never run.
    """
    try:
        trt = import_tensorrt()
        compute_capability = cuda_compute_capability(device if device.type == "cuda" else None)
    except TensorRTUnavailable as exc:
        raise BackendUnavailable(str(exc)) from None
    if device.type != "cuda":
        raise BackendUnavailable(f"the device is {device.type}, TensorRT needs CUDA")
    explicit = options.get("engine")
    profile = options.get("profile")
    workspace = int(options.get("workspace_mib", DEFAULT_WORKSPACE_MIB))
    if explicit and profile is None:
        stored = (read_sidecar(explicit) or {}).get("fields") or {}
        if isinstance(stored.get("profile"), dict):
            profile = stored["profile"]
            workspace = int(stored.get("workspace_mib") or workspace)
            precision = stored.get("precision", precision)
    search = profile is None and not explicit
    profile = profile or Profile()
    if isinstance(profile, dict):
        profile = Profile(**profile)
    holder: dict = {}
    try:
        onnx_path, _ = weights.graphs(cache_dir, precision, holder)
    except Exception as exc:
        raise BackendUnavailable(f"ONNX export for TensorRT failed ({type(exc).__name__}: {exc})") from None
    fields = engine_fields(onnx_path, profile, precision, workspace, trt.__version__, compute_capability)
    path = Path(explicit) if explicit else engine_path_for(fields, cache_dir)
    if search and not path.is_file():
        found = _matching_engine(engines_dir(cache_dir), fields)
        if found is not None:
            path, stored = found
            profile = Profile(**stored["profile"])
            workspace = int(stored.get("workspace_mib") or workspace)
    exists = path.is_file()
    if not exists and not build_missing:
        raise BackendUnavailable(f"no engine built yet for TensorRT {trt.__version__}, sm_{compute_capability}, "
                                 f"these weights and precision {precision} (build one: instmatt-build build, "
                                 f"or ask for preference 'tensorrt')")
    stale = stale_reason(path, engine_fields(onnx_path, profile, precision, workspace, trt.__version__,
                                             compute_capability)) if exists else None
    if not exists or stale:
        build_engine_in_child(onnx_path, path, profile, precision, workspace, cache_dir, device)
    if stale:
        reason = f"{reason} (engine rebuilt: {stale})"
    torch_refiner = weights.model.to(device).refiner
    return TensorRTBackend(path, device, reason, torch_refiner, weights.width, weights.source, precision, keep=holder)


def build_engine_in_child(onnx_path: Path, path: Path, profile: Profile, precision: str, workspace_mib: int,
                          cache_dir, device: torch.device) -> None:
    """Build with ``python -m build_trt build`` in a child process: the engine package never
    imports build_trt, and a crashing TensorRT builder cannot take the job down."""
    shapes = [f"--{name}-shape={'x'.join(str(v) for v in getattr(profile, name))}" for name in ("min", "opt", "max")]
    command = [sys.executable, "-m", "build_trt", "build", "--onnx", str(onnx_path), "--out", str(path),
               "--precision", precision, "--workspace-mib", str(workspace_mib), "--force", *shapes]
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    environment = None
    if device.index is not None:
        environment = dict(os.environ, CUDA_VISIBLE_DEVICES=str(device.index))
    logger.info("building a TensorRT engine for %s (minutes): %s", Path(onnx_path).name, " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    if done.returncode != 0 or not Path(path).is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackendUnavailable(f"building the TensorRT engine failed: {last}")


def _matching_engine(directory: Path, fields: dict):
    """The newest cached engine whose sidecar matches ``fields`` except profile and workspace."""
    wanted = {key: value for key, value in normalised(fields).items() if key not in ("profile", "workspace_mib")}
    best = None
    for plan in sorted(directory.glob("instmatt-*.plan")) if directory.is_dir() else []:
        stored = (read_sidecar(plan) or {}).get("fields") or {}
        if isinstance(stored.get("profile"), dict) and all(stored.get(k) == v for k, v in wanted.items()):
            if best is None or plan.stat().st_mtime > best[0].stat().st_mtime:
                best = (plan, stored)
    return best
