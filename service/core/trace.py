"""One backprop step with every intermediate value, for teaching and for checking."""

from typing import Any

import numpy as np

from .errors import SpecError
from .losses import LOSSES
from .network import Backprop, Parameters, Workspace, with_ones
from .optimizers import EVERYTHING, SGD
from .spec import (
    UPDATE_RULES,
    NetworkSpec,
    TrainingSpec,
    _choice,
    _number,
    bounds_of,
    check_loss_fits_output,
)


def trace_step(
    network: NetworkSpec,
    parameters: Parameters,
    inputs: object,
    target: object,
    *,
    loss: str = "mse",
    learning_rate: float = 0.01,
    update_rule: str = "standard",
) -> dict[str, Any]:
    """One plain-SGD step on one sample; returns the forward values, the errors, the
    gradients and the updated parameters, layer by layer (layer 0 is the first hidden)."""
    _choice(loss, LOSSES, "loss")
    check_loss_fits_output(network, loss, "loss")
    _choice(update_rule, UPDATE_RULES, "update_rule")
    # The bounds of a training run's learning rate, which the API's trace body shows too.
    lr = _number(learning_rate, "learning_rate", bounds_of(TrainingSpec, "learning_rate"))
    x = with_ones(_vector(inputs, network.n_inputs, "input"))
    t = _vector(target, network.n_outputs, "target")

    backprop = Backprop(network, loss)
    params = parameters.copy()
    grads = Parameters.zeros(network.layers, params.flat.dtype)
    ws = Workspace(network, 1, params.flat.dtype)
    optimizer = SGD(params.flat, grads.flat, params.layer_parts)

    outputs = backprop.forward(params, x, ws).copy()
    forward = [
        {"aggregate": a[0].tolist(), "activation": h[0].tolist()}
        for a, h in zip(ws.aggregates, ws.activations, strict=True)
    ]
    output_error = np.zeros_like(outputs)
    backprop.output_error(outputs, t, output_error)
    loss_value = float(backprop.per_sample_loss(outputs, t)[0])

    if update_rule == "dirty":
        # The notebook's dirty update: each layer steps before the error goes below it.
        def apply_layer(layer: int) -> None:
            optimizer.apply(layer, lr)

        backprop.backward(params, x, t, ws, grads, apply_layer)
    else:
        backprop.backward(params, x, t, ws, grads)
        optimizer.apply(EVERYTHING, lr)

    return {
        "forward": forward,
        "output": outputs[0].tolist(),
        "loss": loss_value,
        "output_error": output_error[0].tolist(),
        "backward": [
            {
                "delta": delta[0].tolist(),
                "weight_gradient": gw.tolist(),
                "bias_gradient": gb.tolist(),
            }
            for delta, gw, gb in zip(ws.deltas, grads.weights, grads.biases, strict=True)
        ],
        "updated": params.to_layers(),
    }


def _vector(values: object, size: int, field: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecError(field, "must be a list of numbers") from None
    if array.shape != (size,):
        raise SpecError(field, f"must have {size} values, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise SpecError(field, "must be finite (no NaN or infinity)")
    return array[None, :]
