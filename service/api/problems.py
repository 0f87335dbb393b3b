"""One place that turns errors into responses: `application/problem+json`, in the
language of the protocol a route speaks where it speaks another (`answer`).

The Open Inference Protocol's routes (`/v2/...`) answer `{"error": "..."}` as that
protocol says, with 400 for a request the service refuses as invalid (422 elsewhere); its
clients (tritonclient, kserve) read the `error` member and nothing else. MLflow's scoring
route (`/v1/models/{name}/invocations`) answers problem+json with MLflow's own members,
`error_code` and `message`, beside ours: MLflow's clients and tools read those.
"""

import logging
import re
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from service.api.responses import JSONResponse, ProblemResponse
from service.api.schemas import Problem
from service.core import SpecError
from service.db.failures import is_storage_full, is_unavailable, reason
from service.errors import DomainError, FieldError
from service.logs import context_value, log_event

log = logging.getLogger("service.api")

# What a 503 for an unreachable database asks clients to wait: a restart of the database
# server takes seconds.
DATABASE_RETRY_AFTER_SECONDS = 2

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
    507: "Insufficient storage",
}


# MLflow's names (its `databricks_pb2.ErrorCode`) for our statuses.
MLFLOW_ERROR_CODES = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    429: "REQUEST_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}
MLFLOW_INVOCATIONS = re.compile(r"/v1/models/[^/]+/invocations")


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


def is_inference_v2(path: str) -> bool:
    """Whether `path` is the Open Inference Protocol's (`/v2` and below)."""
    return path == "/v2" or path.startswith("/v2/")


def answer(
    path: str, status: int, detail: str, errors: list[FieldError] | None = None
) -> JSONResponse:
    """The error response for a request to `path`, in its protocol's language (see the
    module's docstring); problem+json everywhere else."""
    if is_inference_v2(path):
        return JSONResponse({"error": detail}, status_code=400 if status == 422 else status)
    response = problem(status, detail, errors)
    if MLFLOW_INVOCATIONS.fullmatch(path):
        code = MLFLOW_ERROR_CODES.get(status, "BAD_REQUEST")
        response = ProblemResponse(
            {**orjson.loads(response.body), "error_code": code, "message": detail},
            status_code=status,
        )
    return response


def request_path(scope: Any) -> str:
    """The path the router matches: without a proxy's root_path."""
    path: str = scope.get("path", "")
    return path.removeprefix(scope.get("root_path", ""))


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


def spec_error_problem(error: SpecError, root: str = "body", path: str = "") -> JSONResponse:
    return answer(
        path,
        422,
        str(error),
        [{"loc": spec_error_location(error.field, root), "msg": error.message}],
    )


def _validation_problem(request: Request, error: Exception) -> JSONResponse:
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
    return answer(request_path(request.scope), 422, f"{where}: {first['msg']}{more}", errors)


def domain_problem(error: DomainError, path: str = "") -> JSONResponse:
    """The answer to a domain error, wherever it is raised, for a request to `path`."""
    return answer(path, error.status, error.detail, error.errors)


def _domain_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    return domain_problem(error, request_path(request.scope))


def _spec_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, SpecError)
    return spec_error_problem(error, path=request_path(request.scope))


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


def _http_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    response = answer(request_path(request.scope), error.status_code, str(error.detail))
    if error.headers:
        response.headers.update(error.headers)
    methods = _documented_methods(request) if error.status_code == 405 else []
    if methods:
        # FastAPI makes a route per method: the router's Allow names only the first route
        # whose path matched, not all the methods the path takes.
        response.headers["Allow"] = ", ".join(methods)
    return response


def _unexpected_problem(request: Request, error: Exception) -> JSONResponse:
    log_event(
        log,
        "request.unhandled_error",
        level=logging.ERROR,
        exc_info=error,
        method=request.method,
        path=request.url.path,
    )
    response = answer(
        request_path(request.scope),
        500,
        "the service failed to handle this request; it has been logged",
    )
    # Sent from outside RequestTelemetry, which left the request id bound for this.
    request_id = context_value("request_id")
    if isinstance(request_id, str):
        response.headers["X-Request-ID"] = request_id
    return response


def _database_problem(request: Request, error: Exception) -> JSONResponse:
    """A database error a client can wait out, in one log line without a traceback (while
    it lasts, every request that needs the database lands here):
    - no space left for the write: 507 (RFC 4918); reads and predictions of loaded models
      keep working, and the write can be tried again once an operator freed space;
    - the database cannot be reached just now (see `is_unavailable`): 503 with Retry-After.
    Any other database error is unexpected (a 500)."""
    if is_storage_full(error):
        cause = reason(error)
        log_event(
            log,
            "request.storage_full",
            level=logging.ERROR,
            method=request.method,
            path=request.url.path,
            reason=cause,
        )
        return answer(
            request_path(request.scope),
            507,
            f"the database has no space left to store this ({cause}); "
            "try again once space on its disk is freed",
        )
    if not is_unavailable(error):
        return _unexpected_problem(request, error)
    log_event(
        log,
        "request.database_unavailable",
        level=logging.WARNING,
        method=request.method,
        path=request.url.path,
        error=f"{type(getattr(error, 'orig', None) or error).__name__}: {reason(error)}",
    )
    response = answer(
        request_path(request.scope),
        503,
        "the database is unavailable just now (restarting or unreachable); "
        f"retry in {DATABASE_RETRY_AFTER_SECONDS} s",
    )
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(DomainError, _domain_problem)
    app.add_exception_handler(SpecError, _spec_problem)
    app.add_exception_handler(HTTPException, _http_problem)
    # Here, not in the catch-all below: Starlette re-raises what reaches that one, and the
    # server then logs its traceback too.
    for unavailable in (exc.DBAPIError, exc.TimeoutError, exc.DisconnectionError):
        app.add_exception_handler(unavailable, _database_problem)
    app.add_exception_handler(Exception, _unexpected_problem)
