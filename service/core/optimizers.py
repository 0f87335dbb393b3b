"""Optimizers: small classes with explicit, exportable state.

Parameters, gradients and state are flat vectors. An optimizer is bound to them once and
keeps views of each part (one per layer, for the dirty update rule, and one of
everything), so a step slices nothing.
"""

from collections.abc import Sequence
from typing import Protocol

import numpy as np

EVERYTHING = -1


class Optimizer(Protocol):
    def begin_step(self) -> None:
        """Count one optimization step (one batch), before any `apply` of that step."""

    def apply(self, part: int, lr: float) -> None:
        """Update the parameters of `part` (a layer index, or EVERYTHING) from their gradients."""

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue, as named arrays."""

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what `state` returned."""


class _Parts:
    """Views of flat vectors, per part; `views(x)[EVERYTHING]` is all of `x`."""

    def __init__(self, parts: Sequence[slice]) -> None:
        self.parts = [*parts, slice(None)]

    def views(self, flat: np.ndarray) -> list[np.ndarray]:
        return [flat[part] for part in self.parts]


# SGD steps a large part in chunks of this many values through one small scratch buffer
# that stays in cache, rather than writing and re-reading a scratch as large as the part.
SGD_CHUNK = 65536


class SGD:
    def __init__(self, params: np.ndarray, grads: np.ndarray, parts: Sequence[slice]) -> None:
        split = _Parts(parts).views
        scratch = np.zeros(min(params.size, SGD_CHUNK), params.dtype)
        # Per part, its chunks as (parameters, gradients, scratch) views.
        self._chunks = [
            [
                (p[i : i + SGD_CHUNK], g[i : i + SGD_CHUNK], scratch[: min(SGD_CHUNK, p.size - i)])
                for i in range(0, p.size, SGD_CHUNK)
            ]
            for p, g in zip(split(params), split(grads), strict=True)
        ]

    def begin_step(self) -> None:
        return None

    def apply(self, part: int, lr: float) -> None:
        for params, grads, step in self._chunks[part]:
            np.multiply(grads, lr, out=step)
            params -= step

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        return None


class Momentum:
    """Heavy-ball momentum (`v = mu v - lr g; p += v`), or Nesterov's look-ahead form."""

    def __init__(
        self,
        params: np.ndarray,
        grads: np.ndarray,
        parts: Sequence[slice],
        momentum: float,
        nesterov: bool,
    ) -> None:
        split = _Parts(parts).views
        self.momentum, self.nesterov = momentum, nesterov
        self.velocity = np.zeros_like(params)
        self._params, self._grads = split(params), split(grads)
        self._velocity, self._scratch = split(self.velocity), split(np.zeros_like(params))

    def begin_step(self) -> None:
        return None

    def apply(self, part: int, lr: float) -> None:
        params, velocity, step = self._params[part], self._velocity[part], self._scratch[part]
        np.multiply(self._grads[part], lr, out=step)
        velocity *= self.momentum
        velocity -= step
        if self.nesterov:
            # p += mu * v_new - lr * g
            params -= step
            np.multiply(velocity, self.momentum, out=step)
            params += step
        else:
            params += velocity

    def state(self) -> dict[str, np.ndarray]:
        return {"velocity": self.velocity.copy()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.velocity[...] = state["velocity"]


class Adam:
    def __init__(
        self,
        params: np.ndarray,
        grads: np.ndarray,
        parts: Sequence[slice],
        beta1: float,
        beta2: float,
        eps: float,
    ) -> None:
        split = _Parts(parts).views
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.first, self.second = np.zeros_like(params), np.zeros_like(params)
        self.steps = 0
        self._params, self._grads = split(params), split(grads)
        self._first, self._second = split(self.first), split(self.second)
        self._scratch = split(np.zeros_like(params))

    def begin_step(self) -> None:
        self.steps += 1

    def apply(self, part: int, lr: float) -> None:
        grad, first, second = self._grads[part], self._first[part], self._second[part]
        step = self._scratch[part]
        np.multiply(grad, 1 - self.beta1, out=step)
        first *= self.beta1
        first += step
        np.multiply(grad, grad, out=step)
        step *= 1 - self.beta2
        second *= self.beta2
        second += step
        rate = lr * np.sqrt(1 - self.beta2**self.steps) / (1 - self.beta1**self.steps)
        np.sqrt(second, out=step)
        step += self.eps
        np.divide(first, step, out=step)
        step *= rate
        self._params[part] -= step

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
    params: np.ndarray,
    grads: np.ndarray,
    parts: Sequence[slice],
    *,
    momentum: float,
    beta1: float,
    beta2: float,
    epsilon: float,
) -> Optimizer:
    """Build the optimizer a training spec names, bound to flat parameters and gradients."""
    if name == "sgd":
        return SGD(params, grads, parts)
    if name in ("momentum", "nesterov"):
        return Momentum(params, grads, parts, momentum, nesterov=name == "nesterov")
    if name == "adam":
        return Adam(params, grads, parts, beta1, beta2, epsilon)
    raise ValueError(f"unknown optimizer {name!r}")
