"""FP16 variant of an exported graph: FP16 body, FP32 inputs and outputs, sensitive parts FP32.

This is what TensorRT 11 means by FP16 (strongly typed networks: the graph carries the
types, there is no FP16 builder flag), and what TensorRT 10 builds identically with the
``STRONGLY_TYPED`` network flag. The conversion works on the FP32 ONNX graph:

1. BatchNormalization is folded in FP32 *before* anything is rounded: into the weights
   and bias of the (transposed) convolution in front of it when that conv feeds only
   the BN, otherwise into a per-channel Mul + Add. So the running statistics (whose
   variance can be tiny) never meet FP16 arithmetic.
2. Only the data path is converted: the tensors computed from the graph inputs. Shape
   arithmetic (sizes as floats, e.g. for dynamic resizes) stays FP32, since FP16 holds
   integers exactly only up to 2048; Resize's ``roi``/``scales`` stay FP32 as ONNX requires.
3. Kept in FP32: every reduction over the image (the ASPP's global average), and each
   tri-matte head's last convolution with everything after it (bilinear upsampling of the
   logits, tanh, the (x+1)/2 squash), so the alphas are computed and rounded in FP32.
4. Casts are inserted at the boundaries (one per tensor and direction); graph outputs
   keep their names and come out as FP32.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
# inputs that are not data whatever their type (ONNX requires them float32 or they are parameters)
NON_DATA_INPUTS = {"Resize": {1, 2}, "Upsample": {1}}
KEEP_FP32_OPS = frozenset({"ReduceMean", "ReduceSum", "GlobalAveragePool", "Softmax"})
DEFAULT_FP32_OUTPUTS = ("alpha_os1", "alpha_os4", "alpha_os8")


def _attribute(node, name, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


class _Graph:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        self.initializers = {tensor.name: tensor for tensor in self.graph.initializer}
        self.constants = {}
        for node in self.graph.node:
            if node.op_type == "Constant" and _attribute(node, "value") is not None:
                self.constants[node.output[0]] = _attribute(node, "value")
        self.counter = 0

    def unique(self, base: str) -> str:
        self.counter += 1
        return f"{base}__fp16conv{self.counter}"

    def constant_array(self, name: str):
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        if name in self.constants:
            return numpy_helper.to_array(self.constants[name])
        return None

    def add_initializer(self, name: str, array: np.ndarray) -> str:
        tensor = numpy_helper.from_array(array, name)
        self.graph.initializer.append(tensor)
        self.initializers[name] = tensor
        return name

    def consumers(self) -> dict[str, list]:
        result: dict[str, list] = {}
        for node in self.graph.node:
            for name in node.input:
                result.setdefault(name, []).append(node)
        return result

    def producers(self) -> dict[str, onnx.NodeProto]:
        return {name: node for node in self.graph.node for name in node.output}


def remove_identities(model: onnx.ModelProto) -> None:
    """Drop Identity nodes (the exporter wraps shared weights in them) unless they name an output."""
    graph = model.graph
    outputs = {value.name for value in graph.output}
    rename = {}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.output[0] not in outputs:
            source = node.input[0]
            rename[node.output[0]] = rename.get(source, source)
        else:
            keep.append(node)
    for node in keep:
        for index, name in enumerate(node.input):
            if name in rename:
                node.input[index] = rename[name]
    del graph.node[:]
    graph.node.extend(keep)


def fold_batchnorm(model: onnx.ModelProto) -> int:
    """Fold inference BatchNormalization in FP32 (see module doc); returns how many were folded."""
    state = _Graph(model)
    graph = state.graph
    producers = state.producers()
    consumers = state.consumers()
    outputs = {value.name for value in graph.output}
    new_nodes = []
    folded = 0
    for node in graph.node:
        if node.op_type != "BatchNormalization" or len(node.output) != 1:
            new_nodes.append(node)
            continue
        params = [state.constant_array(name) for name in node.input[1:5]]
        if any(param is None for param in params):
            new_nodes.append(node)
            continue
        gamma, beta, mean, var = (param.astype(np.float64) for param in params)
        epsilon = _attribute(node, "epsilon", 1e-5)
        scale = gamma / np.sqrt(var + epsilon)
        shift = beta - mean * scale
        source = node.input[0]
        conv = producers.get(source)
        foldable = (conv is not None and conv.op_type in ("Conv", "ConvTranspose") and len(consumers.get(source, [])) == 1
                    and source not in outputs and state.constant_array(conv.input[1]) is not None
                    and (_attribute(conv, "group", 1) == 1 or conv.op_type == "Conv"))
        if foldable:
            weight = state.constant_array(conv.input[1]).astype(np.float64)
            bias = state.constant_array(conv.input[2]).astype(np.float64) if len(conv.input) > 2 and conv.input[2] else 0.0
            if conv.op_type == "Conv":
                weight = weight * scale.reshape(-1, 1, 1, 1)
            else:  # ConvTranspose weight: (in, out / group, kh, kw); group is 1 here
                weight = weight * scale.reshape(1, -1, 1, 1)
            bias = bias * scale + shift
            weight_name = state.add_initializer(state.unique(conv.input[1]), weight.astype(np.float32))
            bias_name = state.add_initializer(state.unique(conv.name + "_bias"), bias.astype(np.float32))
            data_input = conv.input[0]
            del conv.input[:]
            conv.input.extend([data_input, weight_name, bias_name])
            conv.output[0] = node.output[0]
        else:
            channels = scale.shape[0]
            scale_name = state.add_initializer(state.unique(node.name + "_scale"),
                                               scale.reshape(channels, 1, 1).astype(np.float32))
            shift_name = state.add_initializer(state.unique(node.name + "_shift"),
                                               shift.reshape(channels, 1, 1).astype(np.float32))
            scaled = state.unique(node.name + "_scaled")
            new_nodes.append(helper.make_node("Mul", [source, scale_name], [scaled], name=node.name + "/Mul"))
            new_nodes.append(helper.make_node("Add", [scaled, shift_name], [node.output[0]], name=node.name + "/Add"))
        folded += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    _drop_unused_initializers(model)
    return folded


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    graph = model.graph
    used = {name for node in graph.node for name in node.input} | {value.name for value in graph.output}
    keep = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _float_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every named tensor (after shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {}
    for value in (*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info):
        types[value.name] = value.type.tensor_type.elem_type
    for tensor in inferred.graph.initializer:
        types[tensor.name] = tensor.data_type
    return types


def _head_nodes(graph, producers, data: set[str], fp32_outputs) -> set[int]:
    """ids of the nodes from each head's last Conv to the named outputs (kept FP32)."""
    keep: set[int] = set()
    stack = [name for name in fp32_outputs]
    seen = set()
    while stack:
        name = stack.pop()
        if name in seen or name not in producers:
            continue
        seen.add(name)
        node = producers[name]
        keep.add(id(node))
        if node.op_type in ("Conv", "ConvTranspose"):
            continue  # the head's last conv: stop here
        skip = NON_DATA_INPUTS.get(node.op_type, set())
        stack.extend(source for index, source in enumerate(node.input) if index not in skip and source in data)
    return keep


