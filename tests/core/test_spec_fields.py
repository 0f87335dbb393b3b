"""Every spec field: its default, the edge values it accepts, and the exact message for a
value it refuses. The API, the CLI and the worker all show these messages."""

import copy
import math
from typing import Any

import pytest

from service.core import NetworkSpec, PreprocessingSpec, RunSpec, SpecError, TrainingSpec
from service.core.spec import LEGACY_PREPROCESSING, TASKS, stored_spec, with_task_defaults

VALID: dict[str, Any] = {
    "network": {"layers": [2, 3, 1]},
    "training": {},
}


def _with(section: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    data[section].update(changes)
    return data


def test_training_defaults() -> None:
    assert RunSpec.from_dict(VALID).training.to_dict() == {
        "loss": "mse",
        "optimizer": "sgd",
        "learning_rate": 0.01,
        "momentum": 0.9,
        "beta1": 0.9,
        "beta2": 0.999,
        "epsilon": 1e-8,
        "lr_schedule": "constant",
        "lr_decay": 0.5,
        "lr_decay_every": 100,
        "l2": 0.0,
        "epochs": 100,
        "batch_size": 1,
        "shuffle": True,
        "seed": 0,
        "update_rule": "standard",
        "validation_split": 0.0,
        "early_stopping_patience": None,
        "early_stopping_min_delta": 0.0,
        "dtype": "float64",
        "engine": "auto",
    }
    assert TrainingSpec.from_dict({}) == TrainingSpec()
    assert RunSpec.from_dict({"network": VALID["network"]}).training == TrainingSpec()


def test_network_defaults_and_sizes() -> None:
    network = RunSpec.from_dict(VALID).network

    assert network.to_dict() == {
        "layers": [2, 3, 1],
        "hidden_activation": "relu",
        "output_activation": "identity",
        "init": "auto",
    }
    assert (network.n_inputs, network.n_outputs) == (2, 1)
    assert network.n_parameters == (2 + 1) * 3 + (3 + 1) * 1
    assert NetworkSpec.from_dict(network.to_dict()) == network


@pytest.mark.parametrize(
    "training",
    [
        {"learning_rate": 1e-12, "momentum": 0, "beta1": 0, "beta2": 0, "epsilon": 1e-300},
        {"momentum": 0.999, "beta1": 0.999, "beta2": 0.999999, "validation_split": 0.99},
        {"lr_decay": 1e-9, "lr_decay_every": 1, "l2": 0, "epochs": 1, "batch_size": 1},
        {"seed": 0, "early_stopping_patience": 1, "early_stopping_min_delta": 0},
        {"batch_size": None, "early_stopping_patience": None, "shuffle": False},
        {"learning_rate": 2, "epochs": 3, "l2": 1},
    ],
)
def test_edge_values_are_accepted(training: dict[str, Any]) -> None:
    spec = RunSpec.from_dict(_with("training", **training))

    for key, value in training.items():
        assert getattr(spec.training, key) == value


def test_network_edge_values_are_accepted() -> None:
    spec = NetworkSpec.from_dict({"layers": [1, 1], "output_activation": "sigmoid"})
    softmax = NetworkSpec.from_dict({"layers": (1, 2), "output_activation": "softmax"})

    assert spec.layers == (1, 1) and softmax.layers == (1, 2)


def _choices(*names: str) -> str:
    return "must be one of " + ", ".join(names)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ([], "spec", "must be an object with network and training"),
        ({"training": {}}, "network", "is required"),
        ({"network": "wide"}, "network", "must be an object"),
        ({"network": {"layers": [2, 1]}, "training": 3}, "training", "must be an object"),
        ({"network": {"layers": [2, 1], "colour": "red"}}, "network.colour", "unknown field"),
        ({"network": {}}, "network.layers", "is required"),
        (
            {"network": {"layers": [3]}},
            "network.layers",
            "must list at least an input and an output width",
        ),
        (
            {"network": {"layers": "23"}},
            "network.layers",
            "must list at least an input and an output width",
        ),
        (
            {"network": {"layers": [2, True, 1]}},
            "network.layers[1]",
            "must be an integer, got True",
        ),
        ({"network": {"layers": [2, 1.5, 1]}}, "network.layers[1]", "must be an integer, got 1.5"),
        ({"network": {"layers": [2, 3, 0]}}, "network.layers[2]", "must be at least 1, got 0"),
        (
            _with("network", hidden_activation="swish"),
            "network.hidden_activation",
            _choices("identity", "leaky_relu", "relu", "sigmoid", "tanh") + ", got 'swish'",
        ),
        (
            _with("network", output_activation="relu"),
            "network.output_activation",
            _choices("identity", "sigmoid", "softmax") + ", got 'relu'",
        ),
        (
            _with("network", init="zeros"),
            "network.init",
            _choices("auto", "he_normal", "he_uniform", "normal", "xavier_normal", "xavier_uniform")
            + ", got 'zeros'",
        ),
        (
            _with("network", output_activation="softmax"),
            "network.output_activation",
            "softmax needs at least 2 outputs",
        ),
        (
            _with("training", loss="hinge"),
            "training.loss",
            _choices("binary_crossentropy", "categorical_crossentropy", "mse") + ", got 'hinge'",
        ),
        (
            _with("training", loss="binary_crossentropy"),
            "training.loss",
            "binary_crossentropy does not fit output activation identity; use one of mse",
        ),
        (
            {
                "network": {"layers": [2, 1], "output_activation": "sigmoid"},
                "training": {"loss": "categorical_crossentropy"},
            },
            "training.loss",
            "categorical_crossentropy does not fit output activation sigmoid; "
            "use one of binary_crossentropy, mse",
        ),
        (
            _with("training", optimizer="rmsprop"),
            "training.optimizer",
            _choices("adam", "momentum", "nesterov", "sgd") + ", got 'rmsprop'",
        ),
        (_with("training", colour=1), "training.colour", "unknown field"),
        (
            _with("training", learning_rate=0),
            "training.learning_rate",
            "must be greater than 0, got 0",
        ),
        (
            _with("training", learning_rate="fast"),
            "training.learning_rate",
            "must be a number, got 'fast'",
        ),
        (
            _with("training", learning_rate=True),
            "training.learning_rate",
            "must be a number, got True",
        ),
        (_with("training", learning_rate=math.inf), "training.learning_rate", "must be finite"),
        (_with("training", learning_rate=math.nan), "training.learning_rate", "must be finite"),
        (_with("training", momentum=-0.1), "training.momentum", "must be at least 0, got -0.1"),
        (_with("training", momentum=1), "training.momentum", "must be less than 1, got 1"),
        (_with("training", beta1=-0.5), "training.beta1", "must be at least 0, got -0.5"),
        (_with("training", beta1=1.0), "training.beta1", "must be less than 1, got 1"),
        (_with("training", beta2=-1), "training.beta2", "must be at least 0, got -1"),
        (_with("training", beta2=1.5), "training.beta2", "must be less than 1, got 1.5"),
        (_with("training", epsilon=0), "training.epsilon", "must be greater than 0, got 0"),
        (
            _with("training", lr_schedule="linear"),
            "training.lr_schedule",
            _choices("constant", "cosine", "exponential", "inverse_time", "step")
            + ", got 'linear'",
        ),
        (_with("training", lr_decay=0), "training.lr_decay", "must be greater than 0, got 0"),
        (
            _with("training", lr_decay_every=0),
            "training.lr_decay_every",
            "must be at least 1, got 0",
        ),
        (_with("training", l2=-0.01), "training.l2", "must be at least 0, got -0.01"),
        (_with("training", epochs=0), "training.epochs", "must be at least 1, got 0"),
        (_with("training", epochs=2.0), "training.epochs", "must be an integer, got 2.0"),
        (_with("training", batch_size=0), "training.batch_size", "must be at least 1, got 0"),
        (
            _with("training", batch_size="all"),
            "training.batch_size",
            "must be an integer, got 'all'",
        ),
        (_with("training", shuffle=1), "training.shuffle", "must be true or false, got 1"),
        (_with("training", seed=-1), "training.seed", "must be at least 0, got -1"),
        (
            _with("training", update_rule="sloppy"),
            "training.update_rule",
            _choices("dirty", "standard") + ", got 'sloppy'",
        ),
        (
            _with("training", validation_split=-0.1),
            "training.validation_split",
            "must be at least 0, got -0.1",
        ),
        (
            _with("training", validation_split=1),
            "training.validation_split",
            "must be less than 1, got 1",
        ),
        (
            _with("training", early_stopping_patience=0),
            "training.early_stopping_patience",
            "must be at least 1, got 0",
        ),
        (
            _with("training", early_stopping_min_delta=-1),
            "training.early_stopping_min_delta",
            "must be at least 0, got -1",
        ),
        (
            _with("training", dtype="float16"),
            "training.dtype",
            _choices("float32", "float64") + ", got 'float16'",
        ),
    ],
)
def test_refused_value_names_field_and_reason(data: Any, field: str, message: str) -> None:
    with pytest.raises(SpecError) as error:
        RunSpec.from_dict(data)

    assert (error.value.field, error.value.message) == (field, message)


