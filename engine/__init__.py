"""blender-instmatt engine: the InstMatt network, its pipeline and everything around it.

    from engine import create_backend, load_model, matte
    backend = create_backend()                 # TensorRT -> PyTorch bf16 (CPU) -> ONNX Runtime -> PyTorch
    alphas = matte(backend, rgb8, masks)       # (K, H, W) float32 in [0, 1]; exact=True: full frame

This package never imports bpy; the Blender add-on talks to it through
``python -m engine serve --stdio`` (see docs/protocol.md). The names below load lazily,
so ``import engine`` (and ``engine.settings``) never pulls in torch.
"""

__version__ = "0.1.0"

_PUBLIC = {
    "load_model": ("engine.model", "load_model"),
    "matte": ("engine.inference", "matte"),
    "create_backend": ("engine.backends", "create_backend"),
}


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        module, attribute = _PUBLIC[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


__all__ = ["__version__", "create_backend", "load_model", "matte"]
