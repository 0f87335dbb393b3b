"""Scaling of inputs and targets, fitted on the training rows and carried by the model, so
that predict takes raw rows and answers in raw units."""

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SpecError
from .spec import PreprocessingSpec


@dataclass(frozen=True)
class Scaler:
    """`z = (x - shift) / scale`, per column. A constant column gets scale 1 (it becomes
    all zeros), never 0 or NaN."""

    kind: str
    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, data: np.ndarray) -> "Scaler":
        """Statistics of `data` `(n, columns)`: mean and standard deviation for
        `standardize` (as scikit-learn's StandardScaler), minimum and range for `minmax`
        (to [0, 1]), the identity for `none`."""
        data = np.asarray(data, dtype=np.float64)
        # Constant by its values, not by a std of 0: the mean of a constant column can be
        # off by rounding, leaving a std of 1e-17 that would blow rounding noise up.
        constant = data.max(axis=0) == data.min(axis=0)
        if kind == "standardize":
            shift, scale = data.mean(axis=0), data.std(axis=0)
        elif kind == "minmax":
            shift = data.min(axis=0)
            scale = data.max(axis=0) - shift
        elif kind == "none":
            shift, scale = np.zeros(data.shape[1]), np.ones(data.shape[1])
        else:
            raise SpecError("preprocessing", f"unknown scaling {kind!r}")
        # A constant column: nothing to scale, so divide by 1 rather than by 0.
        scale = np.where(constant | ~(scale > 0), 1.0, scale)
        return cls(kind, shift, scale)

    def transform(self, x: np.ndarray) -> np.ndarray:
        scaled: np.ndarray = (x - self.shift) / self.scale
        return scaled

    def inverse(self, z: np.ndarray) -> np.ndarray:
        raw: np.ndarray = z * self.scale + self.shift
        return raw


@dataclass(frozen=True)
class Preprocessing:
    """The fitted scalers of a run; None where the spec says `none` (the data as given,
    untouched, so models without preprocessing predict bit for bit as they always did)."""

    inputs: Scaler | None = None
    targets: Scaler | None = None

    @classmethod
    def fit(
        cls, spec: PreprocessingSpec, train_inputs: np.ndarray, train_targets: np.ndarray
    ) -> "Preprocessing":
        """Scalers fitted on the training rows only (never the validation rows)."""
        return cls(_fit(spec.inputs, train_inputs), _fit(spec.targets, train_targets))

    @property
    def is_identity(self) -> bool:
        return self.inputs is None and self.targets is None

    def transform_inputs(self, x: np.ndarray) -> np.ndarray:
        return x if self.inputs is None else self.inputs.transform(x)

    def transform_targets(self, t: np.ndarray) -> np.ndarray:
        return t if self.targets is None else self.targets.transform(t)

    def inverse_targets(self, z: np.ndarray) -> np.ndarray:
        return z if self.targets is None else self.targets.inverse(z)

    def kinds(self) -> dict[str, str]:
        """The scaling of each side, as the spec names it: `{"inputs": ..., "targets": ...}`."""
        sides = {"inputs": self.inputs, "targets": self.targets}
        return {side: "none" if scaler is None else scaler.kind for side, scaler in sides.items()}

    def to_blob(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON metadata and named arrays for a model or checkpoint archive."""
        meta: dict[str, Any] = self.kinds()
        arrays: dict[str, np.ndarray] = {}
        for part, scaler in (("inputs", self.inputs), ("targets", self.targets)):
            if scaler is not None:
                arrays[f"preprocessing.{part}.shift"] = scaler.shift
                arrays[f"preprocessing.{part}.scale"] = scaler.scale
        return meta, arrays

    @classmethod
    def from_blob(
        cls, meta: dict[str, Any], arrays: dict[str, np.ndarray], widths: tuple[int, int]
    ) -> "Preprocessing":
        """Inverse of `to_blob`; `widths` are the inputs' and targets' column counts."""
        scalers: list[Scaler | None] = []
        for part, width in zip(("inputs", "targets"), widths, strict=True):
            kind = meta.get(part, "none") if isinstance(meta, dict) else None
            if kind == "none":
                scalers.append(None)
                continue
            try:
                shift = np.asarray(arrays[f"preprocessing.{part}.shift"], dtype=np.float64)
                scale = np.asarray(arrays[f"preprocessing.{part}.scale"], dtype=np.float64)
            except KeyError:
                raise SpecError("preprocessing", f"{part} statistics are missing") from None
            if kind not in ("standardize", "minmax") or shift.shape != (width,):
                raise SpecError("preprocessing", f"{part} statistics do not fit the network")
            if scale.shape != (width,) or not (np.isfinite(shift).all() and (scale > 0).all()):
                raise SpecError("preprocessing", f"{part} statistics are not valid")
            scalers.append(Scaler(kind, shift, scale))
        return cls(scalers[0], scalers[1])

    def same_as(self, other: "Preprocessing") -> bool:
        """True when both scale the same way with the very same statistics."""
        mine, theirs = self.to_blob(), other.to_blob()
        return mine[0] == theirs[0] and all(
            name in theirs[1] and np.array_equal(array, theirs[1][name])
            for name, array in mine[1].items()
        )


def _fit(kind: str, data: np.ndarray) -> Scaler | None:
    return None if kind == "none" else Scaler.fit(kind, data)
