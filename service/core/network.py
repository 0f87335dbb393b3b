"""Parameters, the forward pass and backpropagation.

Weights use the notebook's orientation: `W` has shape `(n_out, n_in)` and a layer's
aggregate is `a = W @ x + b`; on a batch `X` of shape `(n_samples, n_in)` that is
`A = X @ W.T + b`. All weights and biases live in one flat vector so an optimizer step
is a few vectorized calls whatever the depth.

Each layer is stored as one block `[W | b]` of shape `(n_out, n_in + 1)`, and every
layer's input carries a trailing column of ones, so one matmul computes `X @ W.T + b`
and one matmul gives both the weight and the bias gradient: per-sample training is
bound by the number of NumPy calls, not by arithmetic.
"""

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from .activations import HIDDEN, OUTPUT
from .errors import SpecError
from .initializers import layer_initializer
from .losses import CANONICAL_PAIRS, LOSSES
from .spec import NetworkSpec


class Parameters:
    """A flat vector with per-layer views: `blocks[l]` `(n_out, n_in + 1)` holding
    `weights[l]` `(n_out, n_in)` and, in its last column, `biases[l]` `(n_out,)`."""

    def __init__(self, layers: Sequence[int], flat: np.ndarray) -> None:
        self.layers = tuple(layers)
        self.flat = flat
        self.blocks: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        # Each layer is one contiguous part, so the dirty update rule can step one layer
        # at a time.
        self.layer_parts: list[slice] = []
        offset = 0
        for n_in, n_out in pairwise(self.layers):
            part = slice(offset, offset + n_out * (n_in + 1))
            block = flat[part].reshape(n_out, n_in + 1)
            self.blocks.append(block)
            self.weights.append(block[:, :n_in])
            self.biases.append(block[:, n_in])
            self.layer_parts.append(part)
            offset = part.stop
        if offset != flat.size:
            raise ValueError(f"flat vector has {flat.size} values, layers need {offset}")

    @classmethod
    def zeros(cls, layers: Sequence[int], dtype: np.dtype | str = "float64") -> "Parameters":
        size = sum((n_in + 1) * n_out for n_in, n_out in pairwise(layers))
        return cls(layers, np.zeros(size, dtype=dtype))

    @classmethod
    def initialize(
        cls, spec: NetworkSpec, rng: np.random.Generator, dtype: np.dtype | str = "float64"
    ) -> "Parameters":
        """Draw fresh parameters with the spec's initializer, layer by layer, from `rng`."""
        params = cls.zeros(spec.layers, "float64")
        n_hidden = len(params.weights) - 1
        activations = [spec.hidden_activation] * n_hidden + [spec.output_activation]
        for weights, bias, activation in zip(
            params.weights, params.biases, activations, strict=True
        ):
            layer_initializer(spec.init, activation)(weights, bias, rng)
        return params.astype(dtype)

    @classmethod
    def from_layers(
        cls,
        layers: Sequence[int],
        values: Any,
        dtype: np.dtype | str = "float64",
        field: str = "parameters",
    ) -> "Parameters":
        """Build from `{"layers": [{"weights": [[...]], "bias": [...]}, ...]}`, checking shapes."""
        items = values.get("layers") if isinstance(values, dict) else None
        if not isinstance(items, list) or len(items) != len(layers) - 1:
            raise SpecError(f"{field}.layers", f"must list {len(layers) - 1} layers")
        params = cls.zeros(layers, dtype)
        for index, item in enumerate(items):
            where = f"{field}.layers[{index}]"
            if not isinstance(item, dict):
                raise SpecError(where, "must be an object with weights and bias")
            for name, target in (
                ("weights", params.weights[index]),
                ("bias", params.biases[index]),
            ):
                try:
                    array = np.asarray(item.get(name), dtype=np.float64)
                except (TypeError, ValueError):
                    raise SpecError(f"{where}.{name}", "must be numbers") from None
                if array.shape != target.shape:
                    raise SpecError(
                        f"{where}.{name}", f"must have shape {target.shape}, got {array.shape}"
                    )
                if not np.isfinite(array).all():
                    raise SpecError(f"{where}.{name}", "must be finite (no NaN or infinity)")
                target[...] = array
        return params

    def to_layers(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "layers": [
                {"weights": w.tolist(), "bias": b.tolist()}
                for w, b in zip(self.weights, self.biases, strict=True)
            ]
        }

    def copy(self) -> "Parameters":
        return Parameters(self.layers, self.flat.copy())

    def astype(self, dtype: np.dtype | str) -> "Parameters":
        return Parameters(self.layers, self.flat.astype(dtype))


def with_ones(inputs: np.ndarray, dtype: np.dtype | str | None = None) -> np.ndarray:
    """Inputs `(n, k)` with a trailing column of ones, `(n, k + 1)`: the bias's input."""
    augmented = np.ones((inputs.shape[0], inputs.shape[1] + 1), dtype or inputs.dtype)
    augmented[:, :-1] = inputs
    return augmented


class Workspace:
    """Buffers for one batch size, reused on every step so the hot loop allocates nothing.

    For layer `l` (the input layer excluded): `aggregates[l]` `(batch, n_units)`;
    `activations[l]` the same values after the activation, a view into `inputs_of[l+1]`,
    the next layer's input `(batch, n_units + 1)` whose last column is ones; `deltas[l]`
    is d(loss)/d(aggregates[l]).
    """

    def __init__(self, spec: NetworkSpec, batch: int, dtype: np.dtype | str) -> None:
        widths = spec.layers[1:]
        self.aggregates = [np.zeros((batch, n), dtype) for n in widths]
        self.inputs_of = [np.ones((batch, n + 1), dtype) for n in widths[:-1]]
        self.activations = [augmented[:, :-1] for augmented in self.inputs_of]
        self.activations.append(
            self.aggregates[-1]
            if spec.output_activation == "identity"
            else np.zeros((batch, widths[-1]), dtype)
        )
        self.deltas = [np.zeros((batch, n), dtype) for n in widths]
        self.batch = batch


