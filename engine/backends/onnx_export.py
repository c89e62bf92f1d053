"""ONNX export of the matting network and of the dense multi-instance refiner.

Two graphs, both with dynamic people N, height H and width W:

- matting: inputs ``image`` and ``trimask`` (N,3,H,W) float32, H and W multiples of 32;
  outputs ``alpha_os1``, ``alpha_os4``, ``alpha_os8`` (N,3,H,W) and ``feature``
  (N,C,H,W), exactly what ``InstMatt.matting`` returns. Precision ``fp32`` or ``fp16``
  (FP16 body, FP32 inputs and outputs, see :mod:`engine.backends.onnx_fp16`).
- refiner: inputs ``image``, ``trimatte`` (N,3,H,W) and ``feature`` (N,C,H,W), any H
  and W (the pipeline runs it on 320x320 windows and on whole padded frames); output
  ``refined`` (N,3,H,W). Always FP32: it is tiny and subtracts features across people.

The TorchScript exporter (``dynamo=False``) is used: it traces the eval-mode network
with spectral norm already folded, folds BatchNorm into the convs and gives a flat graph
of plain ONNX operators, which is what TensorRT's parser wants.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from engine.io.atomic import write_bytes_atomic

from .base import MATTING_INPUTS, MATTING_OUTPUTS
from .onnx_ops import operator_problems

DEFAULT_OPSET = 17
PRECISIONS = ("fp32", "fp16")
# bump when the exported graphs change, so cached ONNX files are re-exported
EXPORT_VERSION = 1

REFINER_INPUTS = ("image", "trimatte", "feature")
REFINER_OUTPUTS = ("refined",)
DYNAMIC = {0: "people", 2: "height", 3: "width"}


class ExportError(RuntimeError):
    """The network could not be exported, or the graph failed a check."""


class MattingGraph(nn.Module):
    """``InstMatt.forward`` with a tuple output in the documented order."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, trimask: torch.Tensor):
        outputs = self.model(image, trimask)
        return tuple(outputs[name] for name in MATTING_OUTPUTS)


class RefinerGraph(nn.Module):
    """The dense refiner with the people count taken from the tensor, not from Python.

    ``MultiInstanceRefiner.forward`` divides by ``max(K - 1, 1)`` computed from an int,
    which tracing would freeze into a constant; here K is counted inside the graph.
    The arithmetic is otherwise identical (same modules, same order of operations).
    """

    def __init__(self, refiner: nn.Module):
        super().__init__()
        self.refiner = refiner

    def forward(self, image: torch.Tensor, trimatte: torch.Tensor, feature: torch.Tensor):
        from engine.model.decoder import squash

        refiner = self.refiner
        attended = torch.cat([feature * trimatte[:, i:i + 1] for i in range(3)], dim=1)
        separated = refiner.split(attended)
        f_t, f_r, f_b = separated.split(refiner.split_channels, dim=1)
        count = torch.ones_like(f_t[:, :1, :1, :1]).sum(dim=0, keepdim=True)
        sum_t = f_t.sum(dim=0, keepdim=True)
        sum_r = f_r.sum(dim=0, keepdim=True)
        others_t = sum_t - f_t
        new_t = f_t - others_t + sum_r / torch.clamp(count - 1.0, min=1.0)
        new_r = f_r + others_t
        new_b = f_b.mean(dim=0, keepdim=True).expand_as(f_b)
        mixed = torch.cat([new_t, new_r, new_b, image], dim=1)
        return squash(refiner.head(refiner.merge(mixed)))


