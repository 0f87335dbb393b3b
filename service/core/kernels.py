"""Compiled training kernels (numba): whole epochs of an MLP in one call, on the NumPy
engine's flat `[W | b]` parameter layout and optimizer state.

Each function mirrors one piece of network.py, activations.py, losses.py or
optimizers.py, value by value in the same formulas, so the two engines agree to rounding.
Only sums may come out in another order (they are vectorized), as BLAS's do.
Everything is chosen by small integer codes (see compiled.py), so one compiled
function serves every spec and the on-disk cache holds a single entry. The kernel runs
without the GIL, so the worker's heartbeat thread goes on beating while it trains.

Import this module only through `compiled.load_kernels`: numba may be missing.
"""

import math

import numpy as np
from numba import njit
from numba.np.random.random_methods import random_interval

# Reassociation lets LLVM vectorize the sums (dot products above all); the no-NaN and
# no-infinity flags stay off, since divergence is detected by NaN and infinity.
FAST_MATH = {"reassoc", "contract", "nsz"}

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


# The loops index with unsigned integers: numba checks every signed index for wraparound
# (a negative index counts from the end), which keeps LLVM from vectorizing. The helpers
# take and return numbers only, never arrays: passing an array costs reference counting
# (atomic operations), which in these loops cost more than the arithmetic.


@njit(cache=True, inline="always")
def _activate(code: int, a: float) -> float:
    """f(a) for the elementwise activations (softmax is done per row in the kernel)."""
    if code == RELU:
        # np.maximum(a, 0): NaN stays NaN.
        return a if (a > 0.0 or a != a) else 0.0
    if code == LEAKY_RELU:
        return a * (1.0 if a > 0.0 else LEAKY_SLOPE)
    if code == TANH:
        return math.tanh(a)
    if code == SIGMOID:
        # 0.5 * (1 + tanh(a / 2)), as activations._sigmoid: never overflows.
        return (math.tanh(a * 0.5) + 1.0) * 0.5
    return a


@njit(cache=True, inline="always")
def _derivative(code: int, a: float, h: float) -> float:
    """f'(a), from the aggregate `a` or the activation `h`, as activations.py's backward."""
    if code == RELU:
        return 1.0 if a > 0.0 else 0.0
    if code == LEAKY_RELU:
        return 1.0 if a > 0.0 else LEAKY_SLOPE
    if code == TANH:
        return 1.0 - h * h
    if code == SIGMOID:
        return h * (1.0 - h)
    return 1.0


@njit(cache=True, inline="always")
def _clip(p: float) -> float:
    return min(max(p, EPS), 1.0 - EPS)


@njit(cache=True, inline="always")
def _loss_gradient(code: int, y: float, t: float) -> float:
    """d(loss)/d(output) for one value, as losses.py's gradients."""
    if code == MSE:
        return y - t
    p = _clip(y)
    if code == BINARY_CROSSENTROPY:
        return (p - t) / (p * (1.0 - p))
    return -t / p


@njit(cache=True, inline="always")
def _value_loss(code: int, y: float, t: float) -> float:
    """One output value's term of losses.py's per-sample losses, before the sample's
    sum is halved (mse) or negated (the cross-entropies)."""
    if code == MSE:
        return (y - t) * (y - t)
    p = _clip(y)
    if code == BINARY_CROSSENTROPY:
        return t * math.log(p) + (1.0 - t) * math.log1p(-p)
    return t * math.log(p)


