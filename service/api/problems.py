"""One place that turns errors into `application/problem+json` responses."""

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from service.api.responses import ProblemResponse
from service.api.schemas import Problem
from service.core import SpecError
from service.errors import DomainError, FieldError
from service.logs import context_value, log_event

log = logging.getLogger("service.api")

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal server error",
    501: "Not implemented",
    503: "Service unavailable",
}


def problem(status: int, detail: str, errors: list[FieldError] | None = None) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return ProblemResponse(body, status_code=status)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status documented with the Problem schema.

    422 is always among them: it replaces FastAPI's default validation-error schema, which
    is not the problem+json this service sends. FastAPI files the `model` under the route's
    own media type (application/json); `service.api.openapi` moves it.
    """
    return {
        status: {
            "model": Problem,
            "description": TITLES.get(status, "Error"),
            "content": {PROBLEM_JSON: {}},
        }
        for status in sorted({*statuses, 422})
    }


def spec_error_location(field: str, root: str = "body") -> list[str | int]:
    """`network.layers[1]` -> ["body", "network", "layers", 1]."""
    return [root] + [
        int(index) if index else name for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field)
    ]


def spec_error_problem(error: SpecError, root: str = "body") -> ProblemResponse:
    return problem(
        422,
        str(error),
        [{"loc": spec_error_location(error.field, root), "msg": error.message}],
    )


def _validation_problem(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, RequestValidationError)
    errors: list[FieldError] = [
        {"loc": [p if isinstance(p, int) else str(p) for p in item["loc"]], "msg": item["msg"]}
        for item in error.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"][1:]) or str(
        first["loc"][0] if first["loc"] else ""
    )
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return problem(422, f"{where}: {first['msg']}{more}", errors)


def domain_problem(error: DomainError) -> ProblemResponse:
    """The problem+json answer to a domain error, wherever it is raised."""
    return problem(error.status, error.detail, error.errors)


def _domain_problem(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, DomainError)
    return domain_problem(error)


def _spec_problem(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, SpecError)
    return spec_error_problem(error)


def _documented_methods(request: Request) -> list[str]:
    """The methods the OpenAPI schema documents at this request's path: of the paths that
    match it, those with the fewest parameters (`/v1/datasets/csv`, not `/{dataset_id}`)."""
    path = request.scope["path"].removeprefix(request.scope.get("root_path", ""))
    matching = [
        (template.count("{"), operations)
        for template, operations in request.app.openapi()["paths"].items()
        if compile_path(template)[0].fullmatch(path)
    ]
    fewest = min((parameters for parameters, _ in matching), default=0)
    return sorted({m.upper() for n, operations in matching if n == fewest for m in operations})


def _http_problem(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, HTTPException)
    response = problem(error.status_code, str(error.detail))
    if error.headers:
        response.headers.update(error.headers)
    methods = _documented_methods(request) if error.status_code == 405 else []
    if methods:
        # FastAPI makes a route per method: the router's Allow names only the first route
        # whose path matched, not all the methods the path takes.
        response.headers["Allow"] = ", ".join(methods)
    return response


def _unexpected_problem(request: Request, error: Exception) -> ProblemResponse:
    log_event(
        log,
        "request.unhandled_error",
        level=logging.ERROR,
        exc_info=error,
        method=request.method,
        path=request.url.path,
    )
    response = problem(500, "the service failed to handle this request; it has been logged")
    # Sent from outside RequestTelemetry, which left the request id bound for this.
    request_id = context_value("request_id")
    if isinstance(request_id, str):
        response.headers["X-Request-ID"] = request_id
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(DomainError, _domain_problem)
    app.add_exception_handler(SpecError, _spec_problem)
    app.add_exception_handler(HTTPException, _http_problem)
    app.add_exception_handler(Exception, _unexpected_problem)