def convert_to_fp16(model: onnx.ModelProto, fp32_outputs=DEFAULT_FP32_OUTPUTS) -> onnx.ModelProto:
    """An FP16 copy of ``model`` with FP32 I/O (see the module doc for what stays FP32)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    remove_identities(model)
    fold_batchnorm(model)
    graph = model.graph
    state = _Graph(model)
    types = _float_types(model)
    producers = state.producers()
    graph_inputs = {value.name for value in graph.input}

    # 1. the data path: float tensors computed from the graph inputs
    data = {name for name in graph_inputs if types.get(name) == FLOAT}
    data_nodes = []
    for node in graph.node:
        skip = NON_DATA_INPUTS.get(node.op_type, set())
        if any(index not in skip and name in data for index, name in enumerate(node.input)):
            data_nodes.append(node)
            data.update(name for name in node.output if types.get(name) == FLOAT)
    keep32 = _head_nodes(graph, producers, data, [name for name in fp32_outputs if name in producers])
    half_nodes = {id(node) for node in data_nodes
                  if id(node) not in keep32 and node.op_type not in KEEP_FP32_OPS}

    # 2. rewrite inputs, insert casts
    half_tensors: set[str] = set()  # tensors now produced in FP16
    casts: dict[tuple[str, int], str] = {}
    converted_constants: dict[str, str] = {}
    new_nodes = []

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            casts[key] = state.unique(name + ("_to_fp16" if to == HALF else "_to_fp32"))
            new_nodes.append(helper.make_node("Cast", [name], [casts[key]], to=to, name=casts[key] + "/Cast"))
        return casts[key]

    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] in state.constants:
            new_nodes.append(node)
            continue
        skip = NON_DATA_INPUTS.get(node.op_type, set())
        is_half = id(node) in half_nodes
        for index, name in enumerate(node.input):
            if not name or index in skip:
                continue
            if is_half:
                if name in half_tensors:
                    continue
                if types.get(name) != FLOAT:
                    continue
                array = state.constant_array(name)
                if array is not None and name not in data:
                    if name not in converted_constants:
                        converted_constants[name] = state.add_initializer(state.unique(name), array.astype(np.float16))
                    node.input[index] = converted_constants[name]
                else:
                    node.input[index] = cast(name, HALF)
            elif name in half_tensors:
                node.input[index] = cast(name, FLOAT)
        if is_half:
            if node.op_type == "Cast" and _attribute(node, "to") == FLOAT:
                for attribute in node.attribute:
                    if attribute.name == "to":
                        attribute.i = HALF
            half_tensors.update(name for name in node.output if types.get(name) == FLOAT)
        new_nodes.append(node)

    # 3. outputs come back as FP32 under their own names
    for value in graph.output:
        if value.name in half_tensors:
            inner = state.unique(value.name)
            for node in new_nodes:
                node.output[:] = [inner if name == value.name else name for name in node.output]
                node.input[:] = [inner if name == value.name else name for name in node.input]
            new_nodes.append(helper.make_node("Cast", [inner], [value.name], to=FLOAT, name=value.name + "/Cast"))

    del graph.node[:]
    graph.node.extend(_topological(new_nodes, graph_inputs | set(state.initializers)))
    _drop_unused_initializers(model)
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model)


def _topological(nodes, available: set[str]) -> list:
    """Nodes in an order where every input is produced before use (casts were appended late)."""
    available = set(available) | {""}
    pending = list(nodes)
    ordered = []
    while pending:
        progress = []
        rest = []
        for node in pending:
            (progress if all(name in available for name in node.input) else rest).append(node)
        if not progress:
            raise ValueError("the graph has a cycle or an input nobody produces: "
                             + ", ".join(name for name in rest[0].input if name not in available))
        for node in progress:
            ordered.append(node)
            available.update(node.output)
        pending = rest
    return ordered