def test_preprocessing_defaults_scale_inputs_not_targets() -> None:
    spec = RunSpec.from_dict(VALID)

    assert spec.preprocessing == PreprocessingSpec()
    assert spec.to_dict()["preprocessing"] == {"inputs": "standardize", "targets": "none"}
    assert RunSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("inputs", ["minmax", "none", "standardize"])
@pytest.mark.parametrize("targets", ["none", "standardize"])
def test_every_preprocessing_choice_is_accepted(inputs: str, targets: str) -> None:
    data = {**VALID, "preprocessing": {"inputs": inputs, "targets": targets}}

    spec = RunSpec.from_dict(data)

    assert (spec.preprocessing.inputs, spec.preprocessing.targets) == (inputs, targets)


@pytest.mark.parametrize(
    ("preprocessing", "field", "message"),
    [
        (
            {"inputs": "robust"},
            "preprocessing.inputs",
            _choices("minmax", "none", "standardize") + ", got 'robust'",
        ),
        (
            {"targets": "minmax"},
            "preprocessing.targets",
            _choices("none", "standardize") + ", got 'minmax'",
        ),
        ({"scale": "all"}, "preprocessing.scale", "unknown field"),
        ("standardize", "preprocessing", "must be an object"),
    ],
)
def test_refused_preprocessing_names_field_and_reason(
    preprocessing: Any, field: str, message: str
) -> None:
    with pytest.raises(SpecError) as error:
        RunSpec.from_dict({**VALID, "preprocessing": preprocessing})

    assert (error.value.field, error.value.message) == (field, message)


