"""ONNX export and TensorRT engine building for the InstMatt matting network.

    python -m build_trt export --weights best_model.pth --out instmatt.onnx [--precision fp16]
    python -m build_trt build  --onnx instmatt.onnx [--max-shape 4x1344x1344]
    instmatt-build ...         (the same, installed as a console script)

Modules: :mod:`engine.backends.onnx_export` (graphs, checks), :mod:`engine.backends.onnx_fp16` (FP16 graph
with FP32 I/O), :mod:`engine.backends.onnx_ops` (the TensorRT operator allowlist),
:mod:`engine.backends.cache` (cache keys and sidecars) and :mod:`build_trt.tensorrt_build`
(profiles, precision handling, engine builds; TensorRT is imported only there and only
when used). See docs/backends.md.
"""
