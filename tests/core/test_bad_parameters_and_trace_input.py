"""Explicit parameters and trace input: each mistake is a SpecError naming its field."""

import math
from typing import Any

import numpy as np
import pytest

from service.core import NetworkSpec, Parameters, SpecError, trace_step

LAYERS = [2, 3, 1]


def _layers(**changes: Any) -> dict[str, Any]:
    """Valid `{"layers": [...]}` for LAYERS, with the given layer-1 entries replaced."""
    second = {"weights": [[0.1, 0.2, 0.3]], "bias": [0.4], **changes}
    return {
        "layers": [
            {"weights": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], "bias": [0.5, 0.6, 0.7]},
            second,
        ]
    }


def test_spec_error_reads_field_colon_message() -> None:
    error = SpecError("training.epochs", "must be at least 1, got 0")

    assert str(error) == "training.epochs: must be at least 1, got 0"
    assert (error.field, error.message) == ("training.epochs", "must be at least 1, got 0")


def test_parameters_from_layers_keep_every_value_in_the_dtype_asked_for() -> None:
    params = Parameters.from_layers(LAYERS, _layers(), "float32")

    assert params.flat.dtype == np.float32
    np.testing.assert_array_equal(params.weights[0], [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_allclose(params.biases[1], [0.4], rtol=1e-7)
    assert Parameters.from_layers(LAYERS, _layers()).flat.dtype == np.float64


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ([1, 2], "parameters.layers", "must list 2 layers"),
        ({"layers": None}, "parameters.layers", "must list 2 layers"),
        ({"layers": [{}]}, "parameters.layers", "must list 2 layers"),
        ({"layers": [1, 2]}, "parameters.layers[0]", "must be an object with weights and bias"),
        (_layers(weights=[["a", 1, 2]]), "parameters.layers[1].weights", "must be numbers"),
        (
            _layers(bias=[0.1, 0.2]),
            "parameters.layers[1].bias",
            "must have shape (1,), got (2,)",
        ),
        (
            _layers(weights=[[0.1, math.nan, 0.3]]),
            "parameters.layers[1].weights",
            "must be finite (no NaN or infinity)",
        ),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(values: Any, field: str, message: str) -> None:
    with pytest.raises(SpecError) as error:
        Parameters.from_layers(LAYERS, values)

    assert (error.value.field, error.value.message) == (field, message)


def test_flat_parameters_longer_than_the_layers_need_are_refused_with_both_sizes() -> None:
    with pytest.raises(ValueError, match=r"^flat vector has 14 values, layers need 13$"):
        Parameters(LAYERS, np.zeros(14))


def test_parameters_field_name_can_be_chosen() -> None:
    with pytest.raises(SpecError) as error:
        Parameters.from_layers(LAYERS, {"layers": []}, field="warm_start")

    assert error.value.field == "warm_start.layers"


NETWORK = NetworkSpec.from_dict(
    {"layers": [2, 2, 1], "hidden_activation": "relu", "output_activation": "identity"}
)


def _parameters() -> Parameters:
    params = Parameters.zeros(NETWORK.layers)
    params.flat[...] = np.linspace(-1, 1, params.flat.size)
    return params


def test_trace_defaults_are_mse_learning_rate_001_and_the_standard_rule() -> None:
    explicit = trace_step(
        NETWORK,
        _parameters(),
        [1.0, 2.0],
        [0.5],
        loss="mse",
        learning_rate=0.01,
        update_rule="standard",
    )

    assert trace_step(NETWORK, _parameters(), [1.0, 2.0], [0.5]) == explicit


@pytest.mark.parametrize(
    ("arguments", "field", "message"),
    [
        ({"loss": "hinge"}, "loss", "must be one of"),
        ({"loss": "binary_crossentropy"}, "loss", "binary_crossentropy does not fit output"),
        ({"update_rule": "sloppy"}, "update_rule", "must be one of dirty, standard"),
        ({"learning_rate": 0}, "learning_rate", "must be greater than 0, got 0"),
        ({"learning_rate": -0.5}, "learning_rate", "must be greater than 0, got -0.5"),
        ({"inputs": ["a", 1]}, "input", "must be a list of numbers"),
        ({"inputs": [1, 2, 3]}, "input", "must have 2 values, got shape (3,)"),
        ({"inputs": [math.inf, 1]}, "input", "must be finite (no NaN or infinity)"),
        ({"target": [[1.0]]}, "target", "must have 1 values, got shape (1, 1)"),
        ({"target": [math.nan]}, "target", "must be finite (no NaN or infinity)"),
    ],
)
def test_bad_trace_input_is_refused_naming_the_field(
    arguments: dict[str, Any], field: str, message: str
) -> None:
    call: dict[str, Any] = {"inputs": [1.0, 2.0], "target": [0.5], **arguments}

    with pytest.raises(SpecError) as error:
        trace_step(NETWORK, _parameters(), **call)

    assert error.value.field == field
    assert error.value.message.startswith(message)
