"""The notebook's first backprop step, value by value, through `trace_step`.

The golden numbers are the notebook's first step, printed to 8 decimals and checked to
1e-7. Worked by hand, with `x = [1, 1]`, target `t = 1`, learning rate `0.01`, half squared
error:

forward
  a1 = W1 @ x + b1 = [0.97873798 + 2.24089320 + 1.76405235,
                      1.86755799 - 0.97727788 + 0.40015721]  = [4.98368353, 1.29043732]
  h1 = relu(a1) = a1                                        (both aggregates are positive)
  y  = W2 @ h1 + b2 = -0.15135721 * 4.98368353              (= -0.75431643)
                      -0.10321885 * 1.29043732              (= -0.13319746)
                      +0.95008842                          = 0.06257453
backward (identity output + mse: d(loss)/d(a2) = y - t)
  e  = y - t = 0.06257453 - 1                              = -0.93742547
  dW2 = e * h1 = [-0.93742547 * 4.98368353, -0.93742547 * 1.29043732]
                                                           = [-4.67183186, -1.20968881]
  W2' = W2 - 0.01 * dW2 = [-0.15135721 + 0.04671832, -0.10321885 + 0.01209689]
                                                           = [-0.10463889, -0.09112196]
  b2' = b2 - 0.01 * e = 0.95008842 + 0.00937425            = 0.95946267
  dirty rule, through the updated W2 (relu'(a1) = 1 on both units):
    d1 = W2'.T * e = [-0.10463889 * -0.93742547, -0.09112196 * -0.93742547]
                                                           = [0.09809116, 0.08542005]
  standard rule, through the old W2:
    d1 = W2.T * e  = [-0.15135721 * -0.93742547, -0.10321885 * -0.93742547]
                                                           = [0.14188610, 0.09675998]
  dW1 = outer(d1, x): x = [1, 1], so both columns equal d1
  W1' = W1 - 0.01 * dW1 (dirty) = [[0.97873798 - 0.00098091, 2.24089320 - 0.00098091],
                                   [1.86755799 - 0.00085420, -0.97727788 - 0.00085420]]
                                = [[0.97775707, 2.23991229], [1.86670379, -0.97813208]]
  b1' = b1 - 0.01 * d1 (dirty)  = [1.76307143, 0.39930301]
"""

from typing import Any

import numpy as np
import pytest

from service.core import NetworkSpec, Parameters, RunSpec, Trainer, trace_step
from service.core.activations import OUTPUT as OUTPUT_ACTIVATIONS
from service.core.losses import LOSSES
from tests.helpers import NOTEBOOK_NETWORK, notebook_layers


@pytest.fixture
def notebook_network() -> NetworkSpec:
    return NetworkSpec.from_dict(NOTEBOOK_NETWORK)


@pytest.fixture
def notebook_parameters(notebook_network: NetworkSpec) -> Parameters:
    return Parameters.from_layers(notebook_network.layers, notebook_layers())


TOL = 1e-7
AGGREGATE_1 = [4.98368353, 1.29043732]
OUTPUT = [0.06257453]
OUTPUT_ERROR = [-0.93742547]
GRAD_W2 = [[-4.67183186, -1.20968881]]
UPDATED_W2 = [[-0.10463889, -0.09112196]]
UPDATED_B2 = [0.95946267]
DIRTY_DELTA_1 = [0.09809116, 0.08542005]
STANDARD_DELTA_1 = [0.1418861, 0.09675998]
DIRTY_UPDATED_W1 = [[0.97775707, 2.23991229], [1.86670379, -0.97813208]]
DIRTY_UPDATED_B1 = [1.76307143, 0.39930301]


def _trace(network: NetworkSpec, parameters: Parameters, update_rule: str) -> dict[str, Any]:
    return trace_step(
        network,
        parameters,
        [1.0, 1.0],
        [1.0],
        loss="mse",
        learning_rate=0.01,
        update_rule=update_rule,
    )


def assert_close(actual: object, expected: object) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=0, atol=TOL)


def assert_shared_golden_values(result: dict[str, Any]) -> None:
    """The values that both update rules share: forward pass and the output layer."""
    assert_close(result["forward"][0]["aggregate"], AGGREGATE_1)
    assert_close(result["forward"][0]["activation"], AGGREGATE_1)
    assert_close(result["forward"][1]["aggregate"], OUTPUT)
    assert_close(result["output"], OUTPUT)
    assert_close(result["output_error"], OUTPUT_ERROR)
    assert_close(result["loss"], 0.5 * OUTPUT_ERROR[0] ** 2)
    output_layer = result["backward"][1]
    assert_close(output_layer["delta"], OUTPUT_ERROR)
    assert_close(output_layer["weight_gradient"], GRAD_W2)
    assert_close(output_layer["bias_gradient"], OUTPUT_ERROR)
    assert_close(result["updated"]["layers"][1]["weights"], UPDATED_W2)
    assert_close(result["updated"]["layers"][1]["bias"], UPDATED_B2)


def test_dirty_trace_reproduces_notebook_golden_numbers(
    notebook_network: NetworkSpec, notebook_parameters: Parameters
) -> None:
    result = _trace(notebook_network, notebook_parameters, "dirty")

    assert_shared_golden_values(result)
    hidden = result["backward"][0]
    assert_close(hidden["delta"], DIRTY_DELTA_1)
    assert_close(hidden["weight_gradient"], [[d, d] for d in DIRTY_DELTA_1])
    assert_close(hidden["bias_gradient"], DIRTY_DELTA_1)
    assert_close(result["updated"]["layers"][0]["weights"], DIRTY_UPDATED_W1)
    assert_close(result["updated"]["layers"][0]["bias"], DIRTY_UPDATED_B1)


