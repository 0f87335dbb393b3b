"""Activations as name -> function tables.

Each forward function writes `f(a)` into `out`; each backward function multiplies the
error `delta` in place by `f'(a)`, reading whichever of the aggregate `a` or the
activation `h = f(a)` gives the derivative more cheaply. All arrays are
`(n_samples, n_units)`.
"""

from collections.abc import Callable

import numpy as np

Forward = Callable[[np.ndarray, np.ndarray], None]
Backward = Callable[[np.ndarray, np.ndarray, np.ndarray], None]

LEAKY_SLOPE = 0.01


def _identity(a: np.ndarray, out: np.ndarray) -> None:
    if out is not a:
        np.copyto(out, a)


def _identity_backward(a: np.ndarray, h: np.ndarray, delta: np.ndarray) -> None:
    return None


# NumPy's maximum is vectorized only between two arrays: against the scalar 0 it runs
# element by element, several times slower on a large layer (3x in float32 at 128 x 256).
# Small layers keep the scalar, where one fewer lookup is what counts.
ZEROS_ABOVE = 1024
_zeros: dict[np.dtype, np.ndarray] = {}


def _zeros_like(a: np.ndarray) -> np.ndarray:
    """Read-only zeros shaped like `a`, views of one buffer per dtype that only grows."""
    zeros = _zeros.get(a.dtype)
    if zeros is None or zeros.size < a.size:
        # np.zeros maps untouched pages to the kernel's shared zero page: no memory used.
        zeros = _zeros[a.dtype] = np.zeros(a.size, a.dtype)
    return zeros[: a.size].reshape(a.shape)


def _relu(a: np.ndarray, out: np.ndarray) -> None:
    np.maximum(a, 0 if a.size <= ZEROS_ABOVE else _zeros_like(a), out=out)


def _relu_backward(a: np.ndarray, h: np.ndarray, delta: np.ndarray) -> None:
    # The derivative comes from the aggregate (a > 0), not from h >= 0 as in the notebook.
    delta *= a > 0


def _leaky_relu(a: np.ndarray, out: np.ndarray) -> None:
    np.multiply(a, np.where(a > 0, 1.0, LEAKY_SLOPE).astype(a.dtype, copy=False), out=out)


def _leaky_relu_backward(a: np.ndarray, h: np.ndarray, delta: np.ndarray) -> None:
    delta *= np.where(a > 0, 1.0, LEAKY_SLOPE).astype(delta.dtype, copy=False)


def _tanh(a: np.ndarray, out: np.ndarray) -> None:
    np.tanh(a, out=out)


def _tanh_backward(a: np.ndarray, h: np.ndarray, delta: np.ndarray) -> None:
    delta *= 1 - h * h


def _sigmoid(a: np.ndarray, out: np.ndarray) -> None:
    # 0.5 * (1 + tanh(a / 2)) equals 1 / (1 + exp(-a)) and never overflows.
    np.multiply(a, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5


def _sigmoid_backward(a: np.ndarray, h: np.ndarray, delta: np.ndarray) -> None:
    delta *= h * (1 - h)


def _softmax(a: np.ndarray, out: np.ndarray) -> None:
    np.subtract(a, a.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)


def _softmax_backward(a: np.ndarray, h: np.ndarray, delta: np.ndarray) -> None:
    # Jacobian-vector product of softmax: s * (g - sum(g * s)).
    delta -= (delta * h).sum(axis=1, keepdims=True)
    delta *= h


HIDDEN: dict[str, tuple[Forward, Backward]] = {
    "relu": (_relu, _relu_backward),
    "leaky_relu": (_leaky_relu, _leaky_relu_backward),
    "tanh": (_tanh, _tanh_backward),
    "sigmoid": (_sigmoid, _sigmoid_backward),
    "identity": (_identity, _identity_backward),
}

OUTPUT: dict[str, tuple[Forward, Backward]] = {
    "identity": (_identity, _identity_backward),
    "sigmoid": (_sigmoid, _sigmoid_backward),
    "softmax": (_softmax, _softmax_backward),
}
