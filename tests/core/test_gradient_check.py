"""Backpropagated gradients agree with central finite differences of the loss, for every
hidden activation with every output activation and loss that fit together."""

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from service.core import Backprop, NetworkSpec, Parameters
from service.core.activations import HIDDEN
from service.core.losses import VALID_LOSSES

LAYERS = (3, 4, 5)
N_SAMPLES = 6
STEP = 1e-5
PAIRS = sorted((output, loss) for output, losses in VALID_LOSSES.items() for loss in sorted(losses))
CASES = [
    (hidden, output, loss, l2)
    for (hidden, (output, loss)), l2 in itertools.product(
        itertools.product(sorted(HIDDEN), PAIRS), (0.0, 0.1)
    )
]


def _targets(output: str, loss: str, n_outputs: int, rng: np.random.Generator) -> np.ndarray:
    """Targets the loss accepts: one-hot for categorical, probabilities for the others on
    sigmoid/softmax outputs, any reals for identity."""
    if loss == "categorical_crossentropy":
        return np.eye(n_outputs)[rng.integers(0, n_outputs, N_SAMPLES)]
    if output in ("sigmoid", "softmax"):
        return rng.uniform(0.05, 0.95, (N_SAMPLES, n_outputs))
    return rng.normal(size=(N_SAMPLES, n_outputs))


REFERENCE_HIDDEN: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "identity": lambda z: z,
}


def _hidden_aggregates(params: Parameters, inputs: np.ndarray, spec: NetworkSpec) -> np.ndarray:
    h, found = inputs, []
    for w, b in zip(params.weights[:-1], params.biases[:-1], strict=True):
        a = h @ w.T + b
        found.append(a.ravel())
        h = REFERENCE_HIDDEN[spec.hidden_activation](a)
    return np.concatenate(found)


def _away_from_kinks(spec: NetworkSpec, rng: np.random.Generator) -> tuple[Parameters, np.ndarray]:
    """Parameters and inputs whose hidden aggregates all stay far from 0 (relu's kink) compared
    with the finite-difference step."""
    for _ in range(100):
        params = Parameters.zeros(spec.layers)
        params.flat[...] = rng.normal(0, 0.8, params.flat.size)
        inputs = rng.choice([-1.0, 1.0], (N_SAMPLES, spec.n_inputs)) * rng.uniform(
            0.5, 1.5, (N_SAMPLES, spec.n_inputs)
        )
        if np.abs(_hidden_aggregates(params, inputs, spec)).min() > 1e-3:
            return params, inputs
    raise AssertionError("no kink-free draw found")


def _finite_differences(
    backprop: Backprop, params: Parameters, inputs: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    numeric = np.zeros_like(params.flat)
    for i in range(params.flat.size):
        original = params.flat[i]
        params.flat[i] = original + STEP
        up = backprop.loss(params, inputs, targets)
        params.flat[i] = original - STEP
        down = backprop.loss(params, inputs, targets)
        params.flat[i] = original
        numeric[i] = (up - down) / (2 * STEP)
    return numeric


@pytest.mark.parametrize(("hidden", "output", "loss", "l2"), CASES)
def test_backprop_gradients_match_finite_differences(
    hidden: str, output: str, loss: str, l2: float
) -> None:
    n_outputs = 3
    spec = NetworkSpec.from_dict(
        {"layers": [*LAYERS, n_outputs], "hidden_activation": hidden, "output_activation": output}
    )
    rng = np.random.default_rng(sorted(HIDDEN).index(hidden) * 100 + PAIRS.index((output, loss)))
    params, inputs = _away_from_kinks(spec, rng)
    targets = _targets(output, loss, n_outputs, rng)
    backprop = Backprop(spec, loss, l2)

    analytic = backprop.gradients(params, inputs, targets).flat
    numeric = _finite_differences(backprop, params, inputs, targets)

    relative_error = np.linalg.norm(analytic - numeric) / (
        np.linalg.norm(analytic) + np.linalg.norm(numeric)
    )
    assert relative_error < 1e-6, (relative_error, analytic, numeric)
    # Every layer must get a gradient: a zero vector would pass the relative check trivially.
    for weights in backprop.gradients(params, inputs, targets).weights:
        assert np.abs(weights).max() > 1e-6


def test_gradients_do_not_depend_on_sample_order() -> None:
    spec = NetworkSpec.from_dict({"layers": [3, 4, 2], "hidden_activation": "tanh"})
    rng = np.random.default_rng(7)
    params = Parameters.zeros(spec.layers)
    params.flat[...] = rng.normal(size=params.flat.size)
    inputs, targets = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    order = rng.permutation(5)
    backprop = Backprop(spec, "mse")

    np.testing.assert_allclose(
        backprop.gradients(params, inputs, targets).flat,
        backprop.gradients(params, inputs[order], targets[order]).flat,
        rtol=1e-12,
        atol=1e-14,
    )
