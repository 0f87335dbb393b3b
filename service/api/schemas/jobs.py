"""Training jobs, their history points and weight snapshots."""

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, computed_field

from service.api.schemas.common import MAX_STORED_INT, Id, Input, Integer, Name, Output
from service.api.schemas.specs import (
    EXAMPLE_NETWORK,
    EXAMPLE_TRAINING,
    LayerParametersRead,
    NetworkSpecIn,
    TrainingSpecIn,
)
from service.db.models import JobStatus


class JobCreate(Input):
    """Rules between fields and with the data, checked beyond this schema: the loss must fit
    the output activation, the network the dataset's widths and the loss its targets; the
    size limits (BACKPROP_MAX_EPOCHS, BACKPROP_MAX_PARAMETERS, ...) are the server's
    settings."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dataset_id": "0f8e3a6c2b9d4e1f8a7b6c5d4e3f2a1b",
                    "model_name": "xor-net",
                    "network": EXAMPLE_NETWORK,
                    "training": EXAMPLE_TRAINING,
                    "checkpoint_every": 50,
                }
            ]
        }
    )

    dataset_id: Id
    model_name: Name | None = Field(
        None, description="Register the trained weights as the next version of this model."
    )
    network: NetworkSpecIn
    training: TrainingSpecIn = Field(default_factory=TrainingSpecIn)
    checkpoint_every: Integer = Field(
        10, ge=1, le=MAX_STORED_INT, description="Keep a weight snapshot every N epochs."
    )


class JobRead(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "4c1d2e3f5a6b7c8d9e0f1a2b3c4d5e6f",
                    "dataset_id": "0f8e3a6c2b9d4e1f8a7b6c5d4e3f2a1b",
                    "model_name": "xor-net",
                    "status": "running",
                    "epoch": 120,
                    "epochs_total": 500,
                    "progress": 0.24,
                    "loss": 0.0123,
                    "val_loss": None,
                    "error": None,
                    "stop_reason": None,
                    "attempts": 1,
                    "model_version": None,
                    "checkpoint_every": 50,
                    "spec": {
                        "network": {"layers": [2, 8, 1], "hidden_activation": "tanh"},
                        "training": {"epochs": 500},
                    },
                    "created_at": "2026-11-28T10:00:00Z",
                    "started_at": "2026-11-28T10:00:00Z",
                    "finished_at": None,
                }
            ]
        }
    )

    id: str
    dataset_id: str
    model_name: str | None
    status: JobStatus
    epoch: int = Field(description="Epochs finished so far.")
    epochs_total: int
    loss: float | None
    val_loss: float | None
    error: str | None
    stop_reason: str | None
    attempts: int
    model_version: int | None
    checkpoint_every: int
    spec: dict[str, Any] = Field(description="The network and training spec, defaults filled in.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @computed_field(description="epoch / epochs_total, from 0 to 1.")  # type: ignore[prop-decorator]
    @property
    def progress(self) -> float:
        return self.epoch / self.epochs_total if self.epochs_total else 0.0


class HistoryPoint(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "epoch": 1,
                    "loss": 0.2512,
                    "val_loss": None,
                    "rmse": 0.7088,
                    "accuracy": None,
                    "val_accuracy": None,
                    "learning_rate": 0.05,
                }
            ]
        }
    )

    epoch: int
    loss: float | None
    val_loss: float | None
    rmse: float | None
    accuracy: float | None
    val_accuracy: float | None
    learning_rate: float | None


class SnapshotSummary(Output):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"epoch": 50, "created_at": "2026-11-28T10:00:00Z"}]}
    )

    epoch: int
    created_at: datetime


class SnapshotRead(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"epoch": 50, "layers": [{"weights": [[0.5, -0.25]], "bias": [0.1]}]}]
        }
    )

    epoch: int
    layers: list[LayerParametersRead]
