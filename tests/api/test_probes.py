"""The probes tell an orchestrator the truth about the database behind the API."""

from fastapi.testclient import TestClient

from service.db import make_engine
from service.db.migrate import downgrade, head_revision, upgrade


def test_ready_names_the_revision_when_the_database_is_migrated(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": True,
        "schema_revision": head_revision(),
        "head_revision": head_revision(),
    }


def test_ready_is_503_while_the_schema_is_behind_and_200_once_migrated_again(
    client: TestClient, migrated_url: str
) -> None:
    downgrade(migrated_url, "base")
    behind = client.get("/ready")
    assert behind.status_code == 503
    assert behind.json()["status"] == "unavailable"
    assert behind.json()["database"] is True
    assert behind.json()["schema_revision"] is None

    upgrade(migrated_url)
    assert client.get("/ready").status_code == 200


def test_ready_is_503_when_the_database_does_not_answer(client: TestClient) -> None:
    # Nothing listens on port 1 of the loopback: connecting is refused at once.
    app_engine = client.app.state.engine  # type: ignore[attr-defined]
    client.app.state.engine = make_engine(  # type: ignore[attr-defined]
        "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"
    )
    try:
        response = client.get("/ready")
    finally:
        client.app.state.engine.dispose()  # type: ignore[attr-defined]
        client.app.state.engine = app_engine  # type: ignore[attr-defined]
    assert response.status_code == 503
    assert response.json()["database"] is False
    assert response.json()["schema_revision"] is None
    assert client.get("/health").status_code == 200
