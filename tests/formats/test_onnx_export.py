"""The ONNX export run by onnxruntime answers the service's `outputs` (Model.predict):
to 1e-6 for float32 models and 1e-9 for float64 (relative, and absolute on the network's
scale), for every output activation, hidden activation and preprocessing, and the graph
passes onnx.checker."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest

from service.core import Model, RunSpec, Trainer
from service.core.labels import Labels
from service.formats import write_onnx
from service.formats.onnx import OPSET

RNG = np.random.default_rng(1)
# Raw units far from unit scale, as users upload them.
INPUTS = RNG.normal(size=(64, 3)) * [100.0, 0.01, 5.0] + [1000.0, 0.0, -20.0]
SCORES = (INPUTS - INPUTS.mean(axis=0)) / INPUTS.std(axis=0) @ np.array([[1.0], [-1.0], [0.5]])
TOLERANCE = {"float32": 1e-6, "float64": 1e-9}


def assert_close(answered: np.ndarray, model: Model, dtype: str) -> None:
    """Equal to TOLERANCE on the network's own scale: standardized targets are scaled back
    by their standard deviation (hundreds here), which scales a float32 rounding with it."""
    tolerance = TOLERANCE[dtype]
    targets = None if model.preprocessing is None else model.preprocessing.targets
    scale = 1.0 if targets is None else float(targets.scale.max())
    expected = model.predict(INPUTS)
    np.testing.assert_allclose(answered, expected, rtol=tolerance, atol=tolerance * scale)


def model_for(output: str, hidden: str, dtype: str, inputs: str, targets: str) -> Model:
    classes = None
    if output == "identity":
        width, loss, answers = 1, "mse", SCORES * 300 + 50
    elif output == "sigmoid":
        width, loss, answers = 1, "binary_crossentropy", (SCORES > 0).astype(float)
    else:
        labels = Labels.from_values(np.digitize(SCORES[:, 0], [-0.5, 0.5]).tolist())
        width, loss, classes = 3, "categorical_crossentropy", labels.classes
        answers = labels.targets_for(RunSpec.from_dict({"network": {"layers": [3, 3]}}).network)
    spec = RunSpec.from_dict(
        {
            "network": {
                "layers": [3, 8, 5, width],
                "hidden_activation": hidden,
                "output_activation": output,
            },
            "training": {"loss": loss, "epochs": 5, "batch_size": 8, "dtype": dtype},
            "preprocessing": {"inputs": inputs, "targets": targets},
        }
    )
    trainer = Trainer(spec, INPUTS, answers, classes=classes, feature_names=("x", "y", "z"))
    for _ in trainer.run():
        pass
    return trainer.model()


def run_onnx(data: bytes, inputs: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    (outputs,) = session.run(["outputs"], {"inputs": inputs})
    result: np.ndarray = outputs
    return result


CASES = [
    ("identity", "none", "none"),
    ("identity", "standardize", "standardize"),
    ("identity", "minmax", "standardize"),
    ("sigmoid", "none", "none"),
    ("sigmoid", "standardize", "none"),
    ("softmax", "none", "none"),
    ("softmax", "minmax", "none"),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("output", "inputs", "targets"), CASES)
def test_onnxruntime_answers_the_services_outputs(
    output: str, inputs: str, targets: str, dtype: str
) -> None:
    model = model_for(output, "tanh", dtype, inputs, targets)

    data = write_onnx(model)
    answered = run_onnx(data, INPUTS)

    assert answered.dtype == np.float64
    assert_close(answered, model, dtype)
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden", ["relu", "leaky_relu", "tanh", "sigmoid", "identity"])
def test_every_hidden_activation_exports(hidden: str, dtype: str) -> None:
    model = model_for("identity", hidden, dtype, "standardize", "standardize")

    answered = run_onnx(write_onnx(model), INPUTS)

    assert_close(answered, model, dtype)


def test_the_graph_is_gemm_and_activation_nodes_with_names_in_its_metadata() -> None:
    model = model_for("softmax", "relu", "float64", "standardize", "none")

    proto = onnx.load_from_string(write_onnx(model, {"model": {"name": "m", "version": 2}}))
    properties = {p.key: p.value for p in proto.metadata_props}

    assert [op.op_type for op in proto.graph.node] == [
        "Sub", "Div", "Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax", "Identity",
    ]  # fmt: skip
    assert [o.version for o in proto.opset_import] == [OPSET]
    assert json.loads(properties["feature_names"]) == ["x", "y", "z"]
    assert json.loads(properties["classes"]) == [0, 1, 2]
    assert json.loads(properties["model"]) == {"name": "m", "version": 2}
    assert proto.graph.input[0].name == "inputs" and proto.graph.output[0].name == "outputs"
