"""The FastAPI application factory."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from service.api import auth, dashboard, direct, docs, openapi, problems
from service.api.limits import BodySizeLimit
from service.api.metrics import HttpMetrics, JobsCollector, new_registry
from service.api.predictions import ModelCache, ModelResolver
from service.api.protocols import inference_v2, mlflow
from service.api.responses import JSONResponse
from service.api.routes import datasets, events, jobs, metrics, models, probes, trace
from service.api.telemetry import RequestTelemetry
from service.config import Settings
from service.db import make_engine, make_session_factory
from service.db.migrate import head_revision, revision_on

log = logging.getLogger("service.api")

DESCRIPTION = """
Trains multi-layer perceptrons with a NumPy backpropagation core, keeps every run's
loss history and weight snapshots, and serves predictions from the trained models.

A first run: `POST /v1/datasets` with `{"name": "xor", "generator": {"kind": "xor",
"n_samples": 4}}`, then `POST /v1/jobs` with its id and a `model_name`, poll
`GET /v1/jobs/{id}` until `succeeded`, and `POST /v1/models/{name}/predict`.
Errors are `application/problem+json` and name the field at fault.
"""


# Every operation that predicts (see `service.api.direct`).
PREDICTIONS = frozenset(
    {
        "predict_model",
        "predict_model_grid",
        "predict_job",
        "predict_job_grid",
        "invoke_model",
        "infer_model",
        "infer_model_version",
    }
)


def operation_id(route: APIRoute) -> str:
    """A route's operation id is its function's name (`create_job`), or the `operation_id`
    it declares where that would collide or read badly: generated clients name their
    functions after it. FastAPI's default appends the path and method."""
    return route.name


class SchemaOutOfDate(RuntimeError):
    pass


def check_schema(settings: Settings) -> None:
    """Refuse to run on a database that is not at the newest migration."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            revision = revision_on(connection)
    finally:
        engine.dispose()
    if revision != head_revision():
        raise SchemaOutOfDate(
            f"the database schema is at revision {revision or 'none (empty database)'}, "
            f"the service needs {head_revision()}: run `backprop db upgrade` "
            "(with the same BACKPROP_DATABASE_URL) and start again"
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_schema(settings)
        engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        read_engine = make_engine(settings.database_url, read_only=True)
        app.state.settings = settings
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        app.state.read_session_factory = make_session_factory(read_engine)
        app.state.model_cache = ModelCache(settings.model_cache_size)
        app.state.model_resolver = ModelResolver(
            app.state.model_cache, app.state.read_session_factory
        )
        if not settings.api_keys:
            log.warning("BACKPROP_API_KEYS is not set: the API is open to anyone who can reach it")
        jobs_collector = JobsCollector(
            app.state.read_session_factory, settings.lease_timeout_seconds
        )
        registry.register(jobs_collector)
        yield
        registry.unregister(jobs_collector)
        engine.dispose()
        read_engine.dispose()

    app = FastAPI(
        title="Backprop Service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by `service.api.docs` on vendored assets instead: FastAPI's load a CDN's.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=docs.OAUTH2_REDIRECT_URL,
        default_response_class=JSONResponse,
        generate_unique_id_function=operation_id,
    )
    registry = new_registry()
    app.state.metrics_registry = registry
    problems.install(app)
    assert app.openapi_url is not None
    is_open = auth.OpenPaths(
        auth.OPEN_PATHS | dashboard.OPEN_PATHS | docs.OPEN_PATHS | {app.openapi_url},
        (dashboard.STATIC_PREFIX,),
    )
    openapi.install(app, is_open if settings.api_keys else None)
    responses = auth.documentation(settings.api_keys)
    for module in (models, mlflow, jobs, events, trace, datasets):
        app.include_router(module.router, responses=responses)
    v2_responses = auth.documentation(settings.api_keys, inference_v2.KEY_ERRORS)
    app.include_router(inference_v2.router, responses=v2_responses)
    for module in (probes, metrics):
        app.include_router(module.router)
    app.include_router(inference_v2.health_router)
    # The hot path: every way to predict, matched first and dispatched directly.
    direct.install(
        app, (models.router, jobs.router, mlflow.router, inference_v2.router), PREDICTIONS
    )
    dashboard.install(app)
    docs.install(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(auth.ApiKeyAuth, keys=settings.api_keys, is_open=is_open)
    # Outermost, so requests refused by the other middleware are counted and logged too.
    app.add_middleware(RequestTelemetry, metrics=HttpMetrics(registry), routes=app.router.routes)
    return app
