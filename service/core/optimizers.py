"""Optimizers: small classes with explicit, exportable state.

Parameters, gradients and state are flat vectors; `apply` updates one contiguous part
(a layer, for the dirty update rule, or everything) in place.
"""

from typing import Protocol

import numpy as np


class Optimizer(Protocol):
    def begin_step(self) -> None:
        """Count one optimization step (one batch), before any `apply` of that step."""

    def apply(self, params: np.ndarray, grads: np.ndarray, part: slice, lr: float) -> None:
        """Update `params[part]` in place from `grads[part]`; `grads` is left as it was."""

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue, as named arrays."""

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what `state` returned."""


class SGD:
    def __init__(self, size: int, dtype: np.dtype) -> None:
        self._scratch = np.zeros(size, dtype)

    def begin_step(self) -> None:
        return None

    def apply(self, params: np.ndarray, grads: np.ndarray, part: slice, lr: float) -> None:
        step = self._scratch[part]
        np.multiply(grads[part], lr, out=step)
        params[part] -= step

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        return None


class Momentum:
    """Heavy-ball momentum (`v = mu v - lr g; p += v`), or Nesterov's look-ahead form."""

    def __init__(self, size: int, dtype: np.dtype, momentum: float, nesterov: bool) -> None:
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocity = np.zeros(size, dtype)
        self._scratch = np.zeros(size, dtype)

    def begin_step(self) -> None:
        return None

    def apply(self, params: np.ndarray, grads: np.ndarray, part: slice, lr: float) -> None:
        velocity, step = self.velocity[part], self._scratch[part]
        np.multiply(grads[part], lr, out=step)
        velocity *= self.momentum
        velocity -= step
        if self.nesterov:
            # p += mu * v_new - lr * g
            params[part] -= step
            np.multiply(velocity, self.momentum, out=step)
            params[part] += step
        else:
            params[part] += velocity

    def state(self) -> dict[str, np.ndarray]:
        return {"velocity": self.velocity.copy()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.velocity[...] = state["velocity"]


class Adam:
    def __init__(self, size: int, dtype: np.dtype, beta1: float, beta2: float, eps: float) -> None:
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.first = np.zeros(size, dtype)
        self.second = np.zeros(size, dtype)
        self.steps = 0
        self._scratch = np.zeros(size, dtype)

    def begin_step(self) -> None:
        self.steps += 1

    def apply(self, params: np.ndarray, grads: np.ndarray, part: slice, lr: float) -> None:
        grad, first, second, step = (
            grads[part],
            self.first[part],
            self.second[part],
            self._scratch[part],
        )
        first *= self.beta1
        first += (1 - self.beta1) * grad
        second *= self.beta2
        np.multiply(grad, grad, out=step)
        step *= 1 - self.beta2
        second += step
        rate = lr * np.sqrt(1 - self.beta2**self.steps) / (1 - self.beta1**self.steps)
        np.sqrt(second, out=step)
        step += self.eps
        np.divide(first, step, out=step)
        step *= rate
        params[part] -= step

    def state(self) -> dict[str, np.ndarray]:
        return {
            "first": self.first.copy(),
            "second": self.second.copy(),
            "steps": np.array(self.steps, dtype=np.int64),
        }

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.first[...] = state["first"]
        self.second[...] = state["second"]
        self.steps = int(state["steps"])


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


def make_optimizer(
    name: str,
    size: int,
    dtype: np.dtype,
    *,
    momentum: float,
    beta1: float,
    beta2: float,
    epsilon: float,
) -> Optimizer:
    """Build the optimizer a training spec names."""
    if name == "sgd":
        return SGD(size, dtype)
    if name in ("momentum", "nesterov"):
        return Momentum(size, dtype, momentum, nesterov=name == "nesterov")
    if name == "adam":
        return Adam(size, dtype, beta1, beta2, epsilon)
    raise ValueError(f"unknown optimizer {name!r}")
