"""The training loop: one record per epoch, checkpoints that resume bit for bit."""

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any, NamedTuple

import numpy as np

from .compiled import ARGMAX, NO_ACCURACY, THRESHOLD, CompiledEpochs, auto_engine
from .compiled import unavailable_reason as compiled_unavailable
from .errors import SpecError
from .labels import ClassName, check_labelled_run, class_indices
from .metrics import confusion_matrix, macro_scores, mae, r2
from .model import Model, check_inputs, check_targets
from .network import Backprop, Parameters, Workspace, predict, with_ones
from .optimizers import EVERYTHING, make_optimizer
from .preprocessing import Preprocessing
from .schedules import SCHEDULES
from .serialization import pack, unpack
from .spec import NetworkSpec, RunSpec, stored_spec


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did. `loss` is the mean of its batch losses (before each update, L2
    penalty excluded); `rmse` is the notebook's root-mean-square error over the same outputs.
    Both are on the scaled problem (the targets as the network sees them). Classifiers
    report macro precision, recall and F1 on the validation part; regression reports MAE
    and R^2 in the targets' raw units, on the training part and on the validation part."""

    epoch: int
    loss: float
    rmse: float
    learning_rate: float
    val_loss: float | None = None
    accuracy: float | None = None
    val_accuracy: float | None = None
    val_precision: float | None = None
    val_recall: float | None = None
    val_f1: float | None = None
    mae: float | None = None
    r2: float | None = None
    val_mae: float | None = None
    val_r2: float | None = None

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy is slow, and this runs once per epoch.
        return dict(self.__dict__)


class History:
    """Consecutive epochs' records. The compiled engine hands them back as columns, one
    array per `EpochRecord` field it fills (`epoch`, `loss`, `rmse`, ...), since building
    a record costs more than training a small epoch; `records()` builds them when asked."""

    def __init__(
        self,
        records: list[EpochRecord] | None = None,
        columns: dict[str, np.ndarray] | None = None,
    ) -> None:
        self._records = records
        self.columns = columns

    def __len__(self) -> int:
        if self._records is not None:
            return len(self._records)
        return 0 if not self.columns else len(self.columns["epoch"])

    def records(self) -> list[EpochRecord]:
        if self._records is None:
            columns = self.columns or {}
            names = list(columns)
            rows = zip(*(column.tolist() for column in columns.values()), strict=True)
            self._records = [EpochRecord(**dict(zip(names, row, strict=True))) for row in rows]
        return self._records


# A chunk of compiled epochs is sized to take about this long, so the caller's checks
# (cancel, lease, time limit) still come several times a second.
CHUNK_SECONDS = 0.02
# ... and grows at most this much from one chunk to the next, while its speed is learnt.
CHUNK_GROWTH = 8
MAX_CHUNK_EPOCHS = 1_000_000


