"""What routes receive: the request's database session, the settings, the model cache."""

from collections.abc import Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from service.api.predictions import ModelCache, ModelResolver
from service.config import Settings

M = TypeVar("M", bound=BaseModel)


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work per request: commit on success, roll back on error."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_read_session(request: Request) -> Iterator[Session]:
    """A session for requests that only read; on SQLite it never waits for writers."""
    factory: sessionmaker[Session] = request.app.state.read_session_factory
    with factory() as session:
        yield session


# The prediction routes call these directly rather than declaring dependencies: each
# dependency costs FastAPI a resolution per request, a measurable share of a prediction.
def read_sessions(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.read_session_factory
    return factory


def model_resolver(request: Request) -> ModelResolver:
    resolver: ModelResolver = request.app.state.model_resolver
    return resolver


# Plain `async def`: FastAPI runs sync dependencies in its thread pool, a hand-off that
# costs more than a small prediction.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_model_cache(request: Request) -> ModelCache:
    cache: ModelCache = request.app.state.model_cache
    return cache


async def parse_body(request: Request, model: type[M]) -> M:
    """Parse and validate a body in one pass with pydantic-core's JSON parser, several
    times faster on large batches than FastAPI's `json.loads` followed by validation.
    Routes using it declare the body with `body_schema` so the docs still show it."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
        ) from None


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring `model` as the JSON request body."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


# scope="function": the commit happens before the response is sent, so a client never
# sees success for a write that then fails to commit.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ModelCacheDep = Annotated[ModelCache, Depends(get_model_cache)]
