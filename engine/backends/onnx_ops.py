"""What TensorRT's ONNX parser accepts, and a check of an exported graph against it.

The allowlist is deliberately narrower than everything the parser supports: it holds
the operators this network can legitimately produce, all of them in TensorRT 10's
"supported operators" table, so a graph that slips in something new (a Loop from a
Python branch, NonZero from boolean indexing, a sequence op from ``split`` into a list,
an antialiased resize) fails here, on any machine, instead of on a user's GPU.
"""

from __future__ import annotations

import onnx

ALLOWED_OPS = frozenset({
    # the network
    "Conv", "ConvTranspose", "BatchNormalization", "Relu", "LeakyRelu", "Tanh", "Sigmoid",
    "AveragePool", "GlobalAveragePool", "ReduceMean", "ReduceSum", "Resize",
    "Add", "Sub", "Mul", "Div", "Max", "Min", "Clip", "Neg", "Sqrt", "Pow",
    "Concat", "Split", "Slice", "Expand", "Reshape", "Squeeze", "Unsqueeze", "Transpose",
    "Flatten", "Identity", "Cast", "CastLike",
    # shape arithmetic the exporter emits for dynamic sizes
    "Shape", "Gather", "Constant", "ConstantOfShape", "Range", "Floor", "Ceil",
    "Equal", "Where", "Less", "Greater",
})

# never acceptable for TensorRT (data-dependent shapes, control flow, sequences)
FORBIDDEN_OPS = frozenset({
    "Loop", "If", "Scan", "NonZero", "NonMaxSuppression", "Unique", "Compress",
    "SequenceConstruct", "SequenceAt", "SequenceInsert", "SequenceErase", "SequenceLength",
    "SequenceEmpty", "SplitToSequence", "ConcatFromSequence", "SequenceMap",
    "Optional", "OptionalGetElement", "OptionalHasElement",
})


def _attribute(node: onnx.NodeProto, name: str, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def operator_problems(model: onnx.ModelProto) -> list[str]:
    """Every reason TensorRT's parser might refuse ``model`` (empty: fine)."""
    problems = []
    for node in model.graph.node:
        where = f"{node.op_type} node {node.name or '(unnamed)'}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: custom domain {node.domain!r}")
        elif node.op_type in FORBIDDEN_OPS:
            problems.append(f"{where}: {node.op_type} is not allowed (control flow, sequences or data-dependent shapes)")
        elif node.op_type not in ALLOWED_OPS:
            problems.append(f"{where}: {node.op_type} is not on the TensorRT allowlist")
        elif node.op_type == "Resize":
            if _attribute(node, "antialias", 0):
                problems.append(f"{where}: antialiased Resize is not supported by TensorRT")
            mode = _attribute(node, "mode", b"nearest")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            if mode not in ("nearest", "linear"):
                problems.append(f"{where}: Resize mode {mode!r} is not supported")
    return problems


def operator_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
