"""Weight initializers as a name -> function table.

Each fills a layer's weights `(n_out, n_in)` and bias `(n_out,)` in place, drawing from
the run's explicit `numpy.random.Generator`.
"""

from collections.abc import Callable

import numpy as np

LayerInit = Callable[[np.ndarray, np.ndarray, np.random.Generator], None]


def _standard_normal(weights: np.ndarray, bias: np.ndarray, rng: np.random.Generator) -> None:
    # The notebook's choice: weights and biases both from N(0, 1).
    weights[...] = rng.standard_normal(weights.shape)
    bias[...] = rng.standard_normal(bias.shape)


def _xavier_uniform(weights: np.ndarray, bias: np.ndarray, rng: np.random.Generator) -> None:
    n_out, n_in = weights.shape
    limit = np.sqrt(6.0 / (n_in + n_out))
    weights[...] = rng.uniform(-limit, limit, weights.shape)
    bias[...] = 0


def _xavier_normal(weights: np.ndarray, bias: np.ndarray, rng: np.random.Generator) -> None:
    n_out, n_in = weights.shape
    weights[...] = rng.normal(0.0, np.sqrt(2.0 / (n_in + n_out)), weights.shape)
    bias[...] = 0


def _he_normal(weights: np.ndarray, bias: np.ndarray, rng: np.random.Generator) -> None:
    n_in = weights.shape[1]
    weights[...] = rng.normal(0.0, np.sqrt(2.0 / n_in), weights.shape)
    bias[...] = 0


def _he_uniform(weights: np.ndarray, bias: np.ndarray, rng: np.random.Generator) -> None:
    n_in = weights.shape[1]
    limit = np.sqrt(6.0 / n_in)
    weights[...] = rng.uniform(-limit, limit, weights.shape)
    bias[...] = 0


INITIALIZERS: dict[str, LayerInit] = {
    "normal": _standard_normal,
    "xavier_uniform": _xavier_uniform,
    "xavier_normal": _xavier_normal,
    "he_normal": _he_normal,
    "he_uniform": _he_uniform,
}

# `auto` is no draw of its own: it names, per layer, the initializer that suits the layer's
# activation (see `layer_initializer`).
INIT_CHOICES = ("auto", *INITIALIZERS)

# Activations whose layers keep their output variance with He's fan-in scaling; the rest
# (tanh, sigmoid, identity, softmax) with Glorot's.
HE_ACTIVATIONS = frozenset({"relu", "leaky_relu"})


def layer_initializer(init: str, activation: str) -> LayerInit:
    """The draw for a layer followed by `activation`: `init` itself, or for `auto` He
    uniform before relu and leaky_relu and Glorot (Xavier) uniform otherwise."""
    if init == "auto":
        return _he_uniform if activation in HE_ACTIVATIONS else _xavier_uniform
    return INITIALIZERS[init]
