"""The NumPy backpropagation engine: no imports from the web, database or settings layers."""

from .errors import SpecError
from .model import Model
from .network import Backprop, Parameters, predict
from .spec import NetworkSpec, RunSpec, TrainingSpec
from .trace import trace_step
from .training import EpochRecord, Trainer, check_data

__all__ = [
    "Backprop",
    "EpochRecord",
    "Model",
    "NetworkSpec",
    "Parameters",
    "RunSpec",
    "SpecError",
    "Trainer",
    "TrainingSpec",
    "check_data",
    "predict",
    "trace_step",
]