def check_data(
    inputs: object, targets: object, network: NetworkSpec, loss: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs `(n, n_inputs)` and targets `(n, n_outputs)` as float64, checked against `network`."""
    try:
        x = np.asarray(inputs, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecError("inputs", "must be a list of rows of numbers") from None
    if x.ndim == 2 and x.shape[0] and x.shape[1] != network.n_inputs:
        raise SpecError(
            "network.layers[0]",
            f"input width {network.n_inputs} does not match the data's {x.shape[1]} features",
        )
    x = check_inputs(x, network.n_inputs)
    t = check_targets(targets, len(x))
    if t.shape[1] != network.n_outputs:
        raise SpecError(
            f"network.layers[{len(network.layers) - 1}]",
            f"output width {network.n_outputs} does not match the data's {t.shape[1]} targets",
        )
    if loss in ("binary_crossentropy", "categorical_crossentropy") and (t.min() < 0 or t.max() > 1):
        raise SpecError("targets", f"{loss} needs targets between 0 and 1")
    if loss == "categorical_crossentropy":
        # Softmax + categorical cross-entropy trains on output - target, which is the
        # loss's gradient only when each target row is a distribution.
        bad = np.flatnonzero(~np.isclose(t.sum(axis=1), 1.0))
        if bad.size:
            raise SpecError(
                f"targets[{bad[0]}]", "categorical_crossentropy needs rows summing to 1"
            )
    return x, t


class BatchPlan(NamedTuple):
    """One batch of an epoch, planned once: where its rows come from and go to.

    `inputs` `(size, n_inputs + 1)` and `targets` `(size, n_outputs)` are views of the
    epoch's (shuffled) data, or of `gather_into` when large data is gathered per batch;
    `outputs` `(size, n_outputs)` is this batch's view of the epoch's outputs.
    """

    rows: slice
    gather_into: np.ndarray | None
    inputs: np.ndarray
    targets: np.ndarray
    outputs: np.ndarray
    workspace: Workspace


def class_labels(targets: np.ndarray, output_activation: str) -> np.ndarray | None:
    """Class numbers `(n_samples,)` when `targets` `(n_samples, n_outputs)` are labels
    (sigmoid or softmax outputs, every target 0 or 1): one per distinct target row, so
    one-hot rows give their class and multi-label rows their combination. Else None."""
    if output_activation not in ("sigmoid", "softmax"):
        return None
    if not np.all((targets == 0) | (targets == 1)):
        return None
    classes: np.ndarray = np.unique(targets, axis=0, return_inverse=True)[1].reshape(-1)
    return classes


def stratified_take(order: np.ndarray, classes: np.ndarray, n_take: int) -> np.ndarray:
    """`n_take` row indices, each class's count within one sample of its share, taken from
    each class in the order `order` `(n_samples,)` lists the rows (a seeded permutation).

    Every class gets the floor of its share; the samples left go one each to the classes
    with the largest remainders, ties to the class met first in `order`.
    """
    n = len(order)
    in_order = classes[order]
    counts = np.bincount(in_order)
    takes, remainders = np.divmod(counts * n_take, n)
    first_met = np.full(len(counts), n)
    np.minimum.at(first_met, in_order, np.arange(n))
    by_remainder = np.lexsort((first_met, -remainders))
    takes[by_remainder[: n_take - takes.sum()]] += 1
    # Each row's rank within its class, counted along `order`.
    grouped = np.argsort(in_order, kind="stable")
    class_starts = np.cumsum(counts) - counts
    rank = np.empty(n, dtype=np.int64)
    rank[grouped] = np.arange(n) - np.repeat(class_starts, counts)
    taken: np.ndarray = order[rank < takes[in_order]]
    return taken


# Shuffled data above this size is gathered per batch rather than shuffled whole.
GATHER_ABOVE_BYTES = 8 * 1024 * 1024


class Trainer:
    """Trains one network on one data set; `run()` yields an `EpochRecord` per epoch.

    All randomness (initialization, then shuffling) comes from one generator seeded by
    `training.seed`; the validation split has a stream of its own so that it can be
    recomputed on resume. Where the targets are class labels the split is stratified:
    each class keeps its share of the validation rows, within one sample. The spec's
    preprocessing is fitted on the training part only, after the split, and applied to
    both parts. A checkpoint holds the parameters, optimizer state, generator state, epoch,
    early-stopping state and the preprocessing statistics.

    `classes` names the classes when `targets` encode labels (`Labels.targets_for`): the
    model then answers with those names.

    `start_from` warm-starts the run from a trained model: its parameters replace the
    initialization and its preprocessing statistics are used as they are, not refitted, so
    the network sees its inputs scaled as it learned them. Its layers and classes must be
    the run's. A checkpoint of a warm-started run resumes only with the same `start_from`.

    `weights_epoch` is the epoch whose weights the parameters hold: the last epoch trained,
    the best one once early stopping restored it, or the one kept after a divergence
    (0: the initial weights).
    """

    def __init__(
        self,
        spec: RunSpec,
        inputs: object,
        targets: object,
        checkpoint: bytes | None = None,
        initial_parameters: Parameters | None = None,
        classes: Sequence[ClassName] | None = None,
        feature_names: Sequence[str] | None = None,
        start_from: Model | None = None,
    ) -> None:
        self.spec = spec
        # Only carried into the model, which names its inputs with them.
        self.feature_names = None if feature_names is None else tuple(feature_names)
        self._spec_dict = spec.to_dict()
        network, training = spec.network, spec.training
        self.dtype = np.dtype(training.dtype)
        self.classes = None if classes is None else tuple(classes)
        self.start_from = start_from
        if start_from is not None:
            check_start_model(start_from, network, self.classes)
            if initial_parameters is not None:
                raise SpecError("parameters", "give initial parameters or a model to start from")
            initial_parameters = start_from.parameters
        x, t = check_data(inputs, targets, network, training.loss)
        if self.classes is not None:
            counts = np.bincount(class_indices(t), minlength=len(self.classes))
            check_labelled_run(spec, self.classes, counts.tolist())
        self.train_x, self.train_t, self.val_x, self.val_t = self._split(x, t)
        self._prepare_metrics()
        self.backprop = Backprop(network, training.loss, training.l2)
        self.rng = np.random.default_rng(training.seed)
        if initial_parameters is not None:
            if initial_parameters.layers != network.layers:
                raise SpecError("parameters", "do not match network.layers")
            self.params = initial_parameters.astype(self.dtype)
        else:
            self.params = Parameters.initialize(network, self.rng, self.dtype)
        self.grads = Parameters.zeros(network.layers, self.dtype)
        self.optimizer = make_optimizer(
            training.optimizer,
            self.params.flat,
            self.grads.flat,
            self.params.layer_parts,
            momentum=training.momentum,
            beta1=training.beta1,
            beta2=training.beta2,
            epsilon=training.epsilon,
        )
        self.epoch = 0
        self.weights_epoch = 0
        self.stop_reason: str | None = None
        self.diverged = False
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_flat: np.ndarray | None = None
        self.epochs_without_improvement = 0
        self.engine = self._engine()
        if checkpoint is not None:
            self._restore(checkpoint)

        n = len(self.train_x)
        self.batch = min(training.batch_size or n, n)
        # Each row holds inputs, a 1 for the bias, then targets, so shuffling is one take
        # into a buffer whose per-batch views are made once, not on every step. Large data
        # is instead gathered batch by batch into a small buffer that is still in cache
        # when the matmuls read it; shuffling it whole would write it all to memory first.
        self._data = np.hstack([with_ones(self.train_x), self.train_t])
        self._gather = training.shuffle and self._data.nbytes > GATHER_ABOVE_BYTES
        self._order = np.arange(n)
        shuffle_whole = training.shuffle and not self._gather
        self._epoch_data = np.zeros_like(self._data) if shuffle_whole else self._data
        self._outputs = np.zeros(self.train_t.shape, self.dtype)
        self._batches = self._plan_batches()
        self._batch_starts = np.arange(0, n, self.batch)
        self._batch_sizes = np.minimum(self.batch, n - self._batch_starts)
        self._compiled: CompiledEpochs | None = None
        if self.engine == "compiled":
            self._compiled = CompiledEpochs(
                spec,
                self.train_x,
                self.train_t,
                self.params.flat,
                self.grads.flat,
                self.optimizer,
                self.rng,
                self.batch,
                self._accuracy_kind(),
            )
        # Validation scores and early stopping are decided in Python after every epoch.
        self._epoch_by_epoch = (
            self.val_x is not None or training.early_stopping_patience is not None
        )
        self._chunk_epochs = 1
        self._epoch_seconds = 0.0

    def _engine(self) -> str:
        """The engine this run trains with: the spec's, or `auto`'s pick."""
        requested = self.spec.training.engine
        if requested == "auto":
            return auto_engine(self.spec, len(self.train_x))
        if requested == "compiled" and (reason := compiled_unavailable()) is not None:
            raise SpecError(
                "training.engine", f"compiled cannot load here ({reason}); use auto or numpy"
            )
        return requested

    def _plan_batches(self) -> list[BatchPlan]:
        """Every batch of an epoch, with its views and buffers made once for all epochs."""
        network = self.spec.network
        width = network.n_inputs + 1
        n = len(self._data)
        full = Workspace(network, self.batch, self.dtype)
        plans = []
        for start in range(0, n, self.batch):
            rows = slice(start, start + self.batch)
            source = self._epoch_data[rows]
            gather_into = None
            if self._gather:
                source = gather_into = np.zeros((len(source), self._data.shape[1]), self.dtype)
            size = len(source)
            plans.append(
                BatchPlan(
                    rows=rows,
                    gather_into=gather_into,
                    inputs=source[:, :width],
                    targets=source[:, width:],
                    outputs=self._outputs[rows],
                    # Only the last batch can be short; it gets buffers of its own size.
                    workspace=full if size == self.batch else Workspace(network, size, self.dtype),
                )
            )
        return plans

    def _split(
        self, x: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Training and validation parts, scaled by statistics of the training part; the
        raw targets stay in `raw_train_t` and `raw_val_t` for metrics in raw units."""
        train_x, train_t, val_x, val_t = self._split_rows(x, t)
        if self.start_from is not None:
            prep = self.start_from.preprocessing or Preprocessing()
        else:
            prep = Preprocessing.fit(self.spec.preprocessing, train_x, train_t)
        self.preprocessing = prep
        self.raw_train_t, self.raw_val_t = train_t, val_t

        def inputs(rows: np.ndarray) -> np.ndarray:
            return prep.transform_inputs(rows).astype(self.dtype, copy=False)

        def targets(rows: np.ndarray) -> np.ndarray:
            return prep.transform_targets(rows).astype(self.dtype, copy=False)

        if val_x is None or val_t is None:
            return inputs(train_x), targets(train_t), None, None
        return inputs(train_x), targets(train_t), inputs(val_x), targets(val_t)

    def _split_rows(
        self, x: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        fraction = self.spec.training.validation_split
        if not fraction:
            return x, t, None, None
        n_val = round(fraction * len(x))
        if n_val < 1 or n_val >= len(x):
            raise SpecError(
                "training.validation_split",
                f"{fraction:g} of {len(x)} samples leaves no training or no validation samples",
            )
        order = np.random.default_rng([self.spec.training.seed, 1]).permutation(len(x))
        classes: np.ndarray | None
        if self.classes is not None:
            classes = class_indices(t)
        else:
            classes = class_labels(t, self.spec.network.output_activation)
        val = order[:n_val] if classes is None else stratified_take(order, classes, n_val)
        in_val = np.zeros(len(x), dtype=bool)
        in_val[val] = True
        return x[~in_val], t[~in_val], x[in_val], t[in_val]

    def _prepare_metrics(self) -> None:
        """Constants for the per-epoch metrics, computed once: an epoch of per-sample
        training is tens of microseconds, so each epoch may only afford a few NumPy calls."""
        activation = self.spec.network.output_activation
        self._classifier = self.classes is not None or (
            activation == "softmax" or (activation == "sigmoid" and self.train_t.shape[1] == 1)
        )
        self._regression = self.classes is None and activation == "identity"
        self._n_classes = (
            len(self.classes)
            if self.classes is not None
            else (2 if self.train_t.shape[1] == 1 else self.train_t.shape[1])
        )
        self._one_column: tuple[float, float, float] | None = None
        self._val_classes = (
            class_indices(self.val_t) if self._classifier and self.val_t is not None else None
        )
        if self._regression:
            k = self.train_t.shape[1]
            targets = self.preprocessing.targets
            # Raw error = scaled error * scale, column by column.
            self._raw_scale = np.ones(k) if targets is None else targets.scale
            raw = self.raw_train_t
            self._train_total = ((raw - raw.mean(axis=0)) ** 2).sum(axis=0)
            self._train_constant = ~(self._train_total > 0)
            if k == 1:
                scale = float(self._raw_scale[0])
                total = float(self._train_total[0]) if self._train_total[0] > 0 else 0.0
                self._one_column = (scale / len(raw), scale * scale, total)

    @property
    def done(self) -> bool:
        return self.stop_reason is not None or self.epoch >= self.spec.training.epochs

    def run(self) -> Iterator[EpochRecord]:
        """Train until the last epoch, early stopping or divergence, yielding each epoch.
        Records come a chunk at a time (`train_epochs`): while they are read, the trainer's
        weights are those of the chunk's last epoch. To act at given epochs (snapshots),
        call `train_epochs` up to each of them, as the worker does."""
        while not self.done:
            yield from self.train_epochs(self.spec.training.epochs).records()

    def train_epochs(self, max_epochs: int, seconds: float = CHUNK_SECONDS) -> History:
        """Train at least one epoch (unless the run is done) and at most `max_epochs`, for
        about `seconds`; the history of those that did not diverge. The NumPy engine stops
        after the epoch that passes `seconds`; the compiled engine trains one chunk, as
        many epochs as its last chunk's speed says fit in `seconds` (at most 8 times the
        last chunk's, starting from one)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if self._compiled is not None:
                return self._compiled_epochs(max_epochs, seconds)
            records: list[EpochRecord] = []
            first, start = self.epoch, perf_counter()
            while not self.done and self.epoch - first < max_epochs:
                record = self._train_epoch()
                if record is not None:
                    records.append(record)
                if perf_counter() - start >= seconds:
                    break
            return History(records)

    def learning_rate(self, epoch: int) -> float:
        t = self.spec.training
        schedule = SCHEDULES[t.lr_schedule]
        return schedule(t.learning_rate, epoch, t.lr_decay, t.lr_decay_every, t.epochs)

    def train_epoch(self) -> EpochRecord | None:
        """One pass over the training data; None if it diverged (and the run stopped)."""
        if self._compiled is not None:
            records = self.train_epochs(1).records()
            return records[0] if records else None
        # A diverging run overflows on its way to NaN; the finiteness check below is how
        # divergence is detected and reported, so NumPy's warnings would only be noise.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._train_epoch()

    def _train_epoch(self) -> EpochRecord | None:
        training = self.spec.training
        lr = self.learning_rate(self.epoch)
        width = self.spec.network.n_inputs + 1
        if training.shuffle:
            self._order = self.rng.permutation(len(self._data))
            if not self._gather:
                # mode="clip" (the indices are in range anyway): with the default "raise",
                # `out=` is filled through a buffer, a second copy of the data.
                np.take(self._data, self._order, axis=0, out=self._epoch_data, mode="clip")
        before = self.params.flat.copy()
        self._train_batches(lr, training.update_rule == "dirty")
        self.epoch += 1

        outputs = self._outputs
        # The targets in the order the outputs were computed in (taken from the targets
        # alone: from the data's rows, each target row costs a cache miss of its own).
        targets = (
            np.take(self.train_t, self._order, axis=0, mode="clip")
            if self._gather
            else self._epoch_data[:, width:]
        )
        errors = np.subtract(outputs, targets, dtype=np.float64).ravel()
        squared_error = float(errors @ errors)
        if training.loss == "mse" and len(self._batch_sizes) * self.batch == len(outputs):
            # Equal batches: the mean of batch losses is the mean per-sample half squared
            # error, known already from the squared error the RMSE needs.
            loss = 0.5 * squared_error / len(outputs)
        else:
            losses = self.backprop.per_sample_loss(outputs, targets).astype(np.float64)
            loss = float((np.add.reduceat(losses, self._batch_starts) / self._batch_sizes).mean())
        if not (math.isfinite(loss) and np.isfinite(self.params.flat).all()):
            self._diverge(loss, before)
            return None
        self.weights_epoch = self.epoch
        values: dict[str, Any] = {}
        if self._regression:
            values["mae"], values["r2"] = self._train_regression_scores(errors, squared_error)
        if self.val_x is not None and self.val_t is not None:
            values.update(self._validation_scores())
        record = EpochRecord(
            epoch=self.epoch,
            loss=loss,
            rmse=math.sqrt(squared_error / errors.size),
            learning_rate=lr,
            accuracy=self._accuracy(outputs, targets),
            **values,
        )
        self._early_stopping(record)
        return record

    def _diverge(self, loss: float, before: np.ndarray) -> None:
        """Stop after the epoch just trained diverged, keeping earlier weights: the best
        epoch's, else `before` (those from that epoch's start)."""
        self.diverged = True
        if self.best_flat is not None:
            self.params.flat[...] = self.best_flat
            self.weights_epoch = self.best_epoch
            kept = f"restored the best weights, of epoch {self.best_epoch}"
        else:
            self.params.flat[...] = before
            self.weights_epoch = self.epoch - 1
            kept = f"kept the weights from the end of epoch {self.epoch - 1}"
        self.stop_reason = (
            f"diverged at epoch {self.epoch}: the training loss became {loss}; {kept}"
        )

    def _compiled_epochs(self, max_epochs: int, seconds: float) -> History:
        """A chunk of epochs in compiled code, sized from the speed of the last chunk, and
        its history computed from the per-epoch sums the kernel wrote, a few NumPy calls
        for the whole chunk."""
        assert self._compiled is not None
        training = self.spec.training
        count = min(max_epochs, training.epochs - self.epoch, MAX_CHUNK_EPOCHS)
        if self.done or count < 1:
            return History([])
        if self._epoch_by_epoch:
            count = 1
        elif self._epoch_seconds > 0:
            fits = max(1, int(seconds / self._epoch_seconds))
            count = min(count, fits, self._chunk_epochs * CHUNK_GROWTH)
        else:
            count = 1
        first = self.epoch
        rates = self._learning_rates(first, count)
        start = perf_counter()
        chunk = self._compiled.train(rates)
        self._epoch_seconds = (perf_counter() - start) / chunk.epochs
        self._chunk_epochs = count
        self.epoch += chunk.epochs
        good = chunk.epochs - chunk.diverged
        n, k = self.train_t.shape
        columns: dict[str, np.ndarray] = {
            "epoch": np.arange(first + 1, first + good + 1),
            "loss": chunk.losses[:good],
            "rmse": np.sqrt(chunk.squared[:good] / (n * k)),
            "learning_rate": rates[:good],
        }
        kind = self._compiled.accuracy
        if kind != NO_ACCURACY:
            columns["accuracy"] = chunk.correct[:good] / (n * k if kind == THRESHOLD else n)
        if self._regression:
            columns["mae"], columns["r2"] = self._chunk_regression_scores(
                chunk.abs_columns[:good], chunk.squared_columns[:good], chunk.squared[:good]
            )
        if chunk.diverged:
            self._diverge(float(chunk.losses[-1]), self._compiled.before)
        else:
            self.weights_epoch = self.epoch
        history = History(columns=columns)
        if not (self._epoch_by_epoch and good):
            return history
        record = history.records()[0]
        if self.val_x is not None and self.val_t is not None:
            scores: dict[str, Any] = self._validation_scores()
            record = replace(record, **scores)
        self._early_stopping(record)
        return History([record])

    def _learning_rates(self, first: int, count: int) -> np.ndarray:
        """The learning rate of each epoch from `first` on, `(count,)`."""
        if self.spec.training.lr_schedule == "constant":
            return np.full(count, self.spec.training.learning_rate)
        return np.array([self.learning_rate(epoch) for epoch in range(first, first + count)])

    def _chunk_regression_scores(
        self, abs_columns: np.ndarray, squared_columns: np.ndarray, squared: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`_train_regression_scores` for a chunk of epochs at once, from each epoch's
        summed absolute and squared errors per column `(epochs, k)`."""
        if self._one_column is not None:
            abs_factor, squared_factor, total = self._one_column
            mean_abs = abs_columns[:, 0] * abs_factor
            residual = squared * squared_factor
            if total == 0:
                return mean_abs, np.where(residual == 0, 1.0, 0.0)
            return mean_abs, 1.0 - residual / total
        scale, total_columns, constant = self._raw_scale, self._train_total, self._train_constant
        n, k = self.train_t.shape
        mean_abs = (abs_columns / n) @ scale / k
        residuals = squared_columns * (scale * scale)
        scores = 1 - residuals / np.where(constant, 1.0, total_columns)
        scores[:, constant] = residuals[:, constant] == 0
        return mean_abs, scores.mean(axis=1)

    def _accuracy_kind(self) -> int:
        """Which accuracy `_accuracy` computes, as the compiled engine's code."""
        activation = self.spec.network.output_activation
        if self.classes is not None and activation == "identity":
            # class_indices: a 0/1 column is thresholded, one column per class argmax'd.
            return THRESHOLD if self.train_t.shape[1] == 1 else ARGMAX
        return {"softmax": ARGMAX, "sigmoid": THRESHOLD}.get(activation, NO_ACCURACY)

    def _train_regression_scores(
        self, errors: np.ndarray, squared_error: float
    ) -> tuple[float, float]:
        """MAE and R^2 in raw units from the epoch's scaled errors `(n * k,)`: scaling by a
        per-column factor scales each column's errors by it, so no raw outputs are needed.
        Per-sample training spends tens of microseconds an epoch, so this stays at one or
        two NumPy calls with every constant computed in `_prepare_metrics`."""
        if self._one_column is not None:
            # One column (the usual case): the squared error is known already.
            abs_factor, squared_factor, total = self._one_column
            mean_abs = float(np.add.reduce(np.abs(errors))) * abs_factor
            residual = squared_error * squared_factor
            if total == 0:
                return mean_abs, 1.0 if residual == 0 else 0.0
            return mean_abs, 1.0 - residual / total
        scale, total_columns, constant = self._raw_scale, self._train_total, self._train_constant
        k = len(scale)
        columns = errors.reshape(-1, k)
        mean_abs = float(np.abs(columns).mean(axis=0) @ scale) / k
        residuals = (columns * columns).sum(axis=0) * (scale * scale)
        scores = 1 - residuals / np.where(constant, 1.0, total_columns)
        scores[constant] = residuals[constant] == 0
        return mean_abs, float(scores.mean())

    def _validation_scores(self) -> dict[str, float]:
        assert self.val_x is not None and self.val_t is not None
        outputs = predict(self.spec.network, self.params, self.val_x)
        scores = {
            "val_loss": float(self.backprop.per_sample_loss(outputs, self.val_t).mean()),
        }
        accuracy = self._accuracy(outputs, self.val_t)
        if accuracy is not None:
            scores["val_accuracy"] = accuracy
        if self._val_classes is not None:
            predicted = class_indices(outputs)
            matrix = confusion_matrix(self._val_classes, predicted, self._n_classes)
            precision, recall, f1 = macro_scores(matrix)
            scores.update(val_precision=precision, val_recall=recall, val_f1=f1)
        if self._regression and self.raw_val_t is not None:
            raw = self.preprocessing.inverse_targets(outputs.astype(np.float64))
            scores.update(val_mae=mae(raw, self.raw_val_t), val_r2=r2(raw, self.raw_val_t))
        return scores

    def _train_batches(self, lr: float, dirty: bool) -> None:
        # The hot loop: every NumPy call removed here counts for per-sample training.
        params, grads, optimizer, backprop = self.params, self.grads, self.optimizer, self.backprop
        forward, backward, begin_step, apply = (
            backprop.forward,
            backprop.backward,
            optimizer.begin_step,
            optimizer.apply,
        )

        def apply_layer(layer: int) -> None:
            apply(layer, lr)

        data, order = self._data, self._order
        # Unpacked rather than read by name: attribute lookups would cost per step.
        for rows, gather_into, x, t, outputs, ws in self._batches:
            if gather_into is not None:
                np.take(data, order[rows], axis=0, out=gather_into, mode="clip")
            outputs[...] = forward(params, x, ws)
            begin_step()
            if dirty:
                backward(params, x, t, ws, grads, apply_layer)
            else:
                backward(params, x, t, ws, grads)
                apply(EVERYTHING, lr)

    def _accuracy(self, outputs: np.ndarray, targets: np.ndarray) -> float | None:
        activation = self.spec.network.output_activation
        if self.classes is not None and activation == "identity":
            return float(np.mean(class_indices(outputs) == class_indices(targets)))
        if activation == "softmax":
            return float(np.mean(outputs.argmax(axis=1) == targets.argmax(axis=1)))
        if activation == "sigmoid":
            return float(np.mean((outputs >= 0.5) == (targets >= 0.5)))
        return None

    def _early_stopping(self, record: EpochRecord) -> None:
        training = self.spec.training
        patience = training.early_stopping_patience
        if patience is None:
            return
        monitored = record.val_loss if record.val_loss is not None else record.loss
        if monitored < self.best_loss - training.early_stopping_min_delta:
            self.best_loss, self.best_epoch = monitored, record.epoch
            self.best_flat = self.params.flat.copy()
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        name = "validation loss" if record.val_loss is not None else "training loss"
        if self.epochs_without_improvement >= patience:
            self.stop_reason = (
                f"early stopping at epoch {record.epoch}: no {name} improvement for "
                f"{patience} epochs; restored the weights of epoch {self.best_epoch}"
            )
        if self.done and self.best_flat is not None:
            # With early stopping on, the model is always the best epoch's weights.
            self.params.flat[...] = self.best_flat
            self.weights_epoch = self.best_epoch

    def model(self) -> Model:
        """The current weights as a standalone model, with its preprocessing and classes."""
        return Model(
            self.spec.network,
            self.params.copy(),
            preprocessing=None if self.preprocessing.is_identity else self.preprocessing,
            classes=self.classes,
            loss=self.spec.training.loss,
            feature_names=self.feature_names,
        )

    def checkpoint(self) -> bytes:
        """Everything needed to continue this run exactly, as bytes."""
        meta = {
            "spec": self._spec_dict,
            "n_train": len(self.train_x),
            "epoch": self.epoch,
            "weights_epoch": self.weights_epoch,
            "rng": self.rng.bit_generator.state,
            "stop_reason": self.stop_reason,
            "diverged": self.diverged,
            "best_loss": None if math.isinf(self.best_loss) else self.best_loss,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.epochs_without_improvement,
            "engine": self.engine,
        }
        arrays = {"params": self.params.flat}
        if not self.preprocessing.is_identity:
            meta["preprocessing"], scaler_arrays = self.preprocessing.to_blob()
            arrays.update(scaler_arrays)
        if self.best_flat is not None:
            arrays["best_params"] = self.best_flat
        arrays.update({f"optimizer.{k}": v for k, v in self.optimizer.state().items()})
        return pack("checkpoint", meta, arrays)

    def _resume_engine(self, saved: str) -> None:
        """Continue with the engine that wrote the checkpoint (one written before there were
        two is the NumPy engine's): the engines round differently, so a run switching
        engines would be neither engine's run. `auto` follows the checkpoint; an explicit
        other engine is refused."""
        if saved == self.engine:
            return
        if self.spec.training.engine != "auto":
            raise SpecError(
                "training.engine",
                f"the checkpoint was made by the {saved} engine, not {self.engine}; "
                f"resume with engine {saved} or auto",
            )
        if saved == "compiled" and (reason := compiled_unavailable()) is not None:
            raise SpecError(
                "checkpoint", f"was made by the compiled engine, which cannot load here: {reason}"
            )
        self.engine = saved

    def _restore(self, data: bytes) -> None:
        meta, arrays = unpack("checkpoint", data)
        # A checkpoint written before preprocessing existed trained on the data as given.
        # Only the epoch count may differ: a run continued for more epochs (a retry)
        # resumes from the checkpoint of its shorter self.
        if _without_epochs(stored_spec(meta["spec"])) != _without_epochs(self._spec_dict):
            raise SpecError("checkpoint", "was made for a different spec")
        self._resume_engine(meta.get("engine", "numpy"))
        if meta["n_train"] != len(self.train_x):
            raise SpecError("checkpoint", "was made for a data set of another size")
        widths = (self.spec.network.n_inputs, self.spec.network.n_outputs)
        saved = Preprocessing.from_blob(meta.get("preprocessing", {}), arrays, widths)
        if not saved.same_as(self.preprocessing):
            raise SpecError(
                "checkpoint", "was made for other data: its preprocessing statistics differ"
            )
        self.params.flat[...] = arrays["params"]
        self.rng.bit_generator.state = meta["rng"]
        self.epoch = meta["epoch"]
        # Checkpoints written before weights_epoch existed held the last epoch's weights.
        self.weights_epoch = meta.get("weights_epoch", self.epoch)
        self.stop_reason = meta["stop_reason"]
        self.diverged = meta["diverged"]
        self.best_loss = math.inf if meta["best_loss"] is None else meta["best_loss"]
        self.best_epoch = meta["best_epoch"]
        self.epochs_without_improvement = meta["epochs_without_improvement"]
        self.best_flat = arrays.get("best_params")
        prefix = "optimizer."
        self.optimizer.load_state(
            {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        )


def _without_epochs(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec without what a resume may change: the epochs, and the engine (checked
    against the checkpoint's own, see `Trainer._resume_engine`)."""
    training = {k: v for k, v in spec.get("training", {}).items() if k not in ("epochs", "engine")}
    return {**spec, "training": training}


def check_start_model(
    model: Model, network: NetworkSpec, classes: Sequence[ClassName] | None, field: str = "model"
) -> None:
    """Refuse to warm-start `network` from `model` unless their layer widths are the same
    and the model answers the same classes (or, like the data, none). Activations may
    differ: the weights are numbers per layer, whatever follows them."""
    if model.spec.layers != network.layers:
        raise SpecError(
            field,
            f"the model has layers {list(model.spec.layers)}, "
            f"the job's network has {list(network.layers)}",
        )
    mine = None if classes is None else list(classes)
    theirs = None if model.classes is None else list(model.classes)
    if mine != theirs:
        if theirs is None:
            problem = f"the model was trained on target values, the data has classes {mine}"
        elif mine is None:
            problem = f"the model answers classes {theirs}, the data has target values"
        else:
            problem = f"the model answers classes {theirs}, the data has classes {mine}"
        raise SpecError(field, problem)
