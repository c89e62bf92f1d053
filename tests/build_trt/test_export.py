"""ONNX export: dynamic axes, TensorRT operator allowlist, parity, FP16 variant, the CLI."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper

from build_trt.__main__ import main
from engine.backends.onnx_export import (
    ExportError,
    matting_graph,
    refiner_graph,
    refiner_path_for,
)
from engine.backends.onnx_fp16 import fold_batchnorm, remove_identities
from engine.backends.onnx_ops import FORBIDDEN_OPS, operator_problems

OUTPUTS = ("alpha_os1", "alpha_os4", "alpha_os8", "feature")


def _session(graph):
    return onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(graph, **feeds):
    return _session(graph).run(None, {name: value.numpy() for name, value in feeds.items()})


@pytest.fixture(scope="module")
def graphs(tiny_model):
    return {"fp32": matting_graph(tiny_model, "fp32"), "fp16": matting_graph(tiny_model, "fp16"),
            "refiner": refiner_graph(tiny_model)}


def _dims(value):
    return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]


@pytest.mark.parametrize("kind", ["fp32", "fp16", "refiner"])
def test_graph_has_dynamic_axes_and_only_allowed_operators(graphs, kind):
    graph = graphs[kind]
    onnx.checker.check_model(graph, full_check=True)
    assert operator_problems(graph) == []
    ops = {node.op_type for node in graph.graph.node}
    assert not ops & FORBIDDEN_OPS
    assert not ops & {"Loop", "NonZero", "SequenceConstruct", "SplitToSequence", "If"}
    assert max(entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx")) >= 17
    for node in graph.graph.node:
        if node.op_type == "Resize":
            assert all(attribute.name != "antialias" or attribute.i == 0 for attribute in node.attribute)
    names_in = [value.name for value in graph.graph.input]
    names_out = [value.name for value in graph.graph.output]
    if kind == "refiner":
        assert names_in == ["image", "trimatte", "feature"] and names_out == ["refined"]
    else:
        assert names_in == ["image", "trimask"] and names_out == list(OUTPUTS)
    for value in (*graph.graph.input, *graph.graph.output):
        dims = _dims(value)
        assert dims[0] == "people" and dims[2] == "height" and dims[3] == "width", (value.name, dims)
        assert value.type.tensor_type.elem_type == TensorProto.FLOAT  # FP32 I/O, FP16 graph included


def test_fp32_graph_matches_pytorch_at_other_sizes_and_counts(graphs, tiny_model):
    for people, height, width in [(1, 32, 32), (3, 96, 160), (2, 224, 64)]:
        image, trimask = torch.randn(people, 3, height, width), torch.rand(people, 3, height, width)
        with torch.no_grad():
            expected = tiny_model.matting(image, trimask)
        for name, result in zip(OUTPUTS, _run(graphs["fp32"], image=image, trimask=trimask)):
            assert result.shape == tuple(expected[name].shape)
            assert np.abs(result - expected[name].numpy()).max() < 1e-4, name


def test_refiner_graph_counts_people_inside_the_graph(graphs, tiny_model):
    channels = tiny_model.decoder.feature_channels
    for people, height, width in [(1, 17, 23), (3, 40, 56), (6, 320, 320)]:  # any size; K-1 clamps at K=1
        image = torch.randn(people, 3, height, width)
        trimatte = torch.rand(people, 3, height, width)
        feature = torch.randn(people, channels, height, width)
        with torch.no_grad():
            expected = tiny_model.refiner(image, trimatte, feature).numpy()
        (got,) = _run(graphs["refiner"], image=image, trimatte=trimatte, feature=feature)
        assert np.abs(got - expected).max() < 1e-4


def test_fp16_graph_runs_in_onnxruntime_close_to_fp32(graphs, tiny_model):
    graph = graphs["fp16"]
    initializers = [tensor.data_type for tensor in graph.graph.initializer]
    assert initializers.count(TensorProto.FLOAT16) > len(initializers) // 2
    metadata = {entry.key: entry.value for entry in graph.metadata_props}
    assert metadata["instmatt.precision"] == "fp16"
    types = {value.name: value.type.tensor_type.elem_type for value in graph.graph.value_info}
    # the heads' squash and the global pooling run in FP32
    for node in graph.graph.node:
        if node.op_type in ("Tanh", "ReduceMean"):
            assert types[node.input[0]] == TensorProto.FLOAT, node.name
    image, trimask = torch.randn(2, 3, 96, 128), torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        expected = tiny_model.matting(image, trimask)
    results = dict(zip(OUTPUTS, _run(graph, image=image, trimask=trimask)))
    for name in OUTPUTS[:3]:
        assert results[name].dtype == np.float32
        assert np.abs(results[name] - expected[name].numpy()).max() < 2e-3, name
    assert np.abs(results["feature"] - expected["feature"].numpy()).max() < 2e-2


def test_batchnorm_folding_is_exact_in_fp32(graphs):
    folded = onnx.ModelProto.FromString(graphs["fp32"].SerializeToString())
    remove_identities(folded)
    assert fold_batchnorm(folded) > 0
    assert "BatchNormalization" not in {node.op_type for node in folded.graph.node}
    image, trimask = torch.randn(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    for a, b in zip(_run(graphs["fp32"], image=image, trimask=trimask), _run(folded, image=image, trimask=trimask)):
        assert np.abs(a - b).max() < 1e-5


def _graph_with(node, inputs, outputs):
    return helper.make_model(helper.make_graph([node], "probe", inputs, outputs),
                             opset_imports=[helper.make_opsetid("", 19)])


def test_operator_check_refuses_what_tensorrt_cannot_take():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, None)
    nonzero = _graph_with(helper.make_node("NonZero", ["x"], ["y"], name="nz"), [x], [y])
    assert any("NonZero" in problem for problem in operator_problems(nonzero))
    scales = helper.make_tensor_value_info("s", TensorProto.FLOAT, [4])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    resize = _graph_with(helper.make_node("Resize", ["x", "", "s"], ["z"], mode="linear", antialias=1, name="r"),
                         [x, scales], [z])
    assert any("antialias" in problem for problem in operator_problems(resize))
    odd = _graph_with(helper.make_node("GridSample", ["x", "x"], ["z"], name="g"), [x], [z])
    assert any("allowlist" in problem for problem in operator_problems(odd))


def test_export_refuses_unfolded_networks_and_old_opsets(tiny_model):
    from engine.model import build_model

    with pytest.raises(ExportError, match="spectral-norm"):
        matting_graph(build_model(None, 0.25).eval())
    with pytest.raises(ExportError, match="opset"):
        matting_graph(tiny_model, opset=13)
    with pytest.raises(ExportError, match="precision"):
        matting_graph(tiny_model, "int8")


def test_cli_exports_the_authors_checkpoint(authors_checkpoint, tmp_path, capsys):
    from engine.model import load_model

    out = tmp_path / "authors.onnx"
    assert main(["export", "--weights", str(authors_checkpoint), "--out", str(out), "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "max |onnxruntime - pytorch|" in printed
    graph = onnx.load(str(out))
    assert [value.name for value in graph.graph.output] == list(OUTPUTS)
    assert refiner_path_for(out).is_file()
    model = load_model(authors_checkpoint)
    image, trimask = torch.randn(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        expected = model.matting(image, trimask)
    for name, result in zip(OUTPUTS, _run(graph, image=image, trimask=trimask)):
        assert np.isfinite(result).all()
        scale = max(1.0, float(expected[name].abs().max()))
        assert np.abs(result - expected[name].numpy()).max() < 1e-4 * scale, name


def test_cli_exports_the_projects_checkpoint_in_fp16(tiny_model, tmp_path, capsys):
    from engine.model import build_model, save_checkpoint

    trainable = build_model(None, 0.25)
    weights = save_checkpoint(trainable, tmp_path / "tiny.safetensors")
    out = tmp_path / "tiny-fp16.onnx"
    assert main(["export", "--weights", str(weights), "--out", str(out), "--precision", "fp16", "--verify"]) == 0
    assert "fp16" in capsys.readouterr().out
    graph = onnx.load(str(out))
    assert {entry.key: entry.value for entry in graph.metadata_props}["instmatt.width"] == "0.25"


def test_cli_reports_missing_weights_and_tensorrt(tmp_path, capsys):
    assert main(["export", "--weights", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "not found" in capsys.readouterr().err