@njit(cache=True, nogil=True, fastmath=FAST_MATH)
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
    very same generator, so the orders and the generator's state match it (tested).
    """
    n, n_in = x.shape
    k = t.shape[1]
    n_layers = len(sizes) - 1
    # Where each layer's units start in a sample's part of the buffers (the inputs first,
    # so every layer reads its input from `act`) and where its block starts in params.
    unit_start = np.zeros(n_layers + 2, np.int64)
    param_start = np.zeros(n_layers + 1, np.int64)
    for layer in range(n_layers + 1):
        unit_start[layer + 1] = unit_start[layer] + sizes[layer]
    for layer in range(n_layers):
        param_start[layer + 1] = param_start[layer] + sizes[layer + 1] * (sizes[layer] + 1)
    units = unit_start[n_layers + 1]
    last = n_layers - 1
    out_start = unit_start[n_layers]
    # Per sample of a batch: aggregates, activations (the inputs first) and deltas.
    agg = np.zeros(batch * units)
    act = np.zeros(batch * units)
    dlt = np.zeros(batch * units)
    order = np.arange(n)
    n_batches = (n + batch - 1) // batch
    for epoch in range(len(rates)):
        lr = rates[epoch]
        if shuffle:
            # rng.permutation(n), as NumPy's Generator draws it (Fisher-Yates from the end,
            # one bounded draw per position), without numba's slower general shuffle.
            for i in range(n):
                order[i] = i
            for i in range(n - 1, 0, -1):
                j = np.intp(random_interval(rng.bit_generator, i))
                order[i], order[j] = order[j], order[i]
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
                    act[s * units + i] = x[row, i]
                for layer in range(n_layers):
                    width, n_out = sizes[layer], sizes[layer + 1]
                    below = np.uint64(s * units + unit_start[layer])
                    base = s * units + unit_start[layer + 1]
                    code = output if layer == last else hidden
                    for j in range(n_out):
                        w = np.uint64(param_start[layer] + j * (width + 1))
                        total = 0.0
                        for i in range(np.uint64(width)):
                            total += params[w + i] * act[below + i]
                        a = total + params[w + np.uint64(width)]
                        agg[base + j] = a
                        act[base + j] = _activate(code, a)
                    if code == SOFTMAX:
                        top = agg[base]
                        for j in range(1, n_out):
                            # a.max(): NaN propagates.
                            if agg[base + j] > top or agg[base + j] != agg[base + j]:
                                top = agg[base + j]
                        total = 0.0
                        for j in range(n_out):
                            act[base + j] = math.exp(agg[base + j] - top)
                            total += act[base + j]
                        for j in range(n_out):
                            act[base + j] = act[base + j] / total
                # The epoch's metrics, from the outputs before this batch's update.
                y = s * units + out_start
                sample_loss = 0.0
                best_y, best_t = 0, 0
                for j in range(k):
                    target = t[row, j]
                    sample_loss += _value_loss(loss, act[y + j], target)
                    diff = act[y + j] - target
                    epoch_squared += diff * diff
                    abs_columns[epoch, j] += abs(diff)
                    squared_columns[epoch, j] += diff * diff
                    if accuracy == THRESHOLD and (act[y + j] >= 0.5) == (target >= 0.5):
                        epoch_correct += 1.0
                    if act[y + j] > act[y + best_y]:
                        best_y = j
                    if target > t[row, best_t]:
                        best_t = j
                batch_sum += 0.5 * sample_loss if loss == MSE else -sample_loss
                if accuracy == ARGMAX and best_y == best_t:
                    epoch_correct += 1.0
                # The output error d(loss)/d(aggregate).
                if canonical:
                    for j in range(k):
                        dlt[y + j] = act[y + j] - t[row, j]
                else:
                    for j in range(k):
                        dlt[y + j] = _loss_gradient(loss, act[y + j], t[row, j])
                    if output == SOFTMAX:
                        # Jacobian-vector product of softmax: s * (g - sum(g * s)).
                        total = 0.0
                        for j in range(k):
                            total += dlt[y + j] * act[y + j]
                        for j in range(k):
                            dlt[y + j] = (dlt[y + j] - total) * act[y + j]
                    else:
                        for j in range(k):
                            dlt[y + j] *= _derivative(output, agg[y + j], act[y + j])
                if size != 1:
                    scale = 1.0 / size
                    for j in range(k):
                        dlt[y + j] *= scale
            batch_losses += batch_sum / size
            steps[0] += 1
            # Backward, layer by layer over the whole batch. Plain SGD on one sample steps
            # each weight as its gradient is computed (the same arithmetic, one pass).
            fused = size == 1 and optimizer == SGD
            for layer in range(last, -1, -1):
                n_out = sizes[layer + 1]
                width = np.uint64(sizes[layer])
                stride = sizes[layer] + 1
                p0 = param_start[layer]
                # The standard rule propagates the error below through this layer's weights
                # before any of them is stepped; the dirty rule after, through the new ones.
                for phase in range(2):
                    if (phase == 0) != dirty:
                        if layer:
                            for s in range(size):
                                d = s * units + unit_start[layer + 1]
                                lower = np.uint64(s * units + unit_start[layer])
                                for i in range(width):
                                    dlt[lower + i] = 0.0
                                for j in range(n_out):
                                    g = np.uint64(p0 + j * stride)
                                    dj = dlt[d + j]
                                    for i in range(width):
                                        dlt[lower + i] += dj * params[g + i]
                                for i in range(width):
                                    h = act[lower + i]
                                    dlt[lower + i] *= _derivative(hidden, agg[lower + i], h)
                        continue
                    below = np.uint64(unit_start[layer])
                    d = unit_start[layer + 1]
                    if fused:
                        # p -= (g + l2 * w) * lr with g = delta * input, as the NumPy
                        # engine's gradient, penalty and step compute it.
                        for j in range(n_out):
                            g = np.uint64(p0 + j * stride)
                            dj = dlt[d + j]
                            if l2:
                                for i in range(width):
                                    grad = dj * act[below + i] + l2 * params[g + i]
                                    params[g + i] -= grad * lr
                            else:
                                for i in range(width):
                                    params[g + i] -= (dj * act[below + i]) * lr
                            params[g + width] -= dj * lr
                        continue
                    for p in range(np.uint64(p0), np.uint64(param_start[layer + 1])):
                        grads[p] = 0.0
                    for s in range(size):
                        d = s * units + unit_start[layer + 1]
                        below = np.uint64(s * units + unit_start[layer])
                        for j in range(n_out):
                            g = np.uint64(p0 + j * stride)
                            dj = dlt[d + j]
                            for i in range(width):
                                grads[g + i] += dj * act[below + i]
                            grads[g + width] += dj
                    if l2:
                        for j in range(n_out):
                            g = np.uint64(p0 + j * stride)
                            for i in range(width):
                                grads[g + i] += l2 * params[g + i]
                    # The dirty rule steps each layer now; the standard rule steps every
                    # layer after the last gradient (layer 0's).
                    if not (dirty or layer == 0):
                        continue
                    start = np.uint64(p0 if dirty else 0)
                    stop = np.uint64(param_start[layer + 1] if dirty else len(params))
                    # optimizers.py's `apply`, formula by formula.
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
                        # Float powers: the NumPy engine's `beta ** steps` is C's pow.
                        count = float(steps[0])
                        rate = lr * math.sqrt(1.0 - beta2**count) / (1.0 - beta1**count)
                        for p in range(start, stop):
                            g_p = grads[p]
                            m = first[p] * beta1
                            m += g_p * (1.0 - beta1)
                            first[p] = m
                            sq = second[p] * beta2
                            sq += (g_p * g_p) * (1.0 - beta2)
                            second[p] = sq
                            params[p] -= (m / (math.sqrt(sq) + eps)) * rate
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
