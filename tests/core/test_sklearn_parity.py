"""Plain mini-batch SGD matches scikit-learn's MLPRegressor and MLPClassifier weight for
weight, from the same initial weights, after several epochs."""

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from service.core import Parameters, RunSpec, Trainer

N_SAMPLES = 23  # not a multiple of BATCH, so every epoch ends with a partial batch
BATCH = 5
EPOCHS = 7
LEARNING_RATE = 0.05

SKLEARN_SGD: dict[str, Any] = {
    "solver": "sgd",
    "momentum": 0.0,
    "nesterovs_momentum": False,
    "learning_rate": "constant",
    "learning_rate_init": LEARNING_RATE,
    "alpha": 0.0,
    "shuffle": False,
    "batch_size": BATCH,
    "early_stopping": False,
    "n_iter_no_change": 10**9,
    "tol": 0.0,
    "random_state": 0,
}


def _initial_parameters(layers: list[int], seed: int) -> Parameters:
    params = Parameters.zeros(layers)
    params.flat[...] = np.random.default_rng(seed).normal(0, 0.5, params.flat.size)
    return params


def _fit_sklearn(
    estimator: MLPRegressor | MLPClassifier, x: np.ndarray, y: np.ndarray, start: Parameters
) -> None:
    """Train `estimator` for EPOCHS epochs from `start`'s weights (warm start after a
    throwaway one-epoch fit that only builds its attributes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.set_params(max_iter=1, warm_start=True)
        estimator.fit(x, y)
        estimator.coefs_ = [w.T.copy() for w in start.weights]
        estimator.intercepts_ = [b.copy() for b in start.biases]
        for theirs, ours in zip(estimator.coefs_, start.weights, strict=True):
            assert np.array_equal(theirs, ours.T)
        for theirs, ours in zip(estimator.intercepts_, start.biases, strict=True):
            assert np.array_equal(theirs, ours)
        estimator.set_params(max_iter=EPOCHS)
        estimator.fit(x, y)
    assert estimator.n_iter_ == EPOCHS


def _train_ours(
    layers: list[int],
    hidden: str,
    output: str,
    loss: str,
    x: np.ndarray,
    targets: np.ndarray,
    start: Parameters,
) -> Parameters:
    spec = RunSpec.from_dict(
        {
            "network": {"layers": layers, "hidden_activation": hidden, "output_activation": output},
            "training": {
                "loss": loss,
                "optimizer": "sgd",
                "learning_rate": LEARNING_RATE,
                "epochs": EPOCHS,
                "batch_size": BATCH,
                "shuffle": False,
                "update_rule": "standard",
            },
        }
    )
    trainer = Trainer(spec, x, targets, initial_parameters=start)
    assert np.array_equal(trainer.params.flat, start.flat)
    records = list(trainer.run())
    assert len(records) == EPOCHS
    return trainer.params


def _assert_same_weights(
    ours: Parameters, start: Parameters, estimator: MLPRegressor | MLPClassifier
) -> None:
    for layer, (w, b) in enumerate(zip(ours.weights, ours.biases, strict=True)):
        # Training moved the weights, so agreement is not just two untouched copies.
        assert np.abs(w - start.weights[layer]).max() > 1e-3
        np.testing.assert_allclose(w, estimator.coefs_[layer].T, rtol=0, atol=1e-10)
        np.testing.assert_allclose(b, estimator.intercepts_[layer], rtol=0, atol=1e-10)


@pytest.mark.parametrize("hidden", ["tanh", "relu"])
def test_sgd_matches_sklearn_mlp_regressor(hidden: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N_SAMPLES, 3))
    y = np.column_stack([np.sin(x[:, 0]) + x[:, 1], x[:, 2] * x[:, 0]])
    layers = [3, 6, 4, 2]
    start = _initial_parameters(layers, seed=2)
    estimator = MLPRegressor(hidden_layer_sizes=(6, 4), activation=hidden, **SKLEARN_SGD)

    _fit_sklearn(estimator, x, y, start)
    ours = _train_ours(layers, hidden, "identity", "mse", x, y, start)

    _assert_same_weights(ours, start, estimator)


@pytest.mark.parametrize("hidden", ["tanh", "relu"])
def test_sgd_matches_sklearn_binary_classifier(hidden: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N_SAMPLES, 2))
    labels = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    layers = [2, 5, 1]
    start = _initial_parameters(layers, seed=4)
    estimator = MLPClassifier(hidden_layer_sizes=(5,), activation=hidden, **SKLEARN_SGD)

    _fit_sklearn(estimator, x, labels, start)
    assert estimator.out_activation_ == "logistic"
    ours = _train_ours(
        layers, hidden, "sigmoid", "binary_crossentropy", x, labels[:, None].astype(float), start
    )

    _assert_same_weights(ours, start, estimator)


@pytest.mark.parametrize("hidden", ["tanh", "relu"])
def test_sgd_matches_sklearn_softmax_classifier(hidden: str) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(N_SAMPLES, 2))
    labels = np.arange(N_SAMPLES) % 3
    x[:, 0] += labels
    layers = [2, 6, 3]
    start = _initial_parameters(layers, seed=6)
    estimator = MLPClassifier(hidden_layer_sizes=(6,), activation=hidden, **SKLEARN_SGD)

    _fit_sklearn(estimator, x, labels, start)
    assert estimator.out_activation_ == "softmax"
    one_hot = np.eye(3)[labels]
    ours = _train_ours(layers, hidden, "softmax", "categorical_crossentropy", x, one_hot, start)

    _assert_same_weights(ours, start, estimator)
