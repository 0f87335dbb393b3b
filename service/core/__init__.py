"""The NumPy backpropagation engine: no imports from the web, database or settings layers."""

from .errors import SpecError
from .labels import Labels, labels_from_targets
from .metrics import evaluate
from .model import Model
from .network import Backprop, Parameters, predict
from .preprocessing import Preprocessing, Scaler
from .spec import NetworkSpec, PreprocessingSpec, RunSpec, TrainingSpec
from .trace import trace_step
from .training import EpochRecord, Trainer, check_data

__all__ = [
    "Backprop",
    "EpochRecord",
    "Labels",
    "Model",
    "NetworkSpec",
    "Parameters",
    "Preprocessing",
    "PreprocessingSpec",
    "RunSpec",
    "Scaler",
    "SpecError",
    "Trainer",
    "TrainingSpec",
    "check_data",
    "evaluate",
    "labels_from_targets",
    "predict",
    "trace_step",
]
