"""Problem bodies (RFC 9457) and the probes' answers."""

from typing import Literal

from pydantic import ConfigDict

from service.api.schemas.common import Output


class ErrorItem(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "loc": ["body", "network", "layers", 0],
                    "msg": "input width 3 does not match the data's 2 features",
                }
            ]
        }
    )

    loc: list[str | int]
    msg: str


class Problem(Output):
    """An `application/problem+json` body (RFC 9457)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Invalid request",
                    "status": 422,
                    "detail": "network.layers[0]: input width 3 does not match "
                    "the data's 2 features",
                    "errors": [
                        {
                            "loc": ["body", "network", "layers", 0],
                            "msg": "input width 3 does not match the data's 2 features",
                        }
                    ],
                }
            ]
        }
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ErrorItem] | None = None


class Health(Output):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"] = "ok"


class Readiness(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "database": True,
                    "schema_revision": "0002_workers",
                    "head_revision": "0002_workers",
                }
            ]
        }
    )

    status: Literal["ready", "unavailable"]
    database: bool
    schema_revision: str | None
    head_revision: str
