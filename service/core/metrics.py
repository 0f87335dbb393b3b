"""Classification and regression metrics, as scikit-learn defines them, and the evaluation
of a model on a data set."""

from typing import Any

import numpy as np

from .errors import SpecError
from .labels import ClassName, Labels, class_indices
from .losses import LOSSES
from .model import Model, check_targets


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts `(n_classes, n_classes)`: row = true class, column = predicted class."""
    flat = np.bincount(
        np.asarray(true, dtype=np.int64) * n_classes + np.asarray(predicted, dtype=np.int64),
        minlength=n_classes * n_classes,
    )
    matrix: np.ndarray = flat.reshape(n_classes, n_classes)
    return matrix


def macro_scores(matrix: np.ndarray) -> tuple[float, float, float]:
    """Macro-averaged precision, recall and F1 of a confusion matrix. A class never
    predicted has precision 0 and one never present recall 0, as scikit-learn's
    `zero_division=0`; classes absent from both still count in the average, as they do
    there when named in `labels`."""
    hits = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


def mae(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean absolute error, averaged over columns."""
    return float(np.mean(np.abs(outputs - targets)))


def r2(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Coefficient of determination, uniform average over columns (scikit-learn's r2_score):
    a constant target column scores 1 if predicted exactly, else 0."""
    residual = ((targets - outputs) ** 2).sum(axis=0)
    total = ((targets - targets.mean(axis=0)) ** 2).sum(axis=0)
    scores = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), 0.0)
    scores = np.where((total == 0) & (residual == 0), 1.0, scores)
    return float(scores.mean())


def evaluate(
    model: Model, inputs: object, targets: object = None, labels: Labels | None = None
) -> dict[str, Any]:
    """Loss (on the scaled problem, with the model's loss) and metrics of `model` on a data
    set: accuracy, macro precision, recall and F1 plus the confusion matrix for classifiers;
    MAE, RMSE and R^2 in raw units for regression. Give `targets` or `labels`."""
    if (targets is None) == (labels is None):
        raise SpecError("targets", "give exactly one of targets or labels")
    outputs = model.network_outputs(inputs)  # checks the inputs
    n_samples = len(outputs)
    if labels is not None:
        if len(labels) != n_samples:
            raise SpecError("labels", f"must have one label per input row ({n_samples})")
        # A model trained on labels predicts classes whatever its output activation (the
        # notebook's XOR network: identity and mse on 0/1 labels).
        if model.task == "regression":
            raise SpecError("labels", "the model is a regression model; give targets")
        known = _known_classes(model)
        indices = _class_indices(known, labels)
        # Encoded for the model's output as training encodes labels.
        encoded = Labels(known, indices).targets_for(model.spec)
        return _classification(model, outputs, encoded, indices, len(known), n_samples)
    t = check_targets(targets, n_samples)
    if t.shape[1] != model.spec.n_outputs:
        raise SpecError(
            "targets", f"rows must have {model.spec.n_outputs} values, got {t.shape[1]}"
        )
    if model.is_classifier and np.all((t == 0) | (t == 1)):
        indices = class_indices(t)
        n_classes = len(_known_classes(model))
        return _classification(model, outputs, t, indices, n_classes, n_samples)
    scaled = t if model.preprocessing is None else model.preprocessing.transform_targets(t)
    raw = outputs if model.preprocessing is None else model.preprocessing.inverse_targets(outputs)
    errors = raw - t
    return {
        "n_samples": n_samples,
        "loss": _loss(model, outputs, scaled),
        "metrics": {
            "mae": mae(raw, t),
            "rmse": float(np.sqrt(np.mean(errors**2))),
            "r2": r2(raw, t),
        },
        "confusion_matrix": None,
    }


def _classification(
    model: Model,
    outputs: np.ndarray,
    encoded: np.ndarray,
    indices: np.ndarray,
    n_classes: int,
    n_samples: int,
) -> dict[str, Any]:
    predicted = class_indices(outputs)
    matrix = confusion_matrix(indices, predicted, n_classes)
    precision, recall, f1 = macro_scores(matrix)
    classes = list(model.classes) if model.classes is not None else list(range(n_classes))
    return {
        "n_samples": n_samples,
        "loss": _loss(model, outputs, encoded),
        "metrics": {
            "accuracy": float(np.mean(predicted == indices)),
            "precision": precision,
            "recall": recall,
            "f1": f1,
        },
        "confusion_matrix": {"classes": classes, "matrix": matrix.tolist()},
    }


def _known_classes(model: Model) -> tuple[ClassName, ...]:
    """The model's classes; a model without class names knows them as 0..k-1."""
    if model.classes is not None:
        return model.classes
    return tuple(range(2 if model.spec.n_outputs == 1 else model.spec.n_outputs))


def _class_indices(known: tuple[ClassName, ...], labels: Labels) -> np.ndarray:
    """The labels' rows as indices into the `known` classes, matched by class name."""
    position = {(type(c), c): i for i, c in enumerate(known)}
    mapping = np.empty(labels.n_classes, dtype=np.int64)
    for j, name in enumerate(labels.classes):
        if (type(name), name) not in position:
            row = int(np.flatnonzero(labels.indices == j)[0])
            raise SpecError(
                f"labels[{row}]",
                f"{name!r} is not one of the model's classes ({', '.join(repr(c) for c in known)})",
            )
        mapping[j] = position[(type(name), name)]
    indices: np.ndarray = mapping[labels.indices]
    return indices


def _loss(model: Model, outputs: np.ndarray, targets: np.ndarray) -> float:
    per_sample, _ = LOSSES[model.loss_name]
    return float(per_sample(outputs, targets).mean())
