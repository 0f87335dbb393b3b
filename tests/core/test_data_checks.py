"""Training data, prediction inputs, starting weights and the validation fraction: each
mistake is refused with its field and a message that says what is wrong."""

import math
from typing import Any

import numpy as np
import pytest

from service.core import Model, NetworkSpec, Parameters, RunSpec, SpecError, Trainer

INPUTS = [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]


def _spec(
    output: str = "identity", loss: str = "mse", n_outputs: int = 1, **training: Any
) -> RunSpec:
    return RunSpec.from_dict(
        {
            "network": {"layers": [2, 3, n_outputs], "output_activation": output},
            "training": {"loss": loss, "epochs": 2, **training},
        }
    )


@pytest.mark.parametrize(
    ("inputs", "targets", "spec", "field", "message"),
    [
        ([[0.0, "a"]], [[1.0]], _spec(), "inputs", "must be a list of rows of numbers"),
        (
            [[0.0, 1.0], [1.0]],
            [[1.0], [0.0]],
            _spec(),
            "inputs",
            "must be a list of rows of numbers",
        ),
        (
            np.zeros((0, 3)),
            np.zeros((0, 1)),
            _spec(),
            "inputs",
            "must be a non-empty list of rows, got shape (0, 3)",
        ),
        (
            [[0.0, 1.0, 2.0]],
            [[1.0]],
            _spec(),
            "network.layers[0]",
            "input width 2 does not match the data's 3 features",
        ),
        (
            INPUTS,
            [["a"], [1.0], [1.0], [0.0]],
            _spec(),
            "targets",
            "must be a list of rows of numbers",
        ),
        (
            INPUTS,
            [[1.0], [0.0], [1.0]],
            _spec(),
            "targets",
            "must have one row per input row (4), got (3, 1)",
        ),
        (
            INPUTS,
            [[1.0, 0.0]] * 4,
            _spec(),
            "network.layers[2]",
            "output width 1 does not match the data's 2 targets",
        ),
        (
            INPUTS,
            [[1.0], [0.0], [math.inf], [0.0]],
            _spec(),
            "targets[2]",
            "must be finite (no NaN or infinity)",
        ),
        (
            INPUTS,
            [[1.0], [0.0], [1.5], [0.0]],
            _spec("sigmoid", "binary_crossentropy"),
            "targets",
            "binary_crossentropy needs targets between 0 and 1",
        ),
        (
            INPUTS,
            [[1.0], [-0.5], [1.0], [0.0]],
            _spec("sigmoid", "binary_crossentropy"),
            "targets",
            "binary_crossentropy needs targets between 0 and 1",
        ),
        (
            INPUTS,
            [[1.5, -0.5]] * 4,
            _spec("softmax", "categorical_crossentropy", 2),
            "targets",
            "categorical_crossentropy needs targets between 0 and 1",
        ),
        (
            INPUTS,
            [[1.0, 0.0], [0.5, 0.5], [0.5, 0.0], [0.0, 1.0]],
            _spec("softmax", "categorical_crossentropy", 2),
            "targets[2]",
            "categorical_crossentropy needs rows summing to 1",
        ),
    ],
)
def test_bad_training_data_is_refused_with_field_and_reason(
    inputs: Any, targets: Any, spec: RunSpec, field: str, message: str
) -> None:
    with pytest.raises(SpecError) as error:
        Trainer(spec, inputs, targets)

    assert (error.value.field, error.value.message) == (field, message)


def test_targets_between_0_and_1_and_any_targets_for_mse_are_accepted() -> None:
    soft = [[1.0], [0.0], [0.5], [0.25]]

    Trainer(_spec("sigmoid", "binary_crossentropy"), INPUTS, soft)
    Trainer(_spec("sigmoid", "mse"), INPUTS, [[1.5], [-0.5], [2.0], [0.0]])
    Trainer(_spec(), INPUTS, [1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize(
    ("inputs", "field", "message"),
    [
        ([[1.0, "x"]], "inputs", "must be a list of rows of numbers"),
        ([1.0, 2.0], "inputs", "must be a non-empty list of rows, got shape (2,)"),
        (np.zeros((0, 2)), "inputs", "must be a non-empty list of rows, got shape (0, 2)"),
        ([[1.0, 2.0, 3.0]], "inputs", "rows must have 2 values, got 3"),
        ([[1.0, 2.0], [math.nan, 0.0]], "inputs[1]", "must be finite (no NaN or infinity)"),
    ],
)
def test_bad_prediction_inputs_are_refused(inputs: Any, field: str, message: str) -> None:
    model = Model(NetworkSpec.from_dict({"layers": [2, 1]}), Parameters.zeros([2, 1]))

    with pytest.raises(SpecError) as error:
        model.predict(inputs)

    assert (error.value.field, error.value.message) == (field, message)


def test_starting_weights_for_other_layers_are_refused() -> None:
    with pytest.raises(SpecError) as error:
        Trainer(_spec(), INPUTS, [1, 0, 1, 0], initial_parameters=Parameters.zeros([2, 4, 1]))

    assert (error.value.field, error.value.message) == ("parameters", "do not match network.layers")


def test_float32_run_holds_its_data_and_starting_weights_in_float32() -> None:
    spec = _spec(dtype="float32", validation_split=0.25)
    start = Parameters.zeros([2, 3, 1])

    trainer = Trainer(spec, INPUTS, [1, 0, 1, 0], initial_parameters=start)

    assert trainer.params.flat.dtype == np.float32
    assert trainer.train_x.dtype == trainer.train_t.dtype == np.float32
    assert trainer.val_x is not None and trainer.val_x.dtype == np.float32
    assert trainer.val_t is not None and trainer.val_t.dtype == np.float32


@pytest.mark.parametrize(
    ("fraction", "message"),
    [
        (0.1, "0.1 of 4 samples leaves no training or no validation samples"),
        (0.9, "0.9 of 4 samples leaves no training or no validation samples"),
    ],
)
def test_validation_fraction_must_leave_samples_on_both_sides(
    fraction: float, message: str
) -> None:
    with pytest.raises(SpecError) as error:
        Trainer(_spec(validation_split=fraction), INPUTS, [1, 0, 1, 0])

    assert (error.value.field, error.value.message) == ("training.validation_split", message)


@pytest.mark.parametrize(("fraction", "n_val"), [(0.13, 1), (0.87, 3)])
def test_validation_fraction_rounds_to_the_nearest_sample(fraction: float, n_val: int) -> None:
    trainer = Trainer(_spec(validation_split=fraction), INPUTS, [1, 0, 1, 0])

    assert trainer.val_x is not None and len(trainer.val_x) == n_val
    assert len(trainer.train_x) == 4 - n_val