def test_standard_trace_propagates_through_old_output_weights(
    notebook_network: NetworkSpec, notebook_parameters: Parameters
) -> None:
    result = _trace(notebook_network, notebook_parameters, "standard")

    assert_shared_golden_values(result)
    hidden = result["backward"][0]
    assert_close(hidden["delta"], STANDARD_DELTA_1)
    assert_close(hidden["weight_gradient"], [[d, d] for d in STANDARD_DELTA_1])
    assert_close(hidden["bias_gradient"], STANDARD_DELTA_1)
    w1, b1 = notebook_parameters.weights[0], notebook_parameters.biases[0]
    delta = np.array(STANDARD_DELTA_1)
    assert_close(result["updated"]["layers"][0]["weights"], w1 - 0.01 * delta[:, None])
    assert_close(result["updated"]["layers"][0]["bias"], b1 - 0.01 * delta)


@pytest.mark.parametrize("update_rule", ["standard", "dirty"])
def test_trace_leaves_the_given_parameters_untouched(
    notebook_network: NetworkSpec, notebook_parameters: Parameters, update_rule: str
) -> None:
    before = notebook_parameters.flat.copy()

    _trace(notebook_network, notebook_parameters, update_rule)

    assert notebook_parameters.flat.tobytes() == before.tobytes()


def test_relu_derivative_comes_from_the_aggregate_not_the_activation(
    notebook_network: NetworkSpec, notebook_parameters: Parameters
) -> None:
    # The notebook's bug was relu'(h) = (h >= 0), always 1. With a negative aggregate the
    # unit is off, so its delta and gradients must be exactly zero.
    notebook_parameters.biases[0][1] = -10.0

    result = _trace(notebook_network, notebook_parameters, "standard")

    assert result["forward"][0]["activation"][1] == 0.0
    assert result["backward"][0]["delta"][1] == 0.0
    assert result["backward"][0]["weight_gradient"][1] == [0.0, 0.0]


@pytest.mark.parametrize(
    ("output", "loss"),
    [
        ("identity", "mse"),
        ("sigmoid", "mse"),
        ("sigmoid", "binary_crossentropy"),
        ("softmax", "mse"),
        ("softmax", "categorical_crossentropy"),
    ],
)
def test_trace_output_error_and_delta_are_derivatives_of_the_loss(output: str, loss: str) -> None:
    network = NetworkSpec.from_dict(
        {"layers": [2, 3, 3], "hidden_activation": "tanh", "output_activation": output}
    )
    params = Parameters.zeros(network.layers)
    params.flat[...] = np.random.default_rng(0).normal(0, 0.7, params.flat.size)
    x, target = np.array([0.3, -1.2]), np.array([0.0, 1.0, 0.0])
    per_sample_loss = LOSSES[loss][0]
    result = trace_step(network, params, x, target, loss=loss, update_rule="standard")
    aggregate = np.array(result["forward"][-1]["aggregate"])
    out = np.array(result["output"])

    def loss_of_output(y: np.ndarray) -> float:
        return float(per_sample_loss(y[None, :], target[None, :])[0])

    def loss_of_aggregate(a: np.ndarray) -> float:
        y = np.zeros((1, a.size))
        OUTPUT_ACTIVATIONS[output][0](a[None, :].copy(), y)
        return loss_of_output(y[0])

    step = 1e-6
    basis = np.eye(3) * step
    d_output = [(loss_of_output(out + e) - loss_of_output(out - e)) / (2 * step) for e in basis]
    d_aggregate = [
        (loss_of_aggregate(aggregate + e) - loss_of_aggregate(aggregate - e)) / (2 * step)
        for e in basis
    ]

    assert result["loss"] == pytest.approx(loss_of_output(out), rel=1e-12)
    np.testing.assert_allclose(result["output_error"], d_output, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(result["backward"][-1]["delta"], d_aggregate, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("update_rule", ["standard", "dirty"])
def test_trainer_takes_the_traced_first_step(
    notebook_network: NetworkSpec, notebook_parameters: Parameters, update_rule: str
) -> None:
    # One epoch of one sample is one step: training must move the weights exactly as the
    # trace says, under either update rule.
    spec = RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": NOTEBOOK_NETWORK,
            "training": {
                "loss": "mse",
                "optimizer": "sgd",
                "learning_rate": 0.01,
                "epochs": 1,
                "batch_size": 1,
                "update_rule": update_rule,
            },
        }
    )
    trainer = Trainer(spec, [[1.0, 1.0]], [[1.0]], initial_parameters=notebook_parameters)

    list(trainer.run())

    traced = _trace(notebook_network, notebook_parameters, update_rule)["updated"]["layers"]
    for layer, expected in enumerate(traced):
        assert_close(trainer.params.weights[layer], expected["weights"])
        assert_close(trainer.params.biases[layer], expected["bias"])
    if update_rule == "dirty":
        assert_close(trainer.params.weights[0], DIRTY_UPDATED_W1)
        assert_close(trainer.params.biases[0], DIRTY_UPDATED_B1)
