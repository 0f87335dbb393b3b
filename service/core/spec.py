"""Network, training and preprocessing specs: the `{"network": ..., "training": ...,
"preprocessing": ...}` shape of a job.

Specs are built from plain dicts (JSON) and validated here, so the CLI, the API and the
worker all reject the same things with the same field names.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, asdict, dataclass, fields
from dataclasses import field as dataclass_field
from itertools import pairwise
from typing import Any

from .activations import HIDDEN, OUTPUT
from .errors import SpecError
from .initializers import INIT_CHOICES
from .losses import LOSSES, VALID_LOSSES
from .optimizers import OPTIMIZERS
from .schedules import FACTOR_SCHEDULES, SCHEDULES

UPDATE_RULES = ("standard", "dirty")
INPUT_SCALINGS = ("minmax", "none", "standardize")
TARGET_SCALINGS = ("none", "standardize")
TASKS = ("classification", "regression")
DTYPES = ("float64", "float32")
# `auto` picks numpy or compiled per job (see compiled.auto_engine).
ENGINES = ("auto", "numpy", "compiled")

MAX_LAYERS = 32
MAX_LAYER_WIDTH = 4096
# Epochs are stored in 32-bit signed integer columns; seeds are those NumPy's legacy
# seeding and most other tools take too.
MAX_EPOCHS = 2**31 - 1
MAX_SEED = 2**32 - 1


def _text(number: float) -> str:
    """2147483647 as such, not 2.14748e+09; 1e-08 and 0.999 as `:g` writes them."""
    return str(int(number)) if float(number).is_integer() and abs(number) < 1e16 else f"{number:g}"


@dataclass(frozen=True)
class Bounds:
    """Limits on a number, named as in JSON Schema's and pydantic's `gt`, `ge`, `lt`, `le`:
    greater than, at least, less than, at most. None is no limit."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def as_dict(self) -> dict[str, float]:
        """The limits that are set, by name: `{"gt": 0, "le": 100}`."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    def check(self, number: float, field: str) -> None:
        if self.gt is not None and not number > self.gt:
            raise SpecError(field, f"must be greater than {_text(self.gt)}, got {_text(number)}")
        if self.ge is not None and not number >= self.ge:
            raise SpecError(field, f"must be at least {_text(self.ge)}, got {_text(number)}")
        if self.lt is not None and not number < self.lt:
            raise SpecError(field, f"must be less than {_text(self.lt)}, got {_text(number)}")
        if self.le is not None and not number <= self.le:
            raise SpecError(field, f"must be at most {_text(self.le)}, got {_text(number)}")


def spec_field(
    default: Any = MISSING,
    *,
    choices: Iterable[str] | None = None,
    length: Bounds | None = None,
    **bounds: float,
) -> Any:
    """A spec field's default, its choices or its bounds (of each item, for a list; `length`
    bounds the list's length), declared once: `from_dict` checks them and the API's
    schemas and their JSON Schema are built from them."""
    metadata: dict[str, Any] = {"bounds": Bounds(**bounds)}
    if choices is not None:
        metadata["choices"] = tuple(sorted(choices))
    if length is not None:
        metadata["length"] = length
    return dataclass_field(default=default, metadata=metadata)


def spec_fields(spec: type) -> dict[str, Field[Any]]:
    """A spec dataclass's fields by name."""
    return {f.name: f for f in fields(spec)}


def bounds_of(spec: type, name: str) -> Bounds:
    """The bounds declared for `spec.name` (of each item, for a list)."""
    bounds: Bounds = spec_fields(spec)[name].metadata["bounds"]
    return bounds


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


def _integer(value: Any, field: str, bounds: Bounds) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(field, f"must be an integer, got {value!r}")
    bounds.check(value, field)
    return value


