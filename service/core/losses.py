"""Losses as name -> function tables, and which output activation each may follow.

Per-sample losses are `(n_samples,)`; outputs and targets are `(n_samples, n_outputs)`.
"""

from collections.abc import Callable

import numpy as np

PerSampleLoss = Callable[[np.ndarray, np.ndarray], np.ndarray]
LossGradient = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


def _clip_probability(output: np.ndarray) -> np.ndarray:
    eps = np.finfo(output.dtype).eps
    clipped: np.ndarray = np.clip(output, eps, 1 - eps)
    return clipped


def mse(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Half the squared error, summed over outputs: its gradient is `output - target`."""
    diff = output - target
    per_sample: np.ndarray = 0.5 * np.einsum("ij,ij->i", diff, diff)
    return per_sample


def _mse_gradient(output: np.ndarray, target: np.ndarray, out: np.ndarray) -> None:
    np.subtract(output, target, out=out)


def binary_crossentropy(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Cross-entropy of independent Bernoulli outputs, summed over outputs."""
    p = _clip_probability(output)
    per_sample: np.ndarray = -(target * np.log(p) + (1 - target) * np.log1p(-p)).sum(axis=1)
    return per_sample


def _binary_crossentropy_gradient(output: np.ndarray, target: np.ndarray, out: np.ndarray) -> None:
    p = _clip_probability(output)
    np.divide(p - target, p * (1 - p), out=out)


def categorical_crossentropy(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Cross-entropy of one categorical output (targets one-hot or class probabilities)."""
    per_sample: np.ndarray = -(target * np.log(_clip_probability(output))).sum(axis=1)
    return per_sample


def _categorical_crossentropy_gradient(
    output: np.ndarray, target: np.ndarray, out: np.ndarray
) -> None:
    np.divide(-target, _clip_probability(output), out=out)


LOSSES: dict[str, tuple[PerSampleLoss, LossGradient]] = {
    "mse": (mse, _mse_gradient),
    "binary_crossentropy": (binary_crossentropy, _binary_crossentropy_gradient),
    "categorical_crossentropy": (categorical_crossentropy, _categorical_crossentropy_gradient),
}

# Output activation -> the losses that make sense on its outputs.
VALID_LOSSES: dict[str, frozenset[str]] = {
    "identity": frozenset({"mse"}),
    "sigmoid": frozenset({"mse", "binary_crossentropy"}),
    "softmax": frozenset({"mse", "categorical_crossentropy"}),
}

# For these pairs d(loss)/d(aggregate) simplifies to `output - target`, so the backward
# pass skips the loss gradient and the activation derivative.
CANONICAL_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("identity", "mse"),
        ("sigmoid", "binary_crossentropy"),
        ("softmax", "categorical_crossentropy"),
    }
)
