"""A model as an ONNX graph (opset 17): raw inputs in, the service's `outputs` out.

    inputs (batch, n_inputs), float64
      -> Sub(shift), Div(scale)            when inputs are standardized or min-max scaled
      -> Cast(float32)                     for a float32 model
      -> Gemm(W, b, transB=1), activation  per layer (Relu, PRelu for leaky_relu, Tanh,
                                           Sigmoid, Identity; the output's Identity,
                                           Sigmoid or Softmax on axis 1)
      -> Cast(float64)                     for a float32 model
      -> Mul(scale), Add(shift)            when targets were standardized
    outputs (batch, n_outputs), float64

The scalings are the core's own arithmetic, `(x - shift) / scale` and `z * scale + shift`
(min-max scaling too is a shift and a scale: the minimum and the range), so the graph
answers what `Model.predict` answers, in the same precision: the scalings in float64, the
weights and every layer in the parameters' dtype (float32 or float64), as the service
computes them. Feature and class names travel in `metadata_props`.
"""

import json
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.core import Model
from service.core.activations import LEAKY_SLOPE

OPSET = 17
# The IR version that opset 17 came with: runtimes back to onnxruntime 1.13 load it.
IR_VERSION = 8
INPUT = "inputs"
OUTPUT = "outputs"
# Raw inputs and outputs are float64, as the service reads and answers them; the network
# between them runs in the parameters' dtype.
RAW = np.dtype(np.float64)
ELEMENT_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "identity": "Identity"}


class _Graph:
    """Nodes and initializers, added in order; `last` is the newest tensor's name."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.last = INPUT

    def constant(self, name: str, values: np.ndarray, dtype: np.dtype | None = None) -> str:
        array = np.asarray(values, dtype=dtype or self.dtype)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, name: str, *inputs: str, **attributes: Any) -> None:
        self.nodes.append(
            helper.make_node(op, [self.last, *inputs], [name], name=name, **attributes)
        )
        self.last = name


def to_onnx(model: Model, about: dict[str, Any] | None = None) -> bytes:
    """The serialized ONNX model of `model`, checked by `onnx.checker`; `about`'s fields
    (where the model came from) go into its metadata as JSON."""
    spec, parameters = model.spec, model.parameters
    dtype = np.dtype(parameters.flat.dtype)
    graph = _Graph(dtype)
    preprocessing = model.preprocessing
    if preprocessing is not None and preprocessing.inputs is not None:
        scaler = preprocessing.inputs
        graph.node("Sub", "inputs_shifted", graph.constant("inputs_shift", scaler.shift, RAW))
        graph.node("Div", "inputs_scaled", graph.constant("inputs_scale", scaler.scale, RAW))
    if dtype != RAW:
        graph.node("Cast", "network_inputs", to=ELEMENT_TYPES[dtype])
    last = len(parameters.weights) - 1
    for layer, (weights, bias) in enumerate(
        zip(parameters.weights, parameters.biases, strict=True)
    ):
        w = graph.constant(f"layer{layer}_weights", weights)
        b = graph.constant(f"layer{layer}_bias", bias)
        graph.node("Gemm", f"layer{layer}_aggregate", w, b, transB=1)
        activation = spec.output_activation if layer == last else spec.hidden_activation
        name = f"layer{layer}_{activation}"
        if activation == "leaky_relu":
            # PRelu with the slope as a tensor of the model's dtype: LeakyRelu's `alpha` is
            # a 32-bit attribute, 0.01 rounded, which a float64 model would feel.
            graph.node("PRelu", name, graph.constant(f"layer{layer}_slope", np.array(LEAKY_SLOPE)))
        elif activation == "softmax":
            graph.node("Softmax", name, axis=1)
        else:
            graph.node(ACTIVATIONS[activation], name)
    if dtype != RAW:
        graph.node("Cast", "network_outputs", to=ELEMENT_TYPES[RAW])
    if preprocessing is not None and preprocessing.targets is not None:
        scaler = preprocessing.targets
        graph.node("Mul", "targets_scaled", graph.constant("targets_scale", scaler.scale, RAW))
        graph.node("Add", "targets_shifted", graph.constant("targets_shift", scaler.shift, RAW))
    graph.nodes.append(helper.make_node("Identity", [graph.last], [OUTPUT], name=OUTPUT))

    element = ELEMENT_TYPES[RAW]
    onnx_graph = helper.make_graph(
        graph.nodes,
        "backprop_mlp",
        [helper.make_tensor_value_info(INPUT, element, ["batch", spec.n_inputs])],
        [helper.make_tensor_value_info(OUTPUT, element, ["batch", spec.n_outputs])],
        initializer=graph.initializers,
        doc_string="Raw input rows in; outputs in the targets' raw units, as the service's "
        "predict answers `outputs`.",
    )
    proto = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="backprop-service",
        ir_version=IR_VERSION,
    )
    helper.set_model_props(proto, _metadata(model, about or {}))
    onnx.checker.check_model(proto, full_check=True)
    data: bytes = proto.SerializeToString()
    return data


def _metadata(model: Model, about: dict[str, Any]) -> dict[str, str]:
    """String properties: JSON for everything that is not a plain string."""
    preprocessing = None if model.preprocessing is None else model.preprocessing.kinds()
    values: dict[str, Any] = {
        "network": model.spec.to_dict(),
        "task": model.task,
        "loss": model.loss_name,
        "preprocessing": preprocessing,
        "feature_names": None if model.feature_names is None else list(model.feature_names),
        "classes": None if model.classes is None else list(model.classes),
        **about,
    }
    return {
        key: value if isinstance(value, str) else json.dumps(value, default=str)
        for key, value in values.items()
    }
