"""Every request has an id: echoed in X-Request-ID and carried by each line logged for it."""

import logging
import re

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from tests.log_capture import json_logs

GENERATED = re.compile(r"[0-9a-f]{32}")


def test_a_sane_request_id_is_echoed_and_any_other_is_replaced(client: TestClient) -> None:
    given = client.get("/health", headers={"X-Request-ID": "trace-42.a:b_c"})
    assert given.headers["X-Request-ID"] == "trace-42.a:b_c"

    first, second = client.get("/health"), client.get("/health")
    assert GENERATED.fullmatch(first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]

    for insane in ("x" * 65, "two words", 'quote"d', ""):
        replaced = client.get("/health", headers={"X-Request-ID": insane})
        assert GENERATED.fullmatch(replaced.headers["X-Request-ID"]), insane

    refused = client.post("/v1/datasets", json={"name": "x"}, headers={"X-Request-ID": "r-422"})
    assert refused.status_code == 422
    assert refused.headers["X-Request-ID"] == "r-422"


def test_every_line_logged_for_a_request_carries_its_id_even_when_it_fails(
    settings: Settings,
) -> None:
    app = create_app(settings)

    def fail_after_logging() -> None:
        logging.getLogger("tests.endpoint").info("inside the handler")
        raise RuntimeError("boom")

    app.add_api_route("/test/fail", fail_after_logging)
    with TestClient(app, raise_server_exceptions=False) as client, json_logs() as logs:
        response = client.get("/test/fail", headers={"X-Request-ID": "req-1"})
        client.get("/health", headers={"X-Request-ID": "req-2"})

    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "req-1"
    lines = logs.all()
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= line.keys(), line
    mine = [line for line in lines if line.get("request_id") == "req-1"]
    assert [(line["logger"], line["level"]) for line in mine] == [
        ("tests.endpoint", "INFO"),
        ("service.access", "INFO"),
        # The unhandled error with its traceback, logged by the handler outside the
        # middleware as the error passes on.
        ("service.api", "ERROR"),
    ]
    assert "RuntimeError: boom" in mine[2]["exc_info"]
    access = mine[1]
    assert {k: access[k] for k in ("method", "path", "route", "status")} == {
        "method": "GET",
        "path": "/test/fail",
        "route": "/test/fail",
        "status": 500,
    }
    assert access["duration_ms"] >= 0
    assert [line["request_id"] for line in lines if line["logger"] == "service.access"] == [
        "req-1",
        "req-2",
    ]
