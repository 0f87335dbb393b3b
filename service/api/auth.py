"""API keys: with `BACKPROP_API_KEYS` set, every request but the probes' and the docs'
needs `Authorization: Bearer KEY`, and keys configured as `KEY:read` may only read: GET and
HEAD, and the POST routes that compute an answer and change nothing (`READ_ONLY_POSTS`).

The keys are checked by a middleware, before the request body is read: an unknown client
cannot make the service buffer, parse or spool a body. The OpenAPI schema and the docs page
("Authorize") learn of the scheme from `document_keys`, which marks the operations the
middleware guards; no dependency re-reads the header on every request.
"""

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

# Registers the `{job_id:id}` convertor the templates below use, as the routes do.
from service.api import params  # noqa: F401
from service.api.problems import answer, problem_responses, request_path
from service.config import ApiKey

READ_METHODS = frozenset({"GET", "HEAD"})
# POST routes a `KEY:read` key may call: predictions, grids and evaluations, which read a
# stored model and change nothing. Named by the routes' own templates and matched as the router
# matches them (a whole path, `{name}` one segment), so no path that merely starts like one
# of these (`/v1/models/x/predict/../jobs`) passes for it; no other POST route's template
# matches the same paths (tests/api/test_auth.py checks it against the schema).
READ_ONLY_POSTS = (
    "/v1/models/{name}/predict",
    "/v1/models/{name}/evaluate",
    "/v1/models/{name}/grid",
    "/v1/models/{name}/invocations",
    "/v1/jobs/{job_id:id}/predict",
    "/v1/jobs/{job_id:id}/evaluate",
    "/v1/jobs/{job_id:id}/grid",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
)
READ_ONLY_PATHS = tuple(compile_path(template)[0] for template in READ_ONLY_POSTS)


def is_read_only_post(path: str) -> bool:
    """Whether a POST to `path` reaches one of READ_ONLY_POSTS."""
    return any(pattern.fullmatch(path) for pattern in READ_ONLY_PATHS)


# Open with keys configured, besides the docs: what probes and scrapers call (the Open
# Inference Protocol's health routes are its probes).
OPEN_PATHS = frozenset({"/health", "/ready", "/metrics", "/v2/health/live", "/v2/health/ready"})
REALM = 'Bearer realm="backprop"'

SCHEME = "HTTPBearer"
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key from `BACKPROP_API_KEYS`, needed when the service has any. "
    "A key configured as `KEY` may call every operation. A key configured as `KEY:read` "
    "may send GET and HEAD requests, and POST only to the operations that change nothing: "
    "`predict_model`, `evaluate_model`, `predict_model_grid`, `invoke_model` (MLflow), "
    "`predict_job`, `evaluate_job`, `predict_job_grid`, `infer_model` and "
    "`infer_model_version` (Open Inference v2); any other request with it is a 403.",
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        **problem_responses(401)[401],
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "example": REALM}},
    },
    403: problem_responses(403)[403],
}


def documentation(
    keys: tuple[ApiKey, ...], responses: dict[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`include_router`'s responses for a router behind the keys: the 401/403 answers in
    each operation's docs (`responses`, for a router whose protocol writes them otherwise
    than problem+json); nothing for an open service, whose schema then does not claim a
    key is needed."""
    return (RESPONSES if responses is None else responses) if keys else {}


def document_keys(schema: dict[str, Any], is_open: Callable[[str], bool]) -> None:
    """Declare the bearer scheme in an OpenAPI `schema` and require it on every operation
    whose path the middleware guards (`is_open` is the middleware's own test)."""
    schema.setdefault("components", {})["securitySchemes"] = {SCHEME: SECURITY_SCHEME}
    for path, operations in schema.get("paths", {}).items():
        if not is_open(path):
            for operation in operations.values():
                operation["security"] = [{SCHEME: []}]


class Refusal(Exception):
    """Why a request may not proceed: its status, detail and `WWW-Authenticate` value."""

    def __init__(self, status: int, detail: str, challenge: str) -> None:
        super().__init__(detail)
        self.status, self.detail, self.challenge = status, detail, challenge


def key_scope(keys: tuple[ApiKey, ...], key: bytes) -> str | None:
    """The scope of `key` ("read" or "write"), or None for an unknown key. Its digest is
    compared with every configured one, in constant time and without stopping early."""
    digest = hashlib.sha256(key).digest()
    scopes = {stored.scope for stored in keys if hmac.compare_digest(stored.digest, digest)}
    if "write" in scopes:
        return "write"
    return "read" if scopes else None


def authorize(
    keys: tuple[ApiKey, ...],
    method: str,
    authorization: list[bytes],
    read_only: Callable[[], bool] = lambda: False,
) -> None:
    """Raise a Refusal unless the `Authorization` header values grant `method`.
    `read_only()` says whether the request's route changes nothing although its method is
    not GET or HEAD; it is asked only about read-only keys' requests."""
    if not authorization:
        raise Refusal(
            401, "this service needs an API key: send `Authorization: Bearer <key>`", REALM
        )
    scheme, _, key = authorization[0].partition(b" ")
    key = key.strip()
    invalid = f'{REALM}, error="invalid_token"'
    if len(authorization) > 1 or scheme.lower() != b"bearer" or not key or b" " in key:
        raise Refusal(401, "the Authorization header must be `Bearer <key>`", invalid)
    scope = key_scope(keys, key)
    if scope is None:
        raise Refusal(401, "the API key is not valid", invalid)
    if scope == "read" and method not in READ_METHODS and not read_only():
        raise Refusal(
            403,
            f"this API key may only read (GET, HEAD, and POST to predict, evaluate, grid, "
            f"invocations and infer); this {method} needs a key configured without `:read`",
            f'{REALM}, error="insufficient_scope"',
        )


@dataclass(frozen=True)
class OpenPaths:
    """The paths served without a key: `paths` exactly, and everything under `prefixes`."""

    paths: frozenset[str]
    prefixes: tuple[str, ...] = ()

    def __call__(self, path: str) -> bool:
        return path in self.paths or path.startswith(self.prefixes)


class ApiKeyAuth:
    """Refuses requests without a valid key (401) or with a read-only key for a write
    (403), except to the `is_open` paths; lets everything through when no key is
    configured."""

    def __init__(self, app: ASGIApp, keys: tuple[ApiKey, ...], is_open: OpenPaths) -> None:
        self.app = app
        self.keys = keys
        self.is_open = is_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Compared with the path the router matches: behind a proxy's root_path too.
        path = request_path(scope)
        if scope["type"] != "http" or not self.keys or self.is_open(path):
            await self.app(scope, receive, send)
            return
        authorization = [value for name, value in scope["headers"] if name == b"authorization"]
        try:
            authorize(
                self.keys,
                scope["method"],
                authorization,
                lambda: scope["method"] == "POST" and is_read_only_post(path),
            )
        except Refusal as refusal:
            response = answer(path, refusal.status, refusal.detail)
            response.headers["WWW-Authenticate"] = refusal.challenge
            # The body, if any, stays unread: the connection cannot be reused.
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
