"""Network and training specs: the `{"network": ..., "training": ...}` shape of a job.

Specs are built from plain dicts (JSON) and validated here, so the CLI, the API and the
worker all reject the same things with the same field names.
"""

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

from .activations import HIDDEN, OUTPUT
from .errors import SpecError
from .initializers import INITIALIZERS
from .losses import LOSSES, VALID_LOSSES
from .optimizers import OPTIMIZERS
from .schedules import SCHEDULES

UPDATE_RULES = ("standard", "dirty")
DTYPES = ("float64", "float32")


def _check_keys(data: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    if not isinstance(data, Mapping):
        raise SpecError(prefix, "must be an object")
    for key in data:
        if key not in allowed:
            raise SpecError(f"{prefix}.{key}", "unknown field")


def _choice(value: Any, choices: Any, field: str) -> str:
    if value not in choices:
        raise SpecError(field, f"must be one of {', '.join(sorted(choices))}, got {value!r}")
    return str(value)


def _integer(value: Any, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(field, f"must be an integer, got {value!r}")
    if value < minimum:
        raise SpecError(field, f"must be at least {minimum}, got {value}")
    return value


def _number(
    value: Any,
    field: str,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(field, f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise SpecError(field, "must be finite")
    if above is not None and number <= above:
        raise SpecError(field, f"must be greater than {above:g}, got {number:g}")
    if at_least is not None and number < at_least:
        raise SpecError(field, f"must be at least {at_least:g}, got {number:g}")
    if below is not None and number >= below:
        raise SpecError(field, f"must be less than {below:g}, got {number:g}")
    return number


@dataclass(frozen=True)
class NetworkSpec:
    """Layer widths (input and output included), activations and initializer."""

    layers: tuple[int, ...]
    hidden_activation: str = "relu"
    output_activation: str = "identity"
    init: str = "normal"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "network") -> "NetworkSpec":
        _check_keys(data, {"layers", "hidden_activation", "output_activation", "init"}, prefix)
        if "layers" not in data:
            raise SpecError(f"{prefix}.layers", "is required")
        layers = data["layers"]
        if not isinstance(layers, list | tuple) or len(layers) < 2:
            raise SpecError(f"{prefix}.layers", "must list at least an input and an output width")
        widths = tuple(_integer(w, f"{prefix}.layers[{i}]", 1) for i, w in enumerate(layers))
        spec = cls(
            layers=widths,
            hidden_activation=_choice(
                data.get("hidden_activation", "relu"), HIDDEN, f"{prefix}.hidden_activation"
            ),
            output_activation=_choice(
                data.get("output_activation", "identity"), OUTPUT, f"{prefix}.output_activation"
            ),
            init=_choice(data.get("init", "normal"), INITIALIZERS, f"{prefix}.init"),
        )
        if spec.output_activation == "softmax" and widths[-1] < 2:
            raise SpecError(f"{prefix}.output_activation", "softmax needs at least 2 outputs")
        return spec

    @property
    def n_inputs(self) -> int:
        return self.layers[0]

    @property
    def n_outputs(self) -> int:
        return self.layers[-1]

    @property
    def n_parameters(self) -> int:
        return sum((n_in + 1) * n_out for n_in, n_out in pairwise(self.layers))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"] = list(self.layers)
        return data


@dataclass(frozen=True)
class TrainingSpec:
    """Loss, optimizer and its hyper-parameters, schedule, batching and stopping rules."""

    loss: str = "mse"
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    lr_schedule: str = "constant"
    lr_decay: float = 0.5
    lr_decay_every: int = 100
    l2: float = 0.0
    epochs: int = 100
    batch_size: int | None = 1
    shuffle: bool = True
    seed: int = 0
    update_rule: str = "standard"
    validation_split: float = 0.0
    early_stopping_patience: int | None = None
    early_stopping_min_delta: float = 0.0
    dtype: str = "float64"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "training") -> "TrainingSpec":
        _check_keys(data, set(cls.__dataclass_fields__), prefix)
        defaults = cls()

        def get(key: str) -> Any:
            return data.get(key, getattr(defaults, key))

        def field(key: str) -> str:
            return f"{prefix}.{key}"

        batch_size = get("batch_size")
        patience = get("early_stopping_patience")
        shuffle = get("shuffle")
        if not isinstance(shuffle, bool):
            raise SpecError(field("shuffle"), f"must be true or false, got {shuffle!r}")
        return cls(
            loss=_choice(get("loss"), LOSSES, field("loss")),
            optimizer=_choice(get("optimizer"), OPTIMIZERS, field("optimizer")),
            learning_rate=_number(get("learning_rate"), field("learning_rate"), above=0),
            momentum=_number(get("momentum"), field("momentum"), at_least=0, below=1),
            beta1=_number(get("beta1"), field("beta1"), at_least=0, below=1),
            beta2=_number(get("beta2"), field("beta2"), at_least=0, below=1),
            epsilon=_number(get("epsilon"), field("epsilon"), above=0),
            lr_schedule=_choice(get("lr_schedule"), SCHEDULES, field("lr_schedule")),
            lr_decay=_number(get("lr_decay"), field("lr_decay"), above=0),
            lr_decay_every=_integer(get("lr_decay_every"), field("lr_decay_every"), 1),
            l2=_number(get("l2"), field("l2"), at_least=0),
            epochs=_integer(get("epochs"), field("epochs"), 1),
            batch_size=None if batch_size is None else _integer(batch_size, field("batch_size"), 1),
            shuffle=shuffle,
            seed=_integer(get("seed"), field("seed"), 0),
            update_rule=_choice(get("update_rule"), UPDATE_RULES, field("update_rule")),
            validation_split=_number(
                get("validation_split"), field("validation_split"), at_least=0, below=1
            ),
            early_stopping_patience=None
            if patience is None
            else _integer(patience, field("early_stopping_patience"), 1),
            early_stopping_min_delta=_number(
                get("early_stopping_min_delta"), field("early_stopping_min_delta"), at_least=0
            ),
            dtype=_choice(get("dtype"), DTYPES, field("dtype")),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunSpec:
    """A whole training run: the body of `POST /v1/jobs` and of `backprop train`."""

    network: NetworkSpec
    training: TrainingSpec

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSpec":
        if not isinstance(data, Mapping):
            raise SpecError("spec", "must be an object with network and training")
        if "network" not in data:
            raise SpecError("network", "is required")
        network = NetworkSpec.from_dict(data["network"])
        training = TrainingSpec.from_dict(data.get("training", {}))
        check_loss_fits_output(network, training.loss)
        return cls(network, training)

    def to_dict(self) -> dict[str, Any]:
        return {"network": self.network.to_dict(), "training": self.training.to_dict()}


def check_loss_fits_output(network: NetworkSpec, loss: str, field: str = "training.loss") -> None:
    """Reject a loss that makes no sense on the network's output activation."""
    valid = VALID_LOSSES[network.output_activation]
    if loss not in valid:
        raise SpecError(
            field,
            f"{loss} does not fit output activation {network.output_activation}; "
            f"use one of {', '.join(sorted(valid))}",
        )
