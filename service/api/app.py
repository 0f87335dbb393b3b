"""The FastAPI application factory."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api import problems
from service.api.limits import BodySizeLimit
from service.api.predictions import ModelCache
from service.api.responses import JSONResponse
from service.api.routes import datasets, events, jobs, models, probes, trace
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
        engine = make_engine(settings.database_url)
        read_engine = make_engine(settings.database_url, read_only=True)
        app.state.settings = settings
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        app.state.read_session_factory = make_session_factory(read_engine)
        app.state.model_cache = ModelCache(settings.model_cache_size)
        yield
        engine.dispose()
        read_engine.dispose()

    app = FastAPI(
        title="Backprop Service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JSONResponse,
    )
    problems.install(app)
    # Routes are matched in order: the prediction routes, the hot path, come first.
    for module in (models, jobs, events, trace, datasets, probes):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
