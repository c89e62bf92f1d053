"""ONNX export and TensorRT engine building for the InstMatt matting network.

    python -m build_trt export --weights best_model.pth --out instmatt.onnx [--precision fp16]
    python -m build_trt build  --onnx instmatt.onnx [--max-shape 4x1344x1344]
    instmatt-build ...         (the same, installed as a console script)

Modules: :mod:`build_trt.export` (graphs, checks), :mod:`build_trt.fp16` (FP16 graph
with FP32 I/O), :mod:`build_trt.ops` (the TensorRT operator allowlist),
:mod:`build_trt.cache` (cache keys and sidecars) and :mod:`build_trt.tensorrt_build`
(profiles, precision handling, engine builds; TensorRT is imported only there and only
when used). See docs/backends.md.
"""
