"""Per-request telemetry: a request id, the HTTP metrics and one access log line.

A pure ASGI middleware rather than Starlette's BaseHTTPMiddleware: it only wraps `send`
to read the status and add a header, so the prediction hot path pays a few microseconds
for it (the access log line aside), not an extra task and stream per request.
"""

import logging
import random
import re
import time
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.metrics import METHODS, HttpMetrics
from service.logs import bind, log_event, unbind

access_log = logging.getLogger("service.access")

REQUEST_ID_HEADER = b"x-request-id"
# An incoming X-Request-ID is kept only if it is a short token, safe in logs and headers.
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
# The route label of requests that match no route (404s), so paths never become labels.
UNMATCHED = "unmatched"


def request_id_of(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The client's X-Request-ID if it is a sane token, else a new random one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER and SANE_REQUEST_ID.fullmatch(value):
            return value
    # Unique enough to correlate log lines, and several times faster than uuid4 (urandom).
    return b"%032x" % random.getrandbits(128)


class RequestTelemetry:
    """Gives every HTTP request an id (echoed in X-Request-ID and carried by every log line
    logged while serving it), counts it in `metrics` by route template, and logs it once
    on `service.access`. Requests for `unobserved_paths` get an id and a log line only."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: HttpMetrics,
        routes: Sequence[BaseRoute],
        unobserved_paths: frozenset[str] = frozenset({"/metrics"}),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.unobserved_paths = unobserved_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = request_id_of(scope["headers"])
        token = bind(request_id=request_id.decode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - start)
        # Not in `finally`: an error leaves the id bound for the error handler outside this
        # middleware, whose log line and response then carry it too; the context is the
        # request's task's own and ends with it.
        unbind(token)

    def _route(self, scope: Scope) -> str:
        """The template of the route that served the request, e.g. `/v1/jobs/{job_id}`."""
        route = scope.get("route")
        if route is None:
            # Refused before routing (a body over the size limit), or no route matches.
            route = next((r for r in self.routes if r.matches(scope)[0] is Match.FULL), None)
        # `path_format`: the template without convertors (`{job_id}`, not `{job_id:id}`).
        return str(getattr(route, "path_format", UNMATCHED))

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = self._route(scope)
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        path = scope["path"]
        if path not in self.unobserved_paths:
            self.metrics.observe(route, method, status, seconds)
        duration_ms = round(seconds * 1000, 3)
        log_event(
            access_log,
            "request.completed",
            method=method,
            path=path,
            route=route,
            status=status,
            duration_ms=duration_ms,
        )
