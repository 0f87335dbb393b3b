"""A job's history as a CSV download: every epoch, every HistoryPoint field, the same
values the JSON pages hold, nulls as empty cells."""

import csv
import io

from fastapi.testclient import TestClient

from service.api.schemas import HistoryPoint
from service.config import Settings
from tests.api.test_weights_epoch import run_job


def test_the_whole_history_downloads_as_csv_with_the_json_values(
    client: TestClient, settings: Settings
) -> None:
    job = run_job(client, settings, {"epochs": 30, "learning_rate": 0.1})
    path = f"/v1/jobs/{job['id']}/history"

    response = client.get(path, params={"format": "csv", "limit": 5})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert (
        response.headers["content-disposition"]
        == f'attachment; filename="job-{job["id"]}-history.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == list(HistoryPoint.model_fields)
    # Every epoch, whatever the JSON page size asked for.
    points = client.get(path, params={"limit": 1000}).json()["items"]
    assert len(points) == 30 and len(rows) == 1 + 30
    for row, point in zip(rows[1:], points, strict=True):
        cells = dict(zip(rows[0], row, strict=True))
        for field, value in point.items():
            # XOR's regression metrics and its validation part (none) are null: empty cells.
            assert cells[field] == ("" if value is None else str(value)), field
    assert any(cell == "" for cell in rows[1]) and rows[1][0] == "1"


def test_json_stays_the_default_and_other_formats_are_422(
    client: TestClient, settings: Settings
) -> None:
    job = run_job(client, settings, {"epochs": 2})
    path = f"/v1/jobs/{job['id']}/history"

    default = client.get(path)
    assert default.headers["content-type"] == "application/json"
    assert [point["epoch"] for point in default.json()["items"]] == [1, 2]
    assert client.get(path, params={"format": "json"}).json() == default.json()
    refused = client.get(path, params={"format": "xml"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["query", "format"]


def test_an_unknown_jobs_csv_history_is_404(client: TestClient) -> None:
    response = client.get(f"/v1/jobs/{'0' * 32}/history", params={"format": "csv"})

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
