"""Backends: one interface (:class:`Backend`), three runners, one loader.

    backend = create_backend()                      # TensorRT -> PyTorch bf16 (CPU) -> ONNX Runtime -> PyTorch
    alphas = engine.matte(backend, image, masks)

See :mod:`engine.backends.loader` for the automatic choice and docs/backends.md.
"""

from .base import MATTING_INPUTS, MATTING_OUTPUTS, Backend, BackendUnavailable
from .loader import NAMES, RANDOM, create_backend, load_backend
from .pytorch import PyTorchBackend

__all__ = ["Backend", "BackendUnavailable", "MATTING_INPUTS", "MATTING_OUTPUTS", "NAMES", "PyTorchBackend",
           "RANDOM", "create_backend", "load_backend"]
