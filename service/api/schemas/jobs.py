"""Training jobs, their history points and weight snapshots."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, computed_field, model_validator

from service.api.schemas.common import (
    FROM_WHOLE_FLOAT,
    MAX_STORED_INT,
    Id,
    Input,
    Integer,
    Name,
    Output,
)
from service.api.schemas.metadata import EXAMPLE_TAGS, Description, Tags
from service.api.schemas.specs import (
    EXAMPLE_NETWORK,
    EXAMPLE_PREPROCESSING,
    EXAMPLE_TRAINING,
    LayerParametersRead,
    NetworkSpecIn,
    PreprocessingSpecIn,
    TrainingSpecIn,
)
from service.db.jobs import START_JOB, START_MODEL
from service.db.models import JobStatus

# A version number, or a count of epochs: 1 and up.
Version = Annotated[int, Field(ge=1, le=MAX_STORED_INT), FROM_WHOLE_FLOAT]
Epoch = Annotated[int, Field(ge=0, le=MAX_STORED_INT), FROM_WHOLE_FLOAT]


class InitialModel(Input):
    """A registered model version to start from: `version` or `alias`, not both; neither
    is the latest version."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "xor-net", "version": 3}, {"name": "xor-net", "alias": "prod"}],
            "not": {
                "required": ["version", "alias"],
                "properties": {"version": {"type": "integer"}, "alias": {"type": "string"}},
            },
        }
    )

    name: Name
    version: Version | None = Field(None, description="A version number; default the latest.")
    alias: Name | None = Field(None, description="An alias such as `production`.")

    @model_validator(mode="after")
    def _one_selector(self) -> "InitialModel":
        if self.version is not None and self.alias is not None:
            raise ValueError("give version or alias, not both")
        return self


class InitialJob(Input):
    """A job's snapshot to start from."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "4c1d2e3f5a6b7c8d9e0f1a2b3c4d5e6f", "epoch": 50}]}
    )

    id: Id
    epoch: Epoch | None = Field(None, description="A snapshot epoch; default the latest.")


class JobCreate(Input):
    """Rules between fields and with the data, checked beyond this schema: the loss must fit
    the output activation, the network the dataset's widths and the loss its targets; on a
    labelled dataset the output width must be the number of classes (or 1 for two), targets
    are not scaled, and a validation split needs two rows of every class. Left out on a
    labelled dataset, `network.output_activation` and `training.loss` follow the task. The
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
                    "preprocessing": EXAMPLE_PREPROCESSING,
                    "checkpoint_every": 50,
                    "description": "XOR with a small tanh layer",
                    "tags": EXAMPLE_TAGS,
                },
                {
                    "dataset_id": "0f8e3a6c2b9d4e1f8a7b6c5d4e3f2a1b",
                    "model_name": "xor-net",
                    "network": EXAMPLE_NETWORK,
                    "training": {"learning_rate": 0.01, "epochs": 200},
                    "initial_model": {"name": "xor-net", "alias": "production"},
                },
            ],
            # `initial_model` or `initial_job`, not both (null is neither).
            "not": {
                "required": ["initial_model", "initial_job"],
                "properties": {
                    "initial_model": {"type": "object"},
                    "initial_job": {"type": "object"},
                },
            },
        }
    )

    dataset_id: Id
    model_name: Name | None = Field(
        None, description="Register the trained weights as the next version of this model."
    )
    network: NetworkSpecIn
    training: TrainingSpecIn = Field(default_factory=TrainingSpecIn)
    preprocessing: PreprocessingSpecIn = Field(
        default_factory=PreprocessingSpecIn,
        description="Scaling fitted on the training part and stored with the model.",
    )
    checkpoint_every: Integer = Field(
        10, ge=1, le=MAX_STORED_INT, description="Keep a weight snapshot every N epochs."
    )
    description: Description | None = None
    tags: Tags = Field(default_factory=dict)
    initial_model: InitialModel | None = Field(
        None,
        description="Warm start: begin from this model version's weights instead of a random "
        "initialization, and scale the data with its preprocessing statistics (not refitted). "
        "Its layers must equal `network.layers` and its classes the dataset's; activations "
        "may differ. Left out, `preprocessing` follows the model's. Not with `initial_job`.",
    )
    initial_job: InitialJob | None = Field(
        None,
        description="Warm start from a job's snapshot, as `initial_model` does from a version. "
        "Not with `initial_model`.",
    )


class InitialModelRead(Output):
    name: str
    version: int


