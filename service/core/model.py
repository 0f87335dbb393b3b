"""A trained model: its network spec and parameters, as bytes and as predictions."""

from dataclasses import dataclass

import numpy as np

from .errors import SpecError
from .network import Parameters, predict
from .serialization import pack, unpack
from .spec import NetworkSpec


@dataclass
class Model:
    spec: NetworkSpec
    parameters: Parameters

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Outputs `(n_samples, n_outputs)` for inputs `(n_samples, n_inputs)`."""
        inputs = check_inputs(inputs, self.spec.n_inputs)
        return predict(self.spec, self.parameters, inputs)

    @property
    def is_classifier(self) -> bool:
        return self.spec.output_activation in ("sigmoid", "softmax")

    def labels(self, outputs: np.ndarray) -> np.ndarray:
        """Class labels from classifier outputs: argmax for softmax, p >= 0.5 for sigmoid."""
        if self.spec.output_activation == "softmax":
            labels: np.ndarray = outputs.argmax(axis=1)[:, None]
        else:
            labels = (outputs >= 0.5).astype(np.int64)
        return labels

    def to_bytes(self) -> bytes:
        return pack("model", {"network": self.spec.to_dict()}, {"flat": self.parameters.flat})

    @classmethod
    def from_bytes(cls, data: bytes) -> "Model":
        meta, arrays = unpack("model", data)
        spec = NetworkSpec.from_dict(meta["network"])
        return cls(spec, Parameters(spec.layers, arrays["flat"]))


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
