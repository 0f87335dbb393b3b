"""The compiled engine: many epochs of small-batch training in one call to compiled code
(kernels.py), for the small networks and batches where the NumPy engine's time is
call overhead rather than arithmetic. The NumPy engine stays the reference; this one
trains the same parameters, optimizer state and generator, so either writes checkpoints
of the same shape.

numba is loaded on first use, not on import, so the API process never pays for it, and
where it cannot load `auto` falls back to the NumPy engine (one log line says why).
"""

import logging
import math
from importlib import import_module
from types import ModuleType
from typing import NamedTuple

import numpy as np

from .losses import CANONICAL_PAIRS, LOSSES
from .optimizers import OPTIMIZERS, Adam, Momentum, Optimizer
from .spec import RunSpec

log = logging.getLogger(__name__)

# The codes kernels.py branches on, in its order.
ACTIVATION_CODES = {
    name: code
    for code, name in enumerate(("identity", "relu", "leaky_relu", "tanh", "sigmoid", "softmax"))
}
LOSS_CODES = {name: code for code, name in enumerate(LOSSES)}
OPTIMIZER_CODES = {name: code for code, name in enumerate(OPTIMIZERS)}
NO_ACCURACY, ARGMAX, THRESHOLD = 0, 1, 2

# `auto` trains with the compiled engine at batch 1, and while batch size times parameters
# (one step's multiply-adds, per pass) stays at or below this; above it BLAS's speed wins
# over the NumPy engine's per-call overhead (the crossover: bench/README.md).
AUTO_MAX_BATCH_PARAMETERS = 65_536

_kernels: ModuleType | None = None
_unavailable: str | None = None


def load_kernels() -> ModuleType | None:
    """The compiled kernels, or None where numba cannot load (logged once)."""
    global _kernels, _unavailable
    if _kernels is None and _unavailable is None:
        try:
            _kernels = import_module(".kernels", __package__)
        except Exception as error:  # any failure to load numba or llvmlite means no engine
            _unavailable = f"{type(error).__name__}: {error}"
            log.warning("compiled engine unavailable, training with numpy: %s", _unavailable)
    return _kernels


def unavailable_reason() -> str | None:
    """Why the compiled engine cannot load here (None: it can), trying once."""
    load_kernels()
    return _unavailable


def auto_engine(spec: RunSpec, n_train: int) -> str:
    """The engine `auto` picks for `spec` on `n_train` training rows."""
    training = spec.training
    batch = min(training.batch_size or n_train, n_train)
    small = batch == 1 or batch * spec.network.n_parameters <= AUTO_MAX_BATCH_PARAMETERS
    if training.dtype == "float64" and small and load_kernels() is not None:
        return "compiled"
    return "numpy"


class Chunk(NamedTuple):
    """What `CompiledEpochs.train` did, per epoch, `(epochs,)` or `(epochs, n_outputs)`:
    the loss, the squared error summed over outputs, the accuracy's count of correct
    values, and per output column the summed absolute and squared errors."""

    epochs: int
    diverged: bool
    losses: np.ndarray
    squared: np.ndarray
    correct: np.ndarray
    abs_columns: np.ndarray
    squared_columns: np.ndarray


class CompiledEpochs:
    """Trains epochs of one run in compiled code, on the trainer's own arrays: the flat
    parameters and gradients, the optimizer's state vectors and the generator."""

    def __init__(
        self,
        spec: RunSpec,
        inputs: np.ndarray,
        targets: np.ndarray,
        params: np.ndarray,
        grads: np.ndarray,
        optimizer: Optimizer,
        rng: np.random.Generator,
        batch: int,
        accuracy: int,
    ) -> None:
        kernels = load_kernels()
        if kernels is None:
            raise RuntimeError(f"the compiled engine cannot load: {_unavailable}")
        self._train = kernels.train_epochs
        network, training = spec.network, spec.training
        self.inputs = np.ascontiguousarray(inputs, dtype=np.float64)
        self.targets = np.ascontiguousarray(targets, dtype=np.float64)
        self.params, self.grads, self.optimizer, self.rng = params, grads, optimizer, rng
        self.sizes = np.array(network.layers, dtype=np.int64)
        self.codes = (
            ACTIVATION_CODES[network.hidden_activation],
            ACTIVATION_CODES[network.output_activation],
            LOSS_CODES[training.loss],
            (network.output_activation, training.loss) in CANONICAL_PAIRS,
        )
        self.training = training
        self.batch = batch
        self.accuracy = accuracy
        n = len(self.inputs)
        self.loss_from_squared = training.loss == "mse" and n % batch == 0
        self.before = np.empty_like(params)
        empty = np.zeros(0)
        self.velocity = optimizer.velocity if isinstance(optimizer, Momentum) else empty
        self.adam = optimizer if isinstance(optimizer, Adam) else None
        self.first = empty if self.adam is None else self.adam.first
        self.second = empty if self.adam is None else self.adam.second
        self.steps = np.zeros(1, dtype=np.int64)

    def train(self, rates: np.ndarray) -> Chunk:
        """Train one epoch per rate in `rates`, stopping after an epoch that diverged
        (`before` then holds the parameters from that epoch's start)."""
        count, k = len(rates), self.targets.shape[1]
        losses, squared, correct = np.empty(count), np.empty(count), np.empty(count)
        abs_columns, squared_columns = np.empty((count, k)), np.empty((count, k))
        t = self.training
        if self.adam is not None:
            self.steps[0] = self.adam.steps
        trained = self._train(
            self.inputs,
            self.targets,
            self.params,
            self.grads,
            self.sizes,
            *self.codes,
            t.l2,
            OPTIMIZER_CODES[t.optimizer],
            t.momentum,
            t.beta1,
            t.beta2,
            t.epsilon,
            self.velocity,
            self.first,
            self.second,
            self.steps,
            t.update_rule == "dirty",
            self.batch,
            t.shuffle,
            self.rng,
            rates,
            self.accuracy,
            self.loss_from_squared,
            self.before,
            losses,
            squared,
            correct,
            abs_columns,
            squared_columns,
        )
        if self.adam is not None:
            self.adam.steps = int(self.steps[0])
        diverged = trained < count or not (
            math.isfinite(losses[trained - 1]) and np.isfinite(self.params).all()
        )
        return Chunk(
            trained,
            diverged,
            losses[:trained],
            squared[:trained],
            correct[:trained],
            abs_columns[:trained],
            squared_columns[:trained],
        )


def warm_up() -> bool:
    """Load (or compile, once per machine) the kernels with a one-epoch run of a tiny net,
    so a worker's first job does not wait for it. False where the engine cannot load."""
    kernels = load_kernels()
    if kernels is None:
        return False
    from .training import Trainer  # training imports this module

    spec = RunSpec.from_dict(
        {
            "network": {"layers": [2, 2, 1]},
            "training": {"epochs": 1, "engine": "compiled"},
        }
    )
    Trainer(spec, [[0.0, 1.0], [1.0, 0.0]], [[1.0], [0.0]]).train_epochs(1)
    return True
