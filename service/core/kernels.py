"""Compiled training kernels (numba): whole epochs of an MLP in one call, on the NumPy
engine's flat `[W | b]` parameter layout and optimizer state.

Each function mirrors one piece of network.py, activations.py, losses.py or
optimizers.py, value by value in the same formulas, so the two engines agree to rounding.
Only dot products may be summed in another order (they are vectorized), as BLAS does.
Everything is chosen by small integer codes (see compiled.py), so one compiled
function serves every spec and the on-disk cache holds a single entry.

Import this module only through `compiled.load_kernels`: numba may be missing.
"""

import math

import numpy as np
from numba import njit

# Reassociation lets LLVM vectorize the dot products; no-NaN and no-infinity flags stay
# off, since divergence is detected by NaN and infinity.
DOT_MATH = {"reassoc", "contract", "nsz"}

# Activation codes.
IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID, SOFTMAX = 0, 1, 2, 3, 4, 5
# Loss codes.
MSE, BINARY_CROSSENTROPY, CATEGORICAL_CROSSENTROPY = 0, 1, 2
# Optimizer codes.
SGD, MOMENTUM, NESTEROV, ADAM = 0, 1, 2, 3
# Accuracy codes: none, argmax per row, threshold 0.5 per value.
NO_ACCURACY, ARGMAX, THRESHOLD = 0, 1, 2

LEAKY_SLOPE = 0.01
EPS = float(np.finfo(np.float64).eps)


@njit(cache=True, fastmath=DOT_MATH)
def _dot(w: np.ndarray, w_start: int, h: np.ndarray, h_start: int, n: int) -> float:
    total = 0.0
    for i in range(n):
        total += w[w_start + i] * h[h_start + i]
    return total


@njit(cache=True)
def _activate(code: int, a: np.ndarray, h: np.ndarray, start: int, n: int) -> None:
    """h[start:start+n] = f(a[start:start+n]) (softmax: over that whole row part)."""
    if code == IDENTITY:
        for j in range(start, start + n):
            h[j] = a[j]
    elif code == RELU:
        for j in range(start, start + n):
            v = a[j]
            # np.maximum(a, 0): NaN stays NaN.
            h[j] = v if (v > 0.0 or v != v) else 0.0
    elif code == LEAKY_RELU:
        for j in range(start, start + n):
            v = a[j]
            h[j] = v * (1.0 if v > 0.0 else LEAKY_SLOPE)
    elif code == TANH:
        for j in range(start, start + n):
            h[j] = math.tanh(a[j])
    elif code == SIGMOID:
        # 0.5 * (1 + tanh(a / 2)), as activations._sigmoid: never overflows.
        for j in range(start, start + n):
            h[j] = (math.tanh(a[j] * 0.5) + 1.0) * 0.5
    else:
        top = a[start]
        for j in range(start + 1, start + n):
            # a.max(): NaN propagates.
            if a[j] > top or a[j] != a[j]:
                top = a[j]
        total = 0.0
        for j in range(start, start + n):
            h[j] = math.exp(a[j] - top)
            total += h[j]
        for j in range(start, start + n):
            h[j] = h[j] / total


@njit(cache=True)
def _activation_backward(
    code: int, a: np.ndarray, h: np.ndarray, delta: np.ndarray, start: int, n: int
) -> None:
    """delta[start:start+n] *= f'(a) (softmax: its Jacobian-vector product)."""
    if code == RELU:
        for j in range(start, start + n):
            delta[j] *= 1.0 if a[j] > 0.0 else 0.0
    elif code == LEAKY_RELU:
        for j in range(start, start + n):
            delta[j] *= 1.0 if a[j] > 0.0 else LEAKY_SLOPE
    elif code == TANH:
        for j in range(start, start + n):
            delta[j] *= 1.0 - h[j] * h[j]
    elif code == SIGMOID:
        for j in range(start, start + n):
            delta[j] *= h[j] * (1.0 - h[j])
    elif code == SOFTMAX:
        total = 0.0
        for j in range(start, start + n):
            total += delta[j] * h[j]
        for j in range(start, start + n):
            delta[j] = (delta[j] - total) * h[j]


@njit(cache=True)
def _clip(p: float) -> float:
    return min(max(p, EPS), 1.0 - EPS)


@njit(cache=True)
def _loss_gradient(code: int, y: float, t: float) -> float:
    """d(loss)/d(output) for one value, as losses.py's gradients."""
    if code == MSE:
        return y - t
    p = _clip(y)
    if code == BINARY_CROSSENTROPY:
        return (p - t) / (p * (1.0 - p))
    return -t / p