class InitialJobRead(Output):
    id: str
    epoch: int


class JobRetry(Input):
    """How to retry a job: the same dataset, spec, model name, description and tags."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"resume": "checkpoint"}, {"epochs": 1000, "resume": "final"}]
        }
    )

    epochs: Version | None = Field(
        None,
        description="`training.epochs` of the new job; default the retried job's.",
    )
    resume: Literal["none", "final", "checkpoint"] = Field(
        "none",
        description="`none`: train again from the start (the same warm start, if any). "
        "`final`: warm-start from the weights the job ended with (its `weights_epoch` "
        "snapshot) and train `epochs` more. `checkpoint`: continue the run from its last "
        "checkpoint, optimizer and random state included, up to `epochs` in all, so that it "
        "ends exactly as an uninterrupted run would; without a checkpoint it starts over.",
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
                    "weights_epoch": None,
                    "retry_of": None,
                    "initial_model": {"name": "xor-net", "version": 3},
                    "initial_job": None,
                    "checkpoint_every": 50,
                    "spec": {
                        "network": {"layers": [2, 8, 1], "hidden_activation": "tanh"},
                        "training": {"epochs": 500},
                        "preprocessing": {"inputs": "standardize", "targets": "none"},
                    },
                    "created_at": "2026-11-28T10:00:00Z",
                    "started_at": "2026-11-28T10:00:00Z",
                    "finished_at": None,
                    "description": "XOR with a small tanh layer",
                    "tags": EXAMPLE_TAGS,
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
    loss: float | None = Field(
        description="Training loss of the last epoch, on the scaled problem (see history)."
    )
    val_loss: float | None = Field(description="Validation loss, on the scaled problem.")
    error: str | None
    stop_reason: str | None
    attempts: int
    model_version: int | None
    weights_epoch: int | None = Field(
        description="The epoch whose weights the job ended with, which its final snapshot and "
        "its model version hold: the last epoch, the best one when early stopping restored "
        "it, the one kept after a divergence (0: the initial weights). Null until the job "
        "ends, and for jobs that ended before it was recorded."
    )
    retry_of: str | None = Field(
        description="The job this one retries (`POST /v1/jobs/{id}/retry`); that job may "
        "since have been deleted."
    )
    checkpoint_every: int
    spec: dict[str, Any] = Field(
        description="The network, training and preprocessing spec, defaults filled in (those "
        "that follow the dataset's task too). Jobs stored before preprocessing existed show "
        "`preprocessing` none: they trained on the data as given."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    description: str | None
    tags: dict[str, str]

    @computed_field(description="epoch / epochs_total, from 0 to 1.")  # type: ignore[prop-decorator]
    @property
    def progress(self) -> float:
        return self.epoch / self.epochs_total if self.epochs_total else 0.0

    @computed_field(  # type: ignore[prop-decorator]
        description="The model version a warm start began from, resolved when the job was "
        "created (`{name, version}`); the job keeps its own copy of those weights."
    )
    @property
    def initial_model(self) -> InitialModelRead | None:
        start = self.spec.get(START_MODEL)
        return None if start is None else InitialModelRead(**start)

    @computed_field(  # type: ignore[prop-decorator]
        description="The job snapshot a warm start began from, resolved when the job was "
        "created (`{id, epoch}`); the job keeps its own copy of those weights."
    )
    @property
    def initial_job(self) -> InitialJobRead | None:
        start = self.spec.get(START_JOB)
        return None if start is None else InitialJobRead(**start)


class HistoryPoint(Output):
    """One epoch's metrics. `loss`, `val_loss` and `rmse` are on the problem as trained,
    after preprocessing (with `preprocessing.targets: standardize`, in standard deviations
    of the targets); `mae`, `r2`, `val_mae` and `val_r2` are in the targets' raw units. For
    classification, `val_precision`, `val_recall` and `val_f1` are macro averages over the
    classes on the validation part. A metric that does not apply is null."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "epoch": 1,
                    "loss": 0.2512,
                    "val_loss": 0.2733,
                    "rmse": 0.7088,
                    "accuracy": 0.85,
                    "val_accuracy": 0.8,
                    "val_precision": 0.81,
                    "val_recall": 0.8,
                    "val_f1": 0.8,
                    "mae": None,
                    "r2": None,
                    "val_mae": None,
                    "val_r2": None,
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
    val_precision: float | None
    val_recall: float | None
    val_f1: float | None
    mae: float | None
    r2: float | None
    val_mae: float | None
    val_r2: float | None
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