def _export(module: nn.Module, args: tuple, input_names, output_names, opset: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    dynamic_axes = {name: DYNAMIC for name in (*input_names, *output_names)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=opset,
                          input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic_axes, do_constant_folding=True,
                          training=torch.onnx.TrainingMode.EVAL)
    return onnx.load_from_string(buffer.getvalue())


def _cpu_copy(model: nn.Module) -> nn.Module:
    """The model in fp32 on the CPU, in eval mode (the caller's model is left untouched)."""
    import copy

    parameter = next(model.parameters())
    if parameter.device.type == "cpu" and parameter.dtype == torch.float32 and not model.training:
        return model
    return copy.deepcopy(model).float().cpu().eval()


def _check_folded(model: nn.Module) -> None:
    from engine.model.spectral_norm import SpectralNorm

    if any(isinstance(module, SpectralNorm) for module in model.modules()):
        raise ExportError("the model still has spectral-norm wrappers: load it with engine.model.load_model "
                          "(which folds them) before exporting")


def matting_graph(model: nn.Module, precision: str = "fp32", opset: int = DEFAULT_OPSET,
                  sample_size: tuple[int, int] = (64, 64)) -> onnx.ModelProto:
    """The matting network as an ONNX model (checked, see :func:`check_graph`)."""
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if opset < 17:
        raise ExportError(f"opset must be 17 or newer, got {opset}")
    model = _cpu_copy(model)
    _check_folded(model)
    height, width = sample_size
    # two people and a non-square size, so no axis can be mistaken for a constant
    image = torch.randn(2, 3, height, width)
    trimask = torch.rand(2, 3, height, width)
    graph = _export(MattingGraph(model).eval(), (image, trimask), MATTING_INPUTS, MATTING_OUTPUTS, opset)
    if precision == "fp16":
        from .onnx_fp16 import convert_to_fp16

        graph = convert_to_fp16(graph)
    _annotate(graph, "matting", precision, model)
    check_graph(graph, MATTING_INPUTS, MATTING_OUTPUTS)
    return graph


def refiner_graph(model: nn.Module, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The dense refiner as an FP32 ONNX model with any N, H and W."""
    if opset < 17:
        raise ExportError(f"opset must be 17 or newer, got {opset}")
    model = _cpu_copy(model)
    channels = model.decoder.feature_channels
    args = (torch.randn(2, 3, 40, 56), torch.rand(2, 3, 40, 56), torch.randn(2, channels, 40, 56))
    graph = _export(RefinerGraph(model.refiner).eval(), args, REFINER_INPUTS, REFINER_OUTPUTS, opset)
    _annotate(graph, "refiner", "fp32", model)
    check_graph(graph, REFINER_INPUTS, REFINER_OUTPUTS)
    return graph


def _annotate(graph: onnx.ModelProto, kind: str, precision: str, model: nn.Module) -> None:
    graph.producer_name = "blender-instmatt build_trt"
    graph.doc_string = f"InstMatt {kind} graph"
    metadata = {"instmatt.graph": kind, "instmatt.precision": precision,
                "instmatt.width": repr(float(getattr(model, "width", 1.0))),
                "instmatt.export_version": str(EXPORT_VERSION)}
    del graph.metadata_props[:]
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)


def graph_metadata(graph: onnx.ModelProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in graph.metadata_props}


def _dims(value: onnx.ValueInfoProto) -> list:
    return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]


def check_graph(graph: onnx.ModelProto, inputs=None, outputs=None) -> None:
    """ONNX checker, TensorRT operator allowlist, names, FP32 I/O and dynamic N/H/W."""
    try:
        onnx.checker.check_model(graph, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the ONNX checker refused the graph: {exc}") from None
    problems = operator_problems(graph)
    if problems:
        raise ExportError("operators TensorRT would refuse: " + "; ".join(problems[:5]))
    names_in = [value.name for value in graph.graph.input]
    names_out = [value.name for value in graph.graph.output]
    if inputs is not None and names_in != list(inputs):
        raise ExportError(f"graph inputs are {names_in}, expected {list(inputs)}")
    if outputs is not None and names_out != list(outputs):
        raise ExportError(f"graph outputs are {names_out}, expected {list(outputs)}")
    for value in (*graph.graph.input, *graph.graph.output):
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise ExportError(f"{value.name} is not float32")
        dims = _dims(value)
        if len(dims) != 4 or [dims[0], dims[2], dims[3]] != ["people", "height", "width"]:
            raise ExportError(f"{value.name} does not have dynamic people/height/width axes: {dims}")


def save_graph(graph: onnx.ModelProto, path: str | Path) -> Path:
    """Write atomically (a half-written file never looks like a finished export)."""
    return write_bytes_atomic(path, graph.SerializeToString())


def export_matting(model: nn.Module, path: str | Path, precision: str = "fp32", opset: int = DEFAULT_OPSET) -> Path:
    return save_graph(matting_graph(model, precision, opset), path)


def export_refiner(model: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    return save_graph(refiner_graph(model, opset), path)


def refiner_path_for(matting_path: str | Path) -> Path:
    """Where the refiner graph goes next to a matting graph: ``NAME.refiner.onnx``."""
    matting_path = Path(matting_path)
    return matting_path.with_name(matting_path.stem + ".refiner.onnx")


def cached_graphs(model: nn.Module, weights_sha256: str, cache_dir: str | Path | None = None,
                  precision: str = "fp32", opset: int = DEFAULT_OPSET) -> tuple[Path, Path]:
    """(matting, refiner) ONNX paths for ``model``, exported once per key into the cache.

    The key is (weights hash, width, opset, precision, export version); an entry whose
    sidecar does not match is exported again.
    """
    from .cache import cache_key, onnx_dir, onnx_key_fields, stale_reason, write_sidecar

    fields = onnx_key_fields(weights_sha256, getattr(model, "width", 1.0), opset, precision, EXPORT_VERSION)
    path = onnx_dir(cache_dir) / f"instmatt-{cache_key(fields)}.onnx"
    refiner = refiner_path_for(path)
    if stale_reason(path, fields) is None and refiner.is_file():
        return path, refiner
    export_refiner(model, refiner, opset)
    export_matting(model, path, precision, opset)
    write_sidecar(path, fields)
    return path, refiner


__all__ = ["cached_graphs", "DEFAULT_OPSET", "EXPORT_VERSION", "ExportError", "MATTING_INPUTS", "MATTING_OUTPUTS",
           "REFINER_INPUTS", "REFINER_OUTPUTS", "check_graph", "export_matting", "export_refiner",
           "graph_metadata", "matting_graph", "operator_problems", "refiner_graph", "refiner_path_for",
           "save_graph"]
