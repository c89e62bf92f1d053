"""Backends: one interface (:class:`Backend`), three implementations, chosen automatically.

    backend = create_backend()                      # TensorRT -> PyTorch bf16 (CPU) -> ONNX Runtime -> PyTorch
    alphas = engine.inference.pipeline.matte(backend, image, masks, refine="dense")

Order of preference with ``preference="auto"``: TensorRT (a CUDA GPU, ``tensorrt``
importable and an engine for this GPU, TensorRT version, weights and profile in the
cache; a stale one is rebuilt), then, on a CPU that computes bf16 natively (AVX512-BF16
or AMX), PyTorch in bf16 (measured faster there than ONNX Runtime in fp32, which has no
bf16 CPU kernels: docs/performance.md), then ONNX Runtime (CUDA provider on a GPU, else CPU;
the ONNX graphs are exported on first use and cached by weights hash, width, opset and
precision), then eager PyTorch. ``"tensorrt"``, ``"onnxruntime"`` or ``"pytorch"`` asks
for one backend and raises :class:`BackendUnavailable` with the reason if it cannot run.
The environment variable ``INSTMATT_DISABLE_BACKENDS`` (comma-separated names) takes
backends out of the automatic choice. The choice and its reason are logged once on the
``instmatt`` logger and kept in ``backend.reason``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import torch

from engine.errors import InputFileError, UserError

from .base import Backend, BackendUnavailable
from .cache import file_sha256, tensors_sha256
from .pytorch import PyTorchBackend

logger = logging.getLogger("instmatt")

NAMES = ("tensorrt", "onnxruntime", "pytorch")
RANDOM = "random"  # weights=RANDOM: an untrained network, only when asked for by name
ALIASES = {"auto": "auto", "tensorrt": "tensorrt", "trt": "tensorrt", "onnxruntime": "onnxruntime",
           "ort": "onnxruntime", "onnx": "onnxruntime", "pytorch": "pytorch", "torch": "pytorch"}
ENV_DISABLE = "INSTMATT_DISABLE_BACKENDS"
RANDOM_WIDTH = 0.25

_logged: set[str] = set()


def _log_once(level: int, message: str) -> None:
    if message not in _logged:
        _logged.add(message)
        logger.log(level, message)


def _resolve_device(device) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("device 'cuda' was asked for but torch sees no CUDA device")
    return device


def _disabled() -> set[str]:
    names = {ALIASES.get(name.strip().lower(), name.strip().lower())
             for name in os.environ.get(ENV_DISABLE, "").split(",") if name.strip()}
    return names & set(NAMES)


class _Weights:
    """The network on the CPU plus what identifies its weights (for the compiled caches)."""

    def __init__(self, weights, width: float):
        from engine.model import load_model
        from engine.weights import default_weights_path

        self.path = None  # a file whose hash identifies the weights
        self.source = None  # what to report as the weights (a path, or None for random/in-memory)
        self.random = False
        if isinstance(weights, torch.nn.Module):
            self.model = weights
            self.source = getattr(weights, "weights_path", None)
        elif isinstance(weights, str) and weights == RANDOM:
            _log_once(logging.WARNING, f"RANDOM weights (width {width}) as asked: the mattes are meaningless")
            self.model = load_model(None, "cpu", width)
            self.random = True
        else:
            self.path = Path(default_weights_path() if weights is None else weights)
            if not self.path.is_file():
                raise InputFileError(self.path, "weights file not found")
            self.source = str(self.path)
            self.model = load_model(self.path, "cpu")
        self.width = float(getattr(self.model, "width", 1.0))
        self._sha256 = None

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = (file_sha256(self.path) if self.path is not None
                            else tensors_sha256(self.model.state_dict()))
        return self._sha256

    def graphs(self, cache_dir, precision: str, holder: dict) -> tuple[Path, Path]:
        """Exported (matting, refiner) ONNX files; random weights go to a private temp dir."""
        from .onnx_export import cached_graphs

        if self.random:
            temporary = tempfile.TemporaryDirectory(prefix="instmatt-onnx-")
            holder["temporary"] = temporary  # lives as long as the backend
            cache_dir = temporary.name
        model = self.model if next(self.model.parameters()).device.type == "cpu" else None
        if model is None:
            import copy
            model = copy.deepcopy(self.model).cpu()
        return cached_graphs(model, self.sha256, cache_dir, precision)


def _make_pytorch(weights: _Weights, device: torch.device, threads, reason: str, bf16: bool) -> Backend:
    if threads and device.type == "cpu":
        torch.set_num_threads(int(threads))
    return PyTorchBackend(weights.model.to(device), reason, bf16=bf16, weights_path=weights.source)


def _make_onnxruntime(weights: _Weights, device: torch.device, threads, reason: str, cache_dir,
                      precision: str) -> Backend:
    from .onnx_runtime import OnnxRuntimeBackend, import_onnxruntime, providers_for

    import_onnxruntime()
    providers_for(device)  # raises before the (slow) export when the provider is missing
    holder: dict = {}
    # an export failure is a bug to report, never a reason to fall back quietly
    matting_path, refiner_path = weights.graphs(cache_dir, precision, holder)
    return OnnxRuntimeBackend(matting_path, refiner_path, device, threads, reason, weights.width,
                              weights.source, keep=holder)


def _make_tensorrt(weights: _Weights, device: torch.device, reason: str, cache_dir, precision: str,
                   options: dict, build_missing: bool) -> Backend:
    from .tensorrt_runtime import open_tensorrt

    return open_tensorrt(weights, device, reason, cache_dir, precision, options, build_missing)


def create_backend(preference: str = "auto", weights=None, device=None, threads: int | None = None,
                   width: float = RANDOM_WIDTH, *, precision: str = "fp32", cache_dir=None,
                   bf16: bool | None = None, tensorrt: dict | None = None) -> Backend:
    """The best backend that runs here (or the one asked for), ready for ``engine.inference.pipeline.matte``.

    preference: ``"auto"`` (TensorRT -> ONNX Runtime -> PyTorch), ``"tensorrt"``,
        ``"onnxruntime"`` or ``"pytorch"``.
    weights: a checkpoint path (the authors' ``.pth`` or the project's files), an
        already loaded ``InstMatt``, None for the shipped weights, or ``"random"`` for an
        untrained network of ``width`` (tests and benchmarks only).
    device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...; None picks CUDA when torch sees it.
    threads: CPU threads (ONNX Runtime intra-op threads; ``torch.set_num_threads`` for PyTorch).
    width: channel width of the random network, used only with ``weights="random"``.
    precision: ``"fp32"`` or ``"fp16"`` for the compiled graphs (FP16 body, FP32 I/O).
    cache_dir: root of the ONNX/engine cache (default ``~/.cache/blender-instmatt``).
    bf16: reduced precision for the PyTorch backend (bf16 on the CPU, fp16 on CUDA; see
        engine.backends.reduced). None: off when PyTorch is asked for by name; with
        ``"auto"``, on for a CPU with native bf16. False keeps ``auto`` away from it.
    tensorrt: options for the engine (``profile``, ``workspace_mib``, ``engine`` path).
    """
    choice = ALIASES.get(str(preference).lower())
    if choice is None:
        raise ValueError(f"preference must be one of auto, {', '.join(NAMES)}, got {preference!r}")
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be fp32 or fp16, got {precision!r}")
    device = _resolve_device(device)
    loaded = _Weights(weights, width)
    options = dict(tensorrt or {})

    if choice == "pytorch":
        backend = _make_pytorch(loaded, device, threads, "asked for (preference 'pytorch')", bool(bf16))
    elif choice == "onnxruntime":
        backend = _make_onnxruntime(loaded, device, threads, "asked for (preference 'onnxruntime')",
                                    cache_dir, precision)
    elif choice == "tensorrt":
        backend = _make_tensorrt(loaded, device, "asked for (preference 'tensorrt')", cache_dir, precision,
                                 options, build_missing=True)
    else:
        backend = _automatic(loaded, device, threads, cache_dir, precision, bf16, options)
    _log_once(logging.INFO, f"backend {backend.name} on {backend.device}: {backend.reason}")
    return backend


def _automatic(loaded: _Weights, device, threads, cache_dir, precision, bf16, options) -> Backend:
    disabled = _disabled()
    skipped: list[str] = []

    def because() -> str:
        return "; ".join(skipped)

    if "tensorrt" in disabled:
        skipped.append(f"TensorRT disabled by {ENV_DISABLE}")
    else:
        try:
            return _make_tensorrt(loaded, device, "auto: TensorRT engine for this GPU", cache_dir, precision,
                                  options, build_missing=False)
        except BackendUnavailable as exc:
            skipped.append(f"TensorRT unavailable: {exc}")
    if device.type == "cpu" and bf16 is not False and "pytorch" not in disabled:
        from .reduced import cpu_has_bf16

        if bf16 or cpu_has_bf16():
            why = "asked for bf16" if bf16 else "this CPU computes bf16 natively"
            return _make_pytorch(loaded, device, threads, f"auto: {because()}; {why}: using PyTorch in bf16 on CPU",
                                 True)
    if "onnxruntime" in disabled:
        skipped.append(f"ONNX Runtime disabled by {ENV_DISABLE}")
    else:
        try:
            return _make_onnxruntime(loaded, device, threads,
                                     f"auto: {because()}; using ONNX Runtime on {device.type.upper()}",
                                     cache_dir, precision)
        except BackendUnavailable as exc:
            skipped.append(f"ONNX Runtime unavailable: {exc}")
    return _make_pytorch(loaded, device, threads, f"auto: {because()}; using PyTorch on {device.type.upper()}",
                         bool(bf16))



# --- the one cache of loaded networks ---------------------------------------------------------

_LOADED: dict = {}


def load_backend(backend: str = "auto", weights: str | None = None, device: str | None = None,
                 threads: int | None = None) -> Backend:
    """``create_backend`` for jobs: one network kept loaded and reused while its settings hold.

    ``weights=None`` means the registry's choice: the authors' checkpoint when it is cached,
    else the shipped tiny one, logged as toy weights. ``.weights_toy`` on the result says which.
    """
    if weights is None:
        from engine.registry.resolve import matting_weights

        choice = matting_weights()
        if choice.toy:
            _log_once(logging.WARNING, choice.note)
        weights = None if choice.path is None else str(choice.path)
    key = (backend, None if weights is None else str(weights), device, threads)
    if key not in _LOADED:
        try:
            loaded = create_backend(preference=backend, weights=weights, device=device, threads=threads)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        from engine.registry.resolve import is_toy

        loaded.weights_toy = is_toy(loaded.weights_path)
        _LOADED.clear()  # keep one network in memory
        _LOADED[key] = loaded
    return _LOADED[key]
