"""Every optimizer (plain SGD, heavy-ball momentum, Nesterov momentum, Adam) matches
scikit-learn's MLPRegressor and MLPClassifier weight for weight, from the same initial
weights, after several epochs, per sample and in mini-batches.

Our update formulas are scikit-learn's (sklearn/neural_network/_stochastic_optimizers.py),
Nesterov's look-ahead variant included: momentum `v = mu v - lr g; p += v`; Nesterov
`v = mu v - lr g; p += mu v - lr g`; Adam with the bias correction folded into the rate,
`lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t)`, `p -= lr_t m / (sqrt(v) + eps)`.
scikit-learn adds its L2 term `alpha W` before dividing by the batch size, so our `l2` is
`alpha / batch`.
Shuffling is off on both sides (the generators differ); the optimizers' hyper-parameters
are not the defaults, so a spec value that never reaches the optimizer shows.
"""

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from service.core import Parameters, RunSpec, Trainer

N_SAMPLES = 23  # not a multiple of 5, so mini-batch epochs end with a partial batch
BATCHES = [1, 5]
EPOCHS = 7
OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam"]
LEARNING_RATES = {"sgd": 0.05, "momentum": 0.02, "nesterov": 0.02, "adam": 0.01}

# Our training spec fields and scikit-learn's parameters for the same optimizer.
OURS: dict[str, dict[str, Any]] = {
    "sgd": {"optimizer": "sgd"},
    "momentum": {"optimizer": "momentum", "momentum": 0.8},
    "nesterov": {"optimizer": "nesterov", "momentum": 0.8},
    "adam": {"optimizer": "adam", "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6},
}
THEIRS: dict[str, dict[str, Any]] = {
    "sgd": {"solver": "sgd", "momentum": 0.0, "nesterovs_momentum": False},
    "momentum": {"solver": "sgd", "momentum": 0.8, "nesterovs_momentum": False},
    "nesterov": {"solver": "sgd", "momentum": 0.8, "nesterovs_momentum": True},
    "adam": {"solver": "adam", "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6},
}


def _sklearn_settings(optimizer: str, batch: int, alpha: float = 0.0) -> dict[str, Any]:
    return {
        **THEIRS[optimizer],
        "learning_rate": "constant",
        "learning_rate_init": LEARNING_RATES[optimizer],
        "alpha": alpha,
        "shuffle": False,
        "batch_size": batch,
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
    optimizer: str,
    batch: int,
    l2: float = 0.0,
) -> Parameters:
    spec = RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": {"layers": layers, "hidden_activation": hidden, "output_activation": output},
            "training": {
                **OURS[optimizer],
                "loss": loss,
                "learning_rate": LEARNING_RATES[optimizer],
                "l2": l2,
                "epochs": EPOCHS,
                "batch_size": batch,
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


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("hidden", ["tanh", "relu"])
def test_optimizer_matches_sklearn_mlp_regressor(hidden: str, optimizer: str, batch: int) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N_SAMPLES, 3))
    y = np.column_stack([np.sin(x[:, 0]) + x[:, 1], x[:, 2] * x[:, 0]])
    layers = [3, 6, 4, 2]
    start = _initial_parameters(layers, seed=2)
    estimator = MLPRegressor(
        hidden_layer_sizes=(6, 4), activation=hidden, **_sklearn_settings(optimizer, batch)
    )

    _fit_sklearn(estimator, x, y, start)
    ours = _train_ours(layers, hidden, "identity", "mse", x, y, start, optimizer, batch)

    _assert_same_weights(ours, start, estimator)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("hidden", ["tanh", "relu"])
def test_optimizer_matches_sklearn_binary_classifier(
    hidden: str, optimizer: str, batch: int
) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N_SAMPLES, 2))
    labels = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    layers = [2, 5, 1]
    start = _initial_parameters(layers, seed=4)
    estimator = MLPClassifier(
        hidden_layer_sizes=(5,), activation=hidden, **_sklearn_settings(optimizer, batch)
    )

    _fit_sklearn(estimator, x, labels, start)
    assert estimator.out_activation_ == "logistic"
    targets = labels[:, None].astype(float)
    ours = _train_ours(
        layers, hidden, "sigmoid", "binary_crossentropy", x, targets, start, optimizer, batch
    )

    _assert_same_weights(ours, start, estimator)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("hidden", ["tanh", "relu"])
def test_optimizer_matches_sklearn_softmax_classifier(
    hidden: str, optimizer: str, batch: int
) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(N_SAMPLES, 2))
    labels = np.arange(N_SAMPLES) % 3
    x[:, 0] += labels
    layers = [2, 6, 3]
    start = _initial_parameters(layers, seed=6)
    estimator = MLPClassifier(
        hidden_layer_sizes=(6,), activation=hidden, **_sklearn_settings(optimizer, batch)
    )

    _fit_sklearn(estimator, x, labels, start)
    assert estimator.out_activation_ == "softmax"
    one_hot = np.eye(3)[labels]
    ours = _train_ours(
        layers, hidden, "softmax", "categorical_crossentropy", x, one_hot, start, optimizer, batch
    )

    _assert_same_weights(ours, start, estimator)


@pytest.mark.parametrize("batch", [1, 2, 4])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_l2_matches_sklearn_alpha_divided_by_the_batch_size(optimizer: str, batch: int) -> None:
    # 20 samples: every batch is full, so scikit-learn's alpha / batch is one constant.
    alpha = 0.3
    rng = np.random.default_rng(7)
    x = rng.normal(size=(20, 3))
    y = np.column_stack([np.cos(x[:, 0]) - x[:, 2], x[:, 1]])
    layers = [3, 5, 2]
    start = _initial_parameters(layers, seed=8)
    estimator = MLPRegressor(
        hidden_layer_sizes=(5,), activation="tanh", **_sklearn_settings(optimizer, batch, alpha)
    )

    _fit_sklearn(estimator, x, y, start)
    ours = _train_ours(
        layers, "tanh", "identity", "mse", x, y, start, optimizer, batch, l2=alpha / batch
    )
    without_l2 = _train_ours(layers, "tanh", "identity", "mse", x, y, start, optimizer, batch)

    _assert_same_weights(ours, start, estimator)
    # The penalty mattered: without it the weights end elsewhere.
    assert np.abs(ours.flat - without_l2.flat).max() > 1e-3
