"""The model registry: models, their versions and aliases."""

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from service.api.schemas.common import MAX_STORED_INT, Input, Integer, Output
from service.api.schemas.metadata import EXAMPLE_TAGS
from service.api.schemas.predictions import ClassName


class ModelRead(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "xor-net",
                    "description": None,
                    "latest_version": 2,
                    "aliases": {"production": 1},
                    "created_at": "2026-11-28T10:00:00Z",
                    "tags": EXAMPLE_TAGS,
                }
            ]
        }
    )

    name: str
    description: str | None
    latest_version: int | None
    aliases: dict[str, int]
    created_at: datetime
    tags: dict[str, str]


class ModelVersionRead(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "xor-net",
                    "version": 1,
                    "job_id": "4c1d2e3f5a6b7c8d9e0f1a2b3c4d5e6f",
                    "epoch": 500,
                    "source": "job",
                    "network": {
                        "layers": [2, 8, 1],
                        "hidden_activation": "tanh",
                        "output_activation": "identity",
                        "init": "xavier_uniform",
                    },
                    "task": "classification",
                    "classes": ["cat", "dog"],
                    "preprocessing": {"inputs": "standardize", "targets": "none"},
                    "feature_names": ["weight", "height"],
                    "metrics": {
                        "loss": 0.0123,
                        "val_loss": 0.0151,
                        "rmse": 0.157,
                        "accuracy": 1.0,
                        "val_accuracy": 1.0,
                        "val_precision": 1.0,
                        "val_recall": 1.0,
                        "val_f1": 1.0,
                        "mae": None,
                        "r2": None,
                        "val_mae": None,
                        "val_r2": None,
                        "learning_rate": 0.05,
                    },
                    "created_at": "2026-11-28T10:00:00Z",
                    "description": "Retrained on the May data",
                    "tags": {"stage": "candidate"},
                }
            ]
        }
    )

    name: str
    version: int
    job_id: str | None = Field(
        description="The job that trained these weights; null for an uploaded model file "
        "(and once the job is gone)."
    )
    epoch: int | None = Field(
        description="The job's epoch whose weights the version holds; null for an uploaded "
        "model file."
    )
    source: Literal["job", "upload"] = Field(
        description="`job`: registered by a training job; `upload`: a model file uploaded "
        "with `POST /v1/models/{name}/versions`."
    )
    network: dict[str, Any]
    task: Literal["classification", "regression"] = Field(
        description="classification for models trained on labels and for sigmoid and "
        "softmax outputs, else regression."
    )
    classes: list[ClassName] | None = Field(
        description="The class names predictions answer, in the order of their "
        "probabilities; null for regression and for models trained on encoded targets."
    )
    preprocessing: dict[str, str] | None = Field(
        description="The scaling the model applies to raw inputs and inverts on its "
        "outputs, by side (`inputs`, `targets`); null when it applies none (so every "
        "model stored before preprocessing existed).",
        examples=[{"inputs": "standardize", "targets": "none"}],
    )
    feature_names: list[str] | None = Field(
        description="The input columns' names, when the dataset had a header row."
    )
    metrics: dict[str, float | None] | None = Field(
        None,
        description="The job's history row of `epoch`, the epoch whose weights this version "
        "holds (the best epoch after early stopping): `loss`, `val_loss`, `rmse`, the "
        "metrics and `learning_rate`, as in `GET /v1/jobs/{id}/history`. Null for versions "
        "registered before versions recorded them.",
    )
    created_at: datetime
    description: str | None
    tags: dict[str, str]


class AliasSet(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": 1}]})

    version: Integer = Field(ge=1, le=MAX_STORED_INT)
