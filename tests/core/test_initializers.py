"""Each initializer draws from the distribution its name promises, from the run's generator.

A layer of 300 inputs and 400 outputs gives 120,000 weights, enough for the sample
statistics to sit within a few percent of the promised ones; the generator is seeded, so
the checks are exact repeats, not chance.
"""

import math

import numpy as np
import pytest

from service.core import NetworkSpec, Parameters
from service.core.initializers import INITIALIZERS

N_IN, N_OUT = 300, 400

# name -> (distribution, standard deviation of the weights)
EXPECTED: dict[str, tuple[str, float]] = {
    "normal": ("normal", 1.0),
    "xavier_uniform": ("uniform", math.sqrt(6 / (N_IN + N_OUT)) / math.sqrt(3)),
    "xavier_normal": ("normal", math.sqrt(2 / (N_IN + N_OUT))),
    "he_normal": ("normal", math.sqrt(2 / N_IN)),
    "he_uniform": ("uniform", math.sqrt(6 / N_IN) / math.sqrt(3)),
}


def _layer(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    weights, bias = np.full((N_OUT, N_IN), np.nan), np.full(N_OUT, np.nan)
    INITIALIZERS[name](weights, bias, np.random.default_rng(seed))
    return weights, bias


def test_every_initializer_is_checked_here() -> None:
    assert sorted(INITIALIZERS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_initializer_weights_have_the_promised_spread(name: str) -> None:
    distribution, std = EXPECTED[name]
    weights, _ = _layer(name)

    assert np.isfinite(weights).all()
    assert abs(weights.mean()) < 0.02 * std
    assert weights.std() == pytest.approx(std, rel=0.02)
    if distribution == "uniform":
        # Uniform on [-limit, limit]: std = limit / sqrt(3), and nothing beyond the limit.
        limit = std * math.sqrt(3)
        assert np.abs(weights).max() <= limit
        assert np.abs(weights).max() > 0.99 * limit
    else:
        # A normal has 4.6% of its mass beyond two standard deviations; a uniform none.
        beyond = np.mean(np.abs(weights) > 2 * std)
        assert beyond == pytest.approx(0.0455, abs=0.005)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_initializer_biases(name: str) -> None:
    _, bias = _layer(name)

    if name == "normal":
        # The notebook draws its biases from N(0, 1) too.
        assert bias.std() == pytest.approx(1.0, rel=0.1)
        assert len(np.unique(bias)) == N_OUT
    else:
        assert np.array_equal(bias, np.zeros(N_OUT))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_initializer_draws_from_the_given_generator_only(name: str) -> None:
    first, _ = _layer(name, seed=1)
    again, _ = _layer(name, seed=1)
    other, _ = _layer(name, seed=2)

    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_network_is_initialized_layer_by_layer_with_each_layers_own_fan() -> None:
    spec = NetworkSpec.from_dict({"layers": [200, 50, 3], "init": "he_normal"})

    params = Parameters.initialize(spec, np.random.default_rng(0), "float32")

    assert params.flat.dtype == np.float32
    assert params.weights[0].std() == pytest.approx(math.sqrt(2 / 200), rel=0.05)
    assert params.weights[1].std() == pytest.approx(math.sqrt(2 / 50), rel=0.15)
    assert not params.biases[0].any() and not params.biases[1].any()


def test_notebook_initializer_draws_weights_before_biases() -> None:
    # Layer by layer, weights row by row, then the bias: one documented order of draws,
    # so a seed means the same network in every release.
    spec = NetworkSpec.from_dict({"layers": [2, 2, 1], "init": "normal"})
    draws = np.random.default_rng(7).standard_normal(9)

    params = Parameters.initialize(spec, np.random.default_rng(7))

    np.testing.assert_array_equal(params.weights[0].ravel(), draws[0:4])
    np.testing.assert_array_equal(params.biases[0], draws[4:6])
    np.testing.assert_array_equal(params.weights[1].ravel(), draws[6:8])
    np.testing.assert_array_equal(params.biases[1], draws[8:9])


def _bound_reached(weights: np.ndarray, limit: float) -> bool:
    """Uniform on [-limit, limit]: nothing beyond it, and with 10^5+ draws, something
    within 0.1% of it."""
    largest = float(np.abs(weights).max())
    return largest <= limit and largest > 0.999 * limit


@pytest.mark.parametrize(
    ("hidden", "output", "hidden_rule"),
    [
        ("relu", "identity", "he"),
        ("leaky_relu", "softmax", "he"),
        ("tanh", "sigmoid", "glorot"),
        ("sigmoid", "identity", "glorot"),
    ],
)
def test_auto_init_picks_he_or_glorot_by_each_layers_activation(
    hidden: str, output: str, hidden_rule: str
) -> None:
    layers = [300, 2000, 1000, 500]
    spec = NetworkSpec.from_dict(
        {"layers": layers, "hidden_activation": hidden, "output_activation": output}
    )
    assert spec.init == "auto"

    params = Parameters.initialize(spec, np.random.default_rng(0))

    for index, weights in enumerate(params.weights):
        fan_in, fan_out = layers[index], layers[index + 1]
        he, glorot = math.sqrt(6 / fan_in), math.sqrt(6 / (fan_in + fan_out))
        is_output = index == len(params.weights) - 1
        # The output layer goes by its own activation: identity, sigmoid and softmax are
        # all Glorot's.
        limit = glorot if is_output or hidden_rule == "glorot" else he
        assert _bound_reached(weights, limit), (index, np.abs(weights).max(), he, glorot)
        # The other rule's bound is far enough away that reaching this one tells them apart.
        other = he if limit == glorot else glorot
        assert abs(other - limit) > 0.05 * limit
        assert weights.std() == pytest.approx(limit / math.sqrt(3), rel=0.01)
    for bias in params.biases:
        assert not bias.any()


def test_auto_init_is_the_named_initializer_per_layer_drawn_in_order() -> None:
    auto = NetworkSpec.from_dict({"layers": [3, 5, 2], "hidden_activation": "relu"})
    rng = np.random.default_rng(11)
    expected = Parameters.zeros(auto.layers)
    INITIALIZERS["he_uniform"](expected.weights[0], expected.biases[0], rng)
    INITIALIZERS["xavier_uniform"](expected.weights[1], expected.biases[1], rng)

    params = Parameters.initialize(auto, np.random.default_rng(11))

    assert params.flat.tobytes() == expected.flat.tobytes()
