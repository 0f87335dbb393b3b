"""A trained model: its network spec and parameters, and what it needs to answer in the
user's terms (the preprocessing fitted on its training rows, its class names), as bytes
and as predictions."""

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .activations import HIDDEN, OUTPUT, Forward
from .errors import SpecError
from .labels import ClassName, class_indices
from .losses import LOSSES
from .network import PREDICT_CHUNK_ROWS, Parameters, predict
from .preprocessing import Preprocessing
from .serialization import pack, unpack
from .spec import NetworkSpec

# The loss a model was trained with, when it does not say (models stored before they did).
DEFAULT_LOSSES = {
    "identity": "mse",
    "sigmoid": "binary_crossentropy",
    "softmax": "categorical_crossentropy",
}


@dataclass
class Model:
    spec: NetworkSpec
    parameters: Parameters
    preprocessing: Preprocessing | None = None
    classes: tuple[ClassName, ...] | None = None
    loss: str | None = None
    feature_names: tuple[str, ...] | None = None

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Outputs `(n_samples, n_outputs)` in raw units for raw inputs `(n_samples, n_inputs)`:
        the inputs scaled as in training, the outputs scaled back."""
        inputs = check_inputs(inputs, self.spec.n_inputs)
        if self.preprocessing is None:
            return self._forward(inputs)
        outputs = self._network_outputs(inputs)
        return self.preprocessing.inverse_targets(outputs)

    def network_outputs(self, inputs: object) -> np.ndarray:
        """The network's own outputs (on the scaled problem) for raw inputs."""
        return self._network_outputs(check_inputs(inputs, self.spec.n_inputs))

    def _network_outputs(self, checked: np.ndarray) -> np.ndarray:
        if self.preprocessing is not None:
            checked = self.preprocessing.transform_inputs(checked)
        return self._forward(checked)

    def _forward(self, inputs: np.ndarray) -> np.ndarray:
        """`network.predict`'s outputs. A batch that fits in one of its chunks (a served
        request, mostly) runs the very same operations on the layers directly, so the
        outputs are the same bit for bit, without its chunk loop and output buffer: for a
        row or a few, the pass's time is the overhead of each call, not arithmetic."""
        if len(inputs) > PREDICT_CHUNK_ROWS:
            return predict(self.spec, self.parameters, inputs)
        h = inputs.astype(self.parameters.flat.dtype, copy=False)
        for transposed, bias, activate in self._layers:
            a = h @ transposed
            a += bias
            activate(a, a)
            h = a
        return h

    @cached_property
    def _layers(self) -> tuple[tuple[np.ndarray, np.ndarray, Forward], ...]:
        """Per layer, the transposed weights (views of the parameters), the biases and the
        activation, as `network.predict` takes them."""
        params, spec = self.parameters, self.spec
        hidden, output = HIDDEN[spec.hidden_activation][0], OUTPUT[spec.output_activation][0]
        last = len(params.weights) - 1
        return tuple(
            (weights.T, bias, output if layer == last else hidden)
            for layer, (weights, bias) in enumerate(zip(params.weights, params.biases, strict=True))
        )

    @property
    def is_classifier(self) -> bool:
        return self.spec.output_activation in ("sigmoid", "softmax")

    @property
    def task(self) -> str:
        """`classification` for a model that picks classes (a sigmoid or softmax output, or
        any output trained on class labels), else `regression`."""
        return "classification" if self.is_classifier or self.classes is not None else "regression"

    @property
    def loss_name(self) -> str:
        """The training loss, or the usual one for the output activation when unknown."""
        return self.loss or DEFAULT_LOSSES[self.spec.output_activation]

    def labels(self, outputs: np.ndarray) -> Any:
        """Class labels from classifier outputs. With `classes`, the class name of each row
        (a list, types as given); without, integers `(n, 1)` as before: argmax for softmax,
        p >= 0.5 for each sigmoid output."""
        if self.classes is not None:
            indices = class_indices(outputs)
            if len(indices) < 64:
                # Python ints: a loop over NumPy integers is twice as slow for a row.
                return [self.classes[i] for i in indices.tolist()]
            # One take from an object array of the classes: the loop was 9x slower for
            # 10k rows, a tenth of the prediction; for a few rows the array costs more.
            names = np.empty(len(self.classes), dtype=object)
            names[:] = self.classes
            return names[indices].tolist()
        if self.spec.output_activation == "softmax":
            labels: np.ndarray = outputs.argmax(axis=1)[:, None]
        else:
            labels = (outputs >= 0.5).astype(np.int64)
        return labels

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """Per-class probabilities `(n, n_classes)` in `classes` order; a width-1 sigmoid
        gives `[1 - p, p]`."""
        if outputs.shape[1] == 1:
            p = outputs[:, 0]
            return np.column_stack([1 - p, p])
        return outputs

    def to_bytes(self) -> bytes:
        meta: dict[str, Any] = {"network": self.spec.to_dict()}
        arrays = {"flat": self.parameters.flat}
        # Written only when set, so a plain model's blob is the same as it always was.
        if self.preprocessing is not None and not self.preprocessing.is_identity:
            meta["preprocessing"], scaler_arrays = self.preprocessing.to_blob()
            arrays.update(scaler_arrays)
        if self.classes is not None:
            meta["classes"] = list(self.classes)
        if self.loss is not None:
            meta["loss"] = self.loss
        if self.feature_names is not None:
            meta["feature_names"] = list(self.feature_names)
        return pack("model", meta, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Model":
        meta, arrays = unpack("model", data)
        try:
            spec = NetworkSpec.from_dict(meta["network"])
            parameters = Parameters(spec.layers, arrays["flat"])
        except (KeyError, TypeError, ValueError) as error:
            raise SpecError("model", f"not a valid model archive ({error})") from None
        preprocessing = None
        if "preprocessing" in meta:
            widths = (spec.n_inputs, spec.n_outputs)
            preprocessing = Preprocessing.from_blob(meta["preprocessing"], arrays, widths)
        classes = meta.get("classes")
        loss = meta.get("loss")
        names = meta.get("feature_names")
        if classes is not None and (not isinstance(classes, list) or len(classes) < 2):
            raise SpecError("model", "not a valid model archive (classes)")
        if loss is not None and loss not in LOSSES:
            raise SpecError("model", f"not a valid model archive (loss {loss!r})")
        return cls(
            spec,
            parameters,
            preprocessing=preprocessing,
            classes=None if classes is None else tuple(classes),
            loss=loss,
            feature_names=None if names is None else tuple(names),
        )


def check_inputs(inputs: object, n_inputs: int, field: str = "inputs") -> np.ndarray:
    """Inputs as a finite float array `(n_samples, n_inputs)`, or a SpecError naming `field`."""
    try:
        array = np.asarray(inputs, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecError(field, "must be a list of rows of numbers") from None
    if array.ndim != 2 or array.shape[0] == 0:
        raise SpecError(field, f"must be a non-empty list of rows, got shape {array.shape}")
    if array.shape[1] != n_inputs:
        raise SpecError(field, f"rows must have {n_inputs} values, got {array.shape[1]}")
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        raise SpecError(f"{field}[{row}]", "must be finite (no NaN or infinity)")
    return array


def check_targets(targets: object, n_rows: int) -> np.ndarray:
    """Targets as a finite float array `(n_rows, k)` (a flat list is one column), or a
    SpecError naming `targets`; their width is the caller's to check."""
    try:
        array = np.asarray(targets, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecError("targets", "must be a list of rows of numbers") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] != n_rows:
        raise SpecError("targets", f"must have one row per input row ({n_rows}), got {array.shape}")
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        raise SpecError(f"targets[{row}]", "must be finite (no NaN or infinity)")
    return array
