"""The model resolver on a real database: what it answers from the cache, and how soon it
sees what another process changed in the registry."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import numpy as np
import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from service.api.predictions import RESOLVE_TTL_SECONDS, ModelCache, ModelResolver
from service.core import Model, Parameters, RunSpec
from service.db import make_engine, make_session_factory, registry
from service.db.datasets import create_dataset
from service.db.jobs import create_job
from service.errors import NotFound

pytestmark = pytest.mark.anyio

SPEC = RunSpec.from_dict({"network": {"layers": [2, 1]}, "training": {"epochs": 1}})


@pytest.fixture
def read_engine(migrated_url: str) -> Iterator[Engine]:
    """The engine of the resolver's read-only sessions, as the app makes it."""
    engine = make_engine(migrated_url, read_only=True)
    yield engine
    engine.dispose()


@pytest.fixture
def resolver(read_engine: Engine) -> ModelResolver:
    return ModelResolver(ModelCache(8), make_session_factory(read_engine))


@pytest.fixture
def elsewhere(db_engine: Engine) -> sessionmaker[Session]:
    """Sessions of another process: a worker registering versions, another API process
    moving aliases."""
    return make_session_factory(db_engine)


def register_versions(sessions: sessionmaker[Session], name: str, count: int) -> None:
    weights = Model(SPEC.network, Parameters.zeros(SPEC.network.layers)).to_bytes()
    with sessions.begin() as session:
        dataset = create_dataset(session, "d", np.zeros((2, 2)), np.zeros((2, 1)), {})
        job = create_job(session, dataset.id, SPEC, name, 1)
        for _ in range(count):
            registry.register_version(session, name, job.id, 1, weights)


@contextmanager
def statements_counted(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements `engine` runs meanwhile."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@contextmanager
def thread_pool_taken() -> Iterator[None]:
    """Every token of the default thread pool held: work handed to it waits meanwhile."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    borrowers = [object() for _ in range(int(limiter.total_tokens))]
    for borrower in borrowers:
        limiter.acquire_on_behalf_of_nowait(borrower)
    try:
        yield
    finally:
        for borrower in borrowers:
            limiter.release_on_behalf_of(borrower)


async def test_a_cached_model_of_a_known_version_answers_without_database_or_thread_pool(
    resolver: ModelResolver, read_engine: Engine, elsewhere: sessionmaker[Session]
) -> None:
    register_versions(elsewhere, "m", 2)
    with elsewhere.begin() as session:
        registry.set_alias(session, "m", "production", 1)
    for selector in ({"version": 1}, {"alias": "production"}, {}):
        await resolver.model("m", **selector)

    with statements_counted(read_engine) as statements, thread_pool_taken():
        with anyio.fail_after(5):
            pinned = await resolver.model("m", version=1)
            by_alias = await resolver.model("m", alias="production")
            latest = await resolver.model("m")

    assert statements == []
    assert (pinned.version, by_alias.version, latest.version) == (1, 1, 2)
    assert (pinned.refresh, by_alias.refresh, latest.refresh) == (None, None, None)


async def test_an_alias_moved_elsewhere_is_seen_once_the_stale_lookup_is_refreshed(
    resolver: ModelResolver, elsewhere: sessionmaker[Session]
) -> None:
    register_versions(elsewhere, "m", 2)
    with elsewhere.begin() as session:
        registry.set_alias(session, "m", "production", 1)
    assert (await resolver.model("m", alias="production")).version == 1

    with elsewhere.begin() as session:
        registry.set_alias(session, "m", "production", 2)
    trusted = await resolver.model("m", alias="production")
    await anyio.sleep(RESOLVE_TTL_SECONDS * 1.1)
    stale = await resolver.model("m", alias="production")
    assert stale.refresh is not None
    await stale.refresh()

    assert (trusted.version, trusted.refresh) == (1, None)
    assert stale.version == 1
    assert (await resolver.model("m", alias="production")).version == 2


async def test_an_alias_deleted_elsewhere_is_not_found_after_the_refresh(
    resolver: ModelResolver, elsewhere: sessionmaker[Session]
) -> None:
    register_versions(elsewhere, "m", 1)
    with elsewhere.begin() as session:
        registry.set_alias(session, "m", "production", 1)
    await resolver.model("m", alias="production")

    with elsewhere.begin() as session:
        registry.delete_alias(session, "m", "production")
    await anyio.sleep(RESOLVE_TTL_SECONDS * 1.1)
    stale = await resolver.model("m", alias="production")
    assert stale.version == 1 and stale.refresh is not None
    await stale.refresh()

    with pytest.raises(NotFound, match="no alias production"):
        await resolver.model("m", alias="production")


async def test_a_refresh_dropped_with_a_failed_request_leaves_the_next_one_to_refresh(
    resolver: ModelResolver, elsewhere: sessionmaker[Session]
) -> None:
    register_versions(elsewhere, "m", 1)
    await resolver.model("m")
    register_versions(elsewhere, "m", 1)
    await anyio.sleep(RESOLVE_TTL_SECONDS * 1.1)

    # The first stale request fails after resolving (say, over a size limit): its
    # response, and with it its refresh, is never sent.
    await resolver.model("m")
    second = await resolver.model("m")
    assert second.refresh is not None
    await second.refresh()

    assert (await resolver.model("m")).version == 2