@njit(cache=True)
def _sample_loss(
    code: int, y: np.ndarray, y_start: int, t: np.ndarray, t_row: int, k: int
) -> float:
    """One sample's loss, as losses.py's per-sample losses."""
    total = 0.0
    for j in range(k):
        target = t[t_row, j]
        if code == MSE:
            diff = y[y_start + j] - target
            total += diff * diff
        elif code == BINARY_CROSSENTROPY:
            p = _clip(y[y_start + j])
            total += target * math.log(p) + (1.0 - target) * math.log1p(-p)
        else:
            total += target * math.log(_clip(y[y_start + j]))
    return 0.5 * total if code == MSE else -total


@njit(cache=True)
def _apply(
    optimizer: int,
    params: np.ndarray,
    grads: np.ndarray,
    start: int,
    stop: int,
    lr: float,
    momentum: float,
    velocity: np.ndarray,
    beta1: float,
    beta2: float,
    eps: float,
    first: np.ndarray,
    second: np.ndarray,
    steps: int,
) -> None:
    """One optimizer step on params[start:stop], as optimizers.py's `apply`."""
    if optimizer == SGD:
        for p in range(start, stop):
            params[p] -= grads[p] * lr
    elif optimizer in (MOMENTUM, NESTEROV):
        for p in range(start, stop):
            step = grads[p] * lr
            v = velocity[p] * momentum
            v -= step
            velocity[p] = v
            if optimizer == NESTEROV:
                params[p] -= step
                params[p] += v * momentum
            else:
                params[p] += v
    else:
        # Float powers: the NumPy engine's `beta ** steps` is C's pow on doubles.
        rate = lr * math.sqrt(1.0 - beta2 ** float(steps)) / (1.0 - beta1 ** float(steps))
        for p in range(start, stop):
            g = grads[p]
            m = first[p] * beta1
            m += g * (1.0 - beta1)
            first[p] = m
            s = second[p] * beta2
            s += (g * g) * (1.0 - beta2)
            second[p] = s
            params[p] -= (m / (math.sqrt(s) + eps)) * rate


