"""The prediction routes, dispatched without FastAPI's per-request routing and dependency
resolution.

For a 1-row prediction FastAPI's own work was more than half the server's time: it
matches a request against the routes of every included router (twice, once to choose
the router and once inside it) and resolves each route's parameters through its
dependency machinery. `install` puts a `DirectRoute` for each prediction operation first
in the application's routes; it matches with the operation's own compiled path, checks
the path and query parameters with FastAPI's own fields (a malformed model name is the
same 422) and awaits the same endpoint. The FastAPI routes stay as they are: they
document the operations, and answer the methods a direct route does not take (405).
"""

import inspect
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIRouter
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from service.api.problems import request_path

# How many distinct valid path parameters (model names, job ids) each route remembers.
VALID_PATHS_KEPT = 4096


class DirectRoute(BaseRoute):
    """Serves `route`'s operation: its endpoint must be a coroutine that takes path and
    query parameters and the request, nothing else FastAPI would resolve, and answers a
    Response itself (it reads its body itself)."""

    def __init__(self, route: APIRoute) -> None:
        dependant = route.dependant
        others = (
            dependant.dependencies,
            dependant.header_params,
            dependant.cookie_params,
            dependant.body_params,
        )
        if any(others) or dependant.request_param_name != "request":
            raise TypeError(
                f"{route.name} takes more than path and query parameters and the request"
            )
        if not inspect.iscoroutinefunction(route.endpoint):
            raise TypeError(f"{route.name} is not a coroutine function")
        self.route = route
        self.endpoint = route.endpoint
        self.methods = route.methods or set()
        self.path_format = route.path_format
        # Path parameters that passed validation, and their values: a model name is
        # checked against its pattern once, not on every request (FastAPI's validation of
        # one name costs about as much as a 1-row forward pass).
        self._valid_paths: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Another method falls through to the FastAPI route, which answers 405.
        if scope["type"] != "http" or scope["method"] not in self.methods:
            return Match.NONE, {}
        found = self.route.path_regex.match(request_path(scope))
        if found is None:
            return Match.NONE, {}
        convertors = self.route.param_convertors
        path_params = {
            key: convertors[key].convert(value) for key, value in found.groupdict().items()
        }
        # `route`: the FastAPI route's, so the metrics and logs name its template.
        return Match.FULL, {
            "endpoint": self.endpoint,
            "path_params": path_params,
            "route": self.route,
        }

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        dependant = self.route.dependant
        values, errors = self._path_values(scope["path_params"])
        if dependant.query_params:
            query, query_errors = request_params_to_args(
                dependant.query_params, request.query_params
            )
            values.update(query)
            errors += query_errors
        if errors:
            raise RequestValidationError(errors)
        response = await self.endpoint(request=request, **values)
        await response(scope, receive, send)

    def _path_values(self, path_params: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        key = tuple(path_params.items())
        valid = self._valid_paths.get(key)
        if valid is not None:
            return dict(valid), []
        values, errors = request_params_to_args(self.route.dependant.path_params, path_params)
        if not errors:
            if len(self._valid_paths) >= VALID_PATHS_KEPT:
                self._valid_paths.clear()
            self._valid_paths[key] = dict(values)
        return values, errors

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return self.route.url_path_for(name, **path_params)


def install(app: FastAPI, routers: Iterable[APIRouter], operations: frozenset[str]) -> None:
    """Serve `operations` (operation ids) of `routers`, which the app includes without a
    prefix, through DirectRoutes placed before all other routes."""
    routes = [
        route
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and route.unique_id in operations
    ]
    missing = operations - {route.unique_id for route in routes}
    assert not missing, f"no route for {sorted(missing)}"
    app.router.routes[:0] = [DirectRoute(route) for route in routes]