def test_a_spec_stored_before_preprocessing_means_the_data_as_given() -> None:
    old = {"network": {"layers": [2, 3, 1]}, "training": {"epochs": 5}}

    stored = stored_spec(old)

    assert stored["preprocessing"] == LEGACY_PREPROCESSING == {"inputs": "none", "targets": "none"}
    # ... and a network stored without init drew from N(0, 1), as it did then.
    assert RunSpec.from_dict(stored).network.init == "normal"
    assert old == {"network": {"layers": [2, 3, 1]}, "training": {"epochs": 5}}
    current = RunSpec.from_dict(VALID).to_dict()
    assert stored_spec(current) == current


@pytest.mark.parametrize(
    ("layers", "task", "n_classes", "activation", "loss"),
    [
        ([2, 3, 3], "classification", 3, "softmax", "categorical_crossentropy"),
        ([2, 3, 2], "classification", 2, "softmax", "categorical_crossentropy"),
        ([2, 3, 1], "classification", 2, "sigmoid", "binary_crossentropy"),
        ([2, 3, 1], "regression", None, "identity", "mse"),
        # Too narrow for three classes: a valid spec, so that fitting the labels to it
        # gives the error that names the classes (tests/core/test_labels.py).
        ([2, 3, 1], "classification", 3, "sigmoid", "binary_crossentropy"),
    ],
)
def test_task_fills_in_output_activation_and_loss(
    layers: list[int], task: str, n_classes: int | None, activation: str, loss: str
) -> None:
    assert task in TASKS
    spec = RunSpec.from_dict(with_task_defaults({"network": {"layers": layers}}, task, n_classes))

    assert (spec.network.output_activation, spec.training.loss) == (activation, loss)


def test_task_defaults_keep_what_the_client_gave() -> None:
    given: dict[str, Any] = {
        "network": {"layers": [2, 3, 2], "output_activation": "softmax"},
        "training": {"loss": "mse"},
    }

    filled = with_task_defaults(given, "classification", 2)

    assert filled["network"]["output_activation"] == "softmax"
    assert filled["training"]["loss"] == "mse"
    assert "loss" not in given["network"] and given["training"] == {"loss": "mse"}
    # The loss follows the activation the client chose.
    sigmoid = {"network": {"layers": [2, 3, 2], "output_activation": "sigmoid"}}
    assert with_task_defaults(sigmoid, "classification", 2)["training"] == {
        "loss": "binary_crossentropy"
    }
