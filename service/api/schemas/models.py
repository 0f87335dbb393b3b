"""The model registry: models, their versions and aliases."""

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from service.api.schemas.common import MAX_STORED_INT, Input, Integer, Output


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
                }
            ]
        }
    )

    name: str
    description: str | None
    latest_version: int | None
    aliases: dict[str, int]
    created_at: datetime


class ModelVersionRead(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "xor-net",
                    "version": 1,
                    "job_id": "4c1d2e3f5a6b7c8d9e0f1a2b3c4d5e6f",
                    "epoch": 500,
                    "network": {
                        "layers": [2, 8, 1],
                        "hidden_activation": "tanh",
                        "output_activation": "identity",
                        "init": "xavier_uniform",
                    },
                    "created_at": "2026-11-28T10:00:00Z",
                }
            ]
        }
    )

    name: str
    version: int
    job_id: str | None
    epoch: int
    network: dict[str, Any]
    created_at: datetime


class AliasSet(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": 1}]})

    version: Integer = Field(ge=1, le=MAX_STORED_INT)