class Backprop:
    """Forward and backward passes for one network spec and loss."""

    def __init__(self, spec: NetworkSpec, loss: str, l2: float = 0.0) -> None:
        self.spec = spec
        self.n_layers = len(spec.layers) - 1
        self.hidden_forward, self.hidden_backward = HIDDEN[spec.hidden_activation]
        self.output_forward, self.output_backward = OUTPUT[spec.output_activation]
        self.per_sample_loss, self.loss_gradient = LOSSES[loss]
        self.canonical = (spec.output_activation, loss) in CANONICAL_PAIRS
        self.l2 = l2

    def forward(self, params: Parameters, inputs: np.ndarray, ws: Workspace) -> np.ndarray:
        """Fill the workspace from `inputs` `(batch, n_in + 1)` (see `with_ones`); return the
        outputs `(batch, n_out)`."""
        h = inputs
        last = self.n_layers - 1
        for layer in range(last):
            a = ws.aggregates[layer]
            np.matmul(h, params.blocks[layer].T, out=a)
            self.hidden_forward(a, ws.activations[layer])
            h = ws.inputs_of[layer]
        np.matmul(h, params.blocks[last].T, out=ws.aggregates[last])
        self.output_forward(ws.aggregates[last], ws.activations[last])
        return ws.activations[last]

    def output_error(self, outputs: np.ndarray, targets: np.ndarray, out: np.ndarray) -> None:
        """d(loss)/d(outputs), per sample, into `out`."""
        self.loss_gradient(outputs, targets, out)

    def backward(
        self,
        params: Parameters,
        inputs: np.ndarray,
        targets: np.ndarray,
        ws: Workspace,
        grads: Parameters,
        apply_layer: Callable[[int], None] | None = None,
    ) -> None:
        """Fill `grads` with d(mean batch loss)/d(params) after `forward` on the same inputs.

        With `apply_layer` (the dirty update rule) each layer is updated as soon as its
        gradient is known, and the error is propagated below it through the updated weights.
        """
        last = self.n_layers - 1
        delta = ws.deltas[last]
        outputs = ws.activations[last]
        if self.canonical:
            # identity+mse, sigmoid+binary cross-entropy, softmax+categorical cross-entropy:
            # d(loss)/d(aggregate) is exactly output - target.
            np.subtract(outputs, targets, out=delta)
        else:
            self.loss_gradient(outputs, targets, delta)
            self.output_backward(ws.aggregates[last], outputs, delta)
        if ws.batch != 1:
            delta *= 1.0 / ws.batch
        for layer in range(last, -1, -1):
            below = inputs if layer == 0 else ws.inputs_of[layer - 1]
            np.matmul(delta.T, below, out=grads.blocks[layer])
            if self.l2:
                grads.weights[layer] += self.l2 * params.weights[layer]
            if apply_layer is not None:
                apply_layer(layer)
            if layer:
                below_delta = ws.deltas[layer - 1]
                np.matmul(delta, params.weights[layer], out=below_delta)
                self.hidden_backward(
                    ws.aggregates[layer - 1], ws.activations[layer - 1], below_delta
                )
                delta = below_delta

    def loss(self, params: Parameters, inputs: np.ndarray, targets: np.ndarray) -> float:
        """Mean loss over the samples, plus the L2 penalty `l2 / 2 * sum(W ** 2)`."""
        outputs = predict(self.spec, params, inputs)
        value = float(self.per_sample_loss(outputs, targets).mean())
        if self.l2:
            value += 0.5 * self.l2 * sum(float(np.sum(w * w)) for w in params.weights)
        return value

    def gradients(self, params: Parameters, inputs: np.ndarray, targets: np.ndarray) -> Parameters:
        """d(`loss`)/d(params) for the whole of `inputs` as one batch."""
        ws = Workspace(self.spec, len(inputs), params.flat.dtype)
        grads = Parameters.zeros(params.layers, params.flat.dtype)
        augmented = with_ones(inputs, params.flat.dtype)
        self.forward(params, augmented, ws)
        self.backward(params, augmented, targets, ws, grads)
        return grads


# Inference runs in row chunks so its temporaries stay small and cache-resident: temporaries
# the size of a large request would be fresh memory, page-faulted in on every request.
PREDICT_CHUNK_ROWS = 512


def predict(spec: NetworkSpec, params: Parameters, inputs: np.ndarray) -> np.ndarray:
    """Outputs `(n_samples, n_outputs)` for inputs `(n_samples, n_inputs)`: the forward pass
    alone, without the buffers training keeps for the backward pass."""
    inputs = np.asarray(inputs, dtype=params.flat.dtype)
    outputs = np.empty((len(inputs), spec.n_outputs), params.flat.dtype)
    hidden, output = HIDDEN[spec.hidden_activation][0], OUTPUT[spec.output_activation][0]
    last = len(params.weights) - 1
    for start in range(0, len(inputs), PREDICT_CHUNK_ROWS):
        h = inputs[start : start + PREDICT_CHUNK_ROWS]
        for layer, (weights, bias) in enumerate(zip(params.weights, params.biases, strict=True)):
            a = h @ weights.T
            a += bias
            (output if layer == last else hidden)(a, a)
            h = a
        outputs[start : start + len(h)] = h
    return outputs