def _number(value: Any, field: str, bounds: Bounds) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(field, f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise SpecError(field, "must be finite")
    bounds.check(number, field)
    return number


def _value(declared: Field[Any], value: Any, field: str) -> Any:
    """`value` checked against the declared field's type, choices and bounds; null only
    where the type allows it."""
    if value is None and declared.type == int | None:
        return None
    choices = declared.metadata.get("choices")
    if choices is not None:
        return _choice(value, choices, field)
    bounds = declared.metadata["bounds"]
    kind = declared.type
    if kind is bool:
        if not isinstance(value, bool):
            raise SpecError(field, f"must be true or false, got {value!r}")
        return value
    if kind in (int, int | None):
        return _integer(value, field, bounds)
    return _number(value, field, bounds)


def _flat_values(spec: type, data: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Every field of a spec dataclass whose fields are all plain values, checked, from
    `data` or its declared default."""
    specified = spec_fields(spec)
    _check_keys(data, set(specified), prefix)
    return {
        name: _value(f, data.get(name, f.default), f"{prefix}.{name}")
        for name, f in specified.items()
    }


@dataclass(frozen=True)
class NetworkSpec:
    """Layer widths (input and output included), activations and initializer."""

    layers: tuple[int, ...] = spec_field(
        length=Bounds(ge=2, le=MAX_LAYERS), ge=1, le=MAX_LAYER_WIDTH
    )
    hidden_activation: str = spec_field("relu", choices=HIDDEN)
    output_activation: str = spec_field("identity", choices=OUTPUT)
    init: str = spec_field("auto", choices=INIT_CHOICES)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "network") -> "NetworkSpec":
        specified = spec_fields(cls)
        _check_keys(data, set(specified), prefix)
        if "layers" not in data:
            raise SpecError(f"{prefix}.layers", "is required")
        layers = data["layers"]
        length: Bounds = specified["layers"].metadata["length"]
        if not isinstance(layers, list | tuple) or len(layers) < (length.ge or 0):
            raise SpecError(f"{prefix}.layers", "must list at least an input and an output width")
        if length.le is not None and len(layers) > length.le:
            raise SpecError(f"{prefix}.layers", f"must list at most {length.le:g} widths")
        width = specified["layers"].metadata["bounds"]
        widths = tuple(_integer(w, f"{prefix}.layers[{i}]", width) for i, w in enumerate(layers))
        values = {
            name: _value(f, data.get(name, f.default), f"{prefix}.{name}")
            for name, f in specified.items()
            if name != "layers"
        }
        spec = cls(layers=widths, **values)
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

    loss: str = spec_field("mse", choices=LOSSES)
    optimizer: str = spec_field("sgd", choices=OPTIMIZERS)
    # No upper bound: a rate that diverges is stopped and reported by the trainer (see
    # tests/core/test_spec_errors.py), so the CLI can show what 1e6 does. The caps below are
    # the ones the API has always had, now the CLI's and the worker's too.
    learning_rate: float = spec_field(0.01, gt=0)
    momentum: float = spec_field(0.9, ge=0, lt=1)
    beta1: float = spec_field(0.9, ge=0, lt=1)
    beta2: float = spec_field(0.999, ge=0, lt=1)
    epsilon: float = spec_field(1e-8, gt=0, le=1)
    lr_schedule: str = spec_field("constant", choices=SCHEDULES)
    lr_decay: float = spec_field(0.5, gt=0, le=100)
    lr_decay_every: int = spec_field(100, ge=1)
    l2: float = spec_field(0.0, ge=0, le=100)
    epochs: int = spec_field(100, ge=1, le=MAX_EPOCHS)
    batch_size: int | None = spec_field(1, ge=1)
    shuffle: bool = spec_field(True)
    seed: int = spec_field(0, ge=0, le=MAX_SEED)
    update_rule: str = spec_field("standard", choices=UPDATE_RULES)
    validation_split: float = spec_field(0.0, ge=0, lt=1)
    early_stopping_patience: int | None = spec_field(None, ge=1)
    early_stopping_min_delta: float = spec_field(0.0, ge=0)
    dtype: str = spec_field("float64", choices=DTYPES)
    engine: str = spec_field("auto", choices=ENGINES)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "training") -> "TrainingSpec":
        return cls(**_flat_values(cls, data, prefix))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PreprocessingSpec:
    """How inputs and targets are scaled before training; the fitted statistics travel with
    the model so that predict takes raw rows and answers in raw units."""

    inputs: str = spec_field("standardize", choices=INPUT_SCALINGS)
    targets: str = spec_field("none", choices=TARGET_SCALINGS)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], prefix: str = "preprocessing"
    ) -> "PreprocessingSpec":
        return cls(**_flat_values(cls, data, prefix))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunSpec:
    """A whole training run: the body of `POST /v1/jobs` and of `backprop train`."""

    network: NetworkSpec
    training: TrainingSpec
    preprocessing: PreprocessingSpec = PreprocessingSpec()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSpec":
        """A new run's spec, checked against every rule."""
        spec = cls._parse(data)
        check_decay_decays(spec.training)
        return spec

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> "RunSpec":
        """A job's spec as stored: read as it meant when it was accepted (`stored_spec`),
        and held to the rules it was accepted under, so a queued or interrupted job still
        runs and resumes. Rules added since (`check_decay_decays`) apply to new specs."""
        return cls._parse(stored_spec(data))

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> "RunSpec":
        if not isinstance(data, Mapping):
            raise SpecError("spec", "must be an object with network and training")
        if "network" not in data:
            raise SpecError("network", "is required")
        network = NetworkSpec.from_dict(data["network"])
        training = TrainingSpec.from_dict(data.get("training", {}))
        preprocessing = PreprocessingSpec.from_dict(data.get("preprocessing", {}))
        check_loss_fits_output(network, training.loss)
        if training.engine == "compiled" and training.dtype != "float64":
            raise SpecError(
                "training.engine",
                f"compiled trains float64 only, got dtype {training.dtype}; "
                "use engine auto or numpy",
            )
        return cls(network, training, preprocessing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network.to_dict(),
            "training": self.training.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
        }


# What a spec stored before preprocessing existed meant: the data as given.
LEGACY_PREPROCESSING = {"inputs": "none", "targets": "none"}
# ... and before `auto` became the default, a network without `init` drew N(0, 1).
LEGACY_INIT = "normal"


def stored_spec(data: Mapping[str, Any]) -> dict[str, Any]:
    """A spec dict as stored, with `preprocessing` none filled in where it was stored before
    preprocessing existed (and `network.init` normal where it is missing), so that an old
    job or checkpoint means what it meant when it ran."""
    spec = dict(data)
    if "preprocessing" not in spec:
        spec["preprocessing"] = dict(LEGACY_PREPROCESSING)
        network = spec.get("network")
        if isinstance(network, Mapping) and "init" not in network:
            spec["network"] = {**network, "init": LEGACY_INIT}
    return spec


# Classification: the loss that goes with each output activation.
CLASSIFICATION_LOSSES = {
    "sigmoid": "binary_crossentropy",
    "softmax": "categorical_crossentropy",
    "identity": "mse",
}


def with_task_defaults(data: Mapping[str, Any], task: str, n_classes: int | None) -> dict[str, Any]:
    """The raw spec dict with `network.output_activation` and `training.loss` filled in from
    the task where the client left them out: softmax + categorical cross-entropy for
    classification (sigmoid + binary cross-entropy when the output is one unit wide),
    identity + mse for regression. Validation is left to `RunSpec.from_dict`, and whether
    the width fits `n_classes` to `Labels.targets_for`, which names the number."""
    if not isinstance(data, Mapping):
        raise SpecError("spec", "must be an object with network and training")
    spec = dict(data)
    network, training = spec.get("network"), spec.get("training", {})
    if not isinstance(network, Mapping) or not isinstance(training, Mapping):
        return spec
    network, training = dict(network), dict(training)
    if task == "classification":
        layers = network.get("layers")
        width = layers[-1] if isinstance(layers, list | tuple) and layers else None
        # A width-1 output gets sigmoid even for more than two classes, so that the error
        # the client sees is the one about the width not fitting the classes.
        network.setdefault("output_activation", "sigmoid" if width == 1 else "softmax")
        loss = CLASSIFICATION_LOSSES.get(network["output_activation"], "mse")
    else:
        network.setdefault("output_activation", "identity")
        loss = "mse"
    training.setdefault("loss", loss)
    spec["network"], spec["training"] = network, training
    return spec


def check_decay_decays(training: TrainingSpec) -> None:
    """Reject a step or exponential schedule whose `lr_decay` factor grows the rate."""
    if training.lr_schedule in FACTOR_SCHEDULES and training.lr_decay > 1:
        raise SpecError(
            "training.lr_decay",
            f"must be at most 1 with lr_schedule {training.lr_schedule}, got "
            f"{_text(training.lr_decay)}: the rate is multiplied by it, so above 1 it grows",
        )


def check_loss_fits_output(network: NetworkSpec, loss: str, field: str = "training.loss") -> None:
    """Reject a loss that makes no sense on the network's output activation."""
    valid = VALID_LOSSES[network.output_activation]
    if loss not in valid:
        raise SpecError(
            field,
            f"{loss} does not fit output activation {network.output_activation}; "
            f"use one of {', '.join(sorted(valid))}",
        )