@njit(cache=True, nogil=True)
def train_epochs(
    x: np.ndarray,
    t: np.ndarray,
    params: np.ndarray,
    grads: np.ndarray,
    sizes: np.ndarray,
    hidden: int,
    output: int,
    loss: int,
    canonical: bool,
    l2: float,
    optimizer: int,
    momentum: float,
    beta1: float,
    beta2: float,
    eps: float,
    velocity: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    steps: np.ndarray,
    dirty: bool,
    batch: int,
    shuffle: bool,
    rng: np.random.Generator,
    rates: np.ndarray,
    accuracy: int,
    loss_from_squared: bool,
    before: np.ndarray,
    losses: np.ndarray,
    squared: np.ndarray,
    correct: np.ndarray,
    abs_columns: np.ndarray,
    squared_columns: np.ndarray,
) -> int:
    """Train `len(rates)` epochs, epoch `e` at learning rate `rates[e]`, and write each
    epoch's loss (the mean of its batch losses), squared error, correct count (see
    `accuracy`) and per-column absolute and squared errors. Returns the epochs trained:
    fewer than `len(rates)` when one diverged (a non-finite loss or parameter), which is
    the last one counted; `before` then holds the parameters from its start.

    Shuffling draws `rng.permutation(n)` each epoch, as the NumPy engine does, from the
    very same generator, so the orders and the generator's state match it.
    """
    n, n_in = x.shape
    k = t.shape[1]
    n_layers = len(sizes) - 1
    # Offsets of each layer's units in the per-sample buffers and of its block in params.
    unit_start = np.zeros(n_layers + 1, np.int64)
    param_start = np.zeros(n_layers + 1, np.int64)
    for layer in range(n_layers):
        unit_start[layer + 1] = unit_start[layer] + sizes[layer + 1]
        param_start[layer + 1] = param_start[layer] + sizes[layer + 1] * (sizes[layer] + 1)
    units = unit_start[n_layers]
    last = n_layers - 1
    out_start = unit_start[last]
    # Per sample of a batch: aggregates, activations, deltas; and the input row.
    agg = np.zeros(batch * units)
    act = np.zeros(batch * units)
    dlt = np.zeros(batch * units)
    inputs = np.zeros(batch * n_in)
    order = np.arange(n)
    n_batches = (n + batch - 1) // batch
    for epoch in range(len(rates)):
        lr = rates[epoch]
        if shuffle:
            order = rng.permutation(n)
        before[:] = params
        batch_losses = 0.0
        epoch_squared = 0.0
        epoch_correct = 0.0
        for j in range(k):
            abs_columns[epoch, j] = 0.0
            squared_columns[epoch, j] = 0.0
        for batch_start in range(0, n, batch):
            size = min(batch, n - batch_start)
            batch_sum = 0.0
            # Forward, sample by sample.
            for s in range(size):
                row = order[batch_start + s]
                for i in range(n_in):
                    inputs[s * n_in + i] = x[row, i]
                below, below_start, width = inputs, s * n_in, n_in
                for layer in range(n_layers):
                    n_out = sizes[layer + 1]
                    base = s * units + unit_start[layer]
                    stride = width + 1
                    for j in range(n_out):
                        w = param_start[layer] + j * stride
                        agg[base + j] = (
                            _dot(params, w, below, below_start, width) + params[w + width]
                        )
                    _activate(output if layer == last else hidden, agg, act, base, n_out)
                    below, below_start, width = act, base, n_out
                # The epoch's metrics, from the outputs before this batch's update.
                y = s * units + out_start
                batch_sum += _sample_loss(loss, act, y, t, row, k)
                best_y, best_t = 0, 0
                for j in range(k):
                    diff = act[y + j] - t[row, j]
                    epoch_squared += diff * diff
                    abs_columns[epoch, j] += abs(diff)
                    squared_columns[epoch, j] += diff * diff
                    if accuracy == THRESHOLD and (act[y + j] >= 0.5) == (t[row, j] >= 0.5):
                        epoch_correct += 1.0
                    if act[y + j] > act[y + best_y]:
                        best_y = j
                    if t[row, j] > t[row, best_t]:
                        best_t = j
                if accuracy == ARGMAX and best_y == best_t:
                    epoch_correct += 1.0
                # The output error d(loss)/d(aggregate).
                for j in range(k):
                    if canonical:
                        dlt[y + j] = act[y + j] - t[row, j]
                    else:
                        dlt[y + j] = _loss_gradient(loss, act[y + j], t[row, j])
                if not canonical:
                    _activation_backward(output, agg, act, dlt, y, k)
                if size != 1:
                    scale = 1.0 / size
                    for j in range(k):
                        dlt[y + j] *= scale
            batch_losses += batch_sum / size
            steps[0] += 1
            # Backward, layer by layer over the whole batch.
            for layer in range(last, -1, -1):
                n_out = sizes[layer + 1]
                width = sizes[layer]
                stride = width + 1
                p0 = param_start[layer]
                for p in range(p0, param_start[layer + 1]):
                    grads[p] = 0.0
                for s in range(size):
                    d = s * units + unit_start[layer]
                    if layer == 0:
                        below, below_start = inputs, s * n_in
                    else:
                        below, below_start = act, s * units + unit_start[layer - 1]
                    for j in range(n_out):
                        g = p0 + j * stride
                        dj = dlt[d + j]
                        for i in range(width):
                            grads[g + i] += dj * below[below_start + i]
                        grads[g + width] += dj
                if l2:
                    for j in range(n_out):
                        g = p0 + j * stride
                        for i in range(width):
                            grads[g + i] += l2 * params[g + i]
                if dirty:
                    _apply(
                        optimizer, params, grads, p0, param_start[layer + 1], lr,
                        momentum, velocity, beta1, beta2, eps, first, second, steps[0],
                    )  # fmt: skip
                if layer:
                    # The error below, through this layer's weights (updated ones, if dirty).
                    for s in range(size):
                        d = s * units + unit_start[layer]
                        lower = s * units + unit_start[layer - 1]
                        for i in range(width):
                            dlt[lower + i] = 0.0
                        for j in range(n_out):
                            g = p0 + j * stride
                            dj = dlt[d + j]
                            for i in range(width):
                                dlt[lower + i] += dj * params[g + i]
                        _activation_backward(hidden, agg, act, dlt, lower, width)
            if not dirty:
                _apply(
                    optimizer, params, grads, 0, len(params), lr,
                    momentum, velocity, beta1, beta2, eps, first, second, steps[0],
                )  # fmt: skip
        if loss_from_squared:
            # Equal batches and mse: the NumPy engine's shortcut, the same mean.
            losses[epoch] = 0.5 * epoch_squared / n
        else:
            losses[epoch] = batch_losses / n_batches
        squared[epoch] = epoch_squared
        correct[epoch] = epoch_correct
        finite = math.isfinite(losses[epoch])
        for p in range(len(params)):
            if not math.isfinite(params[p]):
                finite = False
                break
        if not finite:
            return epoch + 1
    return len(rates)
