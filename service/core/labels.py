"""Class labels as users give them (strings, integers or booleans) and the targets a network
trains on: one-hot columns, or one 0/1 column for two classes and a width-1 output."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SpecError
from .spec import NetworkSpec, RunSpec

ClassName = str | int | bool

# The types a class may have, by the name a message uses for them.
_KINDS: tuple[tuple[type, str], ...] = ((bool, "a boolean"), (int, "an integer"), (str, "a string"))


def _kind(value: object, field: str) -> str:
    # bool before int: True is an int to Python but a class of its own to users.
    for kind, name in _KINDS:
        if isinstance(value, kind):
            return name
    raise SpecError(field, f"must be a string, an integer or a boolean, got {value!r}")


@dataclass(frozen=True)
class Labels:
    """One class per row: `classes` sorted and as given, `indices` `(n,)` int64 into them."""

    classes: tuple[ClassName, ...]
    indices: np.ndarray

    @classmethod
    def from_values(cls, values: Sequence[object], field: str = "labels") -> "Labels":
        """Labels from one value per row, all strings, all integers or all booleans."""
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
            raise SpecError(field, "must be a list of class labels, one per row")
        if len(values) == 0:
            raise SpecError(field, "must not be empty")
        items: list[Any] = [v.item() if isinstance(v, np.generic) else v for v in values]
        first = _kind(items[0], f"{field}[0]")
        for i, value in enumerate(items):
            kind = _kind(value, f"{field}[{i}]")
            if kind != first:
                raise SpecError(
                    field,
                    f"mixed types: {field}[0] is {first} but {field}[{i}] is {kind} "
                    f"({value!r}); give every label the same type",
                )
        classes: tuple[ClassName, ...] = tuple(sorted(set(items)))
        position = {name: index for index, name in enumerate(classes)}
        indices = np.fromiter((position[v] for v in items), dtype=np.int64, count=len(items))
        return cls(classes, indices)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.indices)

    def counts(self) -> list[int]:
        """Rows per class, in `classes` order."""
        return [int(c) for c in np.bincount(self.indices, minlength=self.n_classes)]

    def targets_for(self, network: NetworkSpec) -> np.ndarray:
        """Float targets `(n, width)` for the network's output: one-hot when it has one unit
        per class, a 0/1 column (1 for `classes[1]`) for two classes and one unit."""
        check_labels_fit(network, self.n_classes)
        if network.n_outputs == 1:
            return self.indices.astype(np.float64)[:, None]
        one_hot: np.ndarray = np.eye(self.n_classes)[self.indices]
        return one_hot


def class_indices(encoded: np.ndarray) -> np.ndarray:
    """Class numbers `(n,)` of encoded labels or of a classifier's outputs `(n, width)`:
    p >= 0.5 for one 0/1 column, argmax for one column per class."""
    if encoded.shape[1] == 1:
        return (encoded[:, 0] >= 0.5).astype(np.int64)
    indices: np.ndarray = encoded.argmax(axis=1)
    return indices


def check_labels_fit(network: NetworkSpec, n_classes: int) -> None:
    """Refuse an output width that cannot hold `n_classes` classes, saying what would."""
    width = network.n_outputs
    if width == n_classes or (width == 1 and n_classes == 2):
        return
    raise SpecError(
        f"network.layers[{len(network.layers) - 1}]",
        f"output width {width} does not fit the dataset's {n_classes} classes; "
        f"use {n_classes} (or 1 for two classes)",
    )


def check_labelled_run(spec: RunSpec, classes: Sequence[ClassName], counts: Sequence[int]) -> None:
    """What a run on class labels needs beyond its spec: labels are not scaled, and a
    validation split, stratified, needs every class twice (one to train on, one to
    validate). The trainer checks it, and the API before it queues a job."""
    if spec.preprocessing.targets != "none":
        raise SpecError(
            "preprocessing.targets",
            f"{spec.preprocessing.targets} is for regression targets; class labels are not "
            "scaled: use none",
        )
    if not spec.training.validation_split:
        return
    for name, count in zip(classes, counts, strict=True):
        if count < 2:
            raise SpecError(
                "training.validation_split",
                f"class {name!r} has {count} sample(s); a stratified validation split "
                "needs at least 2 of every class (one to train on, one to validate). "
                "Add samples of that class or set validation_split to 0",
            )


def labels_from_targets(targets: np.ndarray, field: str = "targets") -> Labels:
    """Integer labels from encoded targets: a 0/1 column gives classes (0, 1), one-hot rows
    classes 0..k-1 (what the generators make)."""
    t = np.asarray(targets, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or len(t) == 0:
        raise SpecError(field, "must be a non-empty list of rows")
    binary = np.all((t == 0) | (t == 1))
    if t.shape[1] == 1 and binary:
        return Labels((0, 1), t[:, 0].astype(np.int64))
    if t.shape[1] > 1 and binary and np.all(t.sum(axis=1) == 1):
        return Labels(tuple(range(t.shape[1])), t.argmax(axis=1).astype(np.int64))
    raise SpecError(field, "are not class labels: need one 0/1 column or one-hot rows")
