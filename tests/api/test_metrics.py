"""GET /metrics: Prometheus text with this process's HTTP requests and, read from the
database, the jobs by status, the queue, the epochs trained, the workers busy and idle and
their heartbeats."""

import threading
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from service.api.app import create_app
from service.config import Settings, parse_api_keys
from service.db import JobRow, JobStatus, make_engine, make_session_factory, utc_now
from service.jobs.worker import Worker
from tests.helpers import XOR_DATASET
from tests.jobs.worker_helpers import add_worker_row, worker_settings

EPOCHS = 40
JOB = {
    "network": {"layers": [2, 4, 1], "hidden_activation": "tanh"},
    "training": {"learning_rate": 0.1, "epochs": EPOCHS, "seed": 0},
    "checkpoint_every": 10,
}

NO_JOBS = {status.value: 0.0 for status in JobStatus}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of /metrics by name and labels; the text must parse."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    """The value of one sample, which must be present."""
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no {name}{labels} in {sorted(k for k, _ in samples)}"
    return samples[key]


def with_name(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (found, labels), value in samples.items() if found == name}


def jobs_by_status(samples: Samples) -> dict[str, float]:
    return {
        status.value: sample(samples, "backprop_jobs", status=status.value) for status in JobStatus
    }


def workers_by_state(samples: Samples) -> dict[str, float]:
    return {state: sample(samples, "backprop_workers", state=state) for state in ("busy", "idle")}


def queue_job(client: TestClient) -> dict[str, Any]:
    dataset = client.post("/v1/datasets", json=XOR_DATASET).json()
    response = client.post("/v1/jobs", json={"dataset_id": dataset["id"], **JOB})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def test_requests_are_counted_by_route_template_method_and_status(client: TestClient) -> None:
    route = {"route": "/v1/jobs/{job_id}", "method": "GET"}
    before = scrape(client)
    assert client.get("/v1/jobs/0123456789abcdef0123456789abcdef").status_code == 404
    assert client.get("/v1/jobs/fedcba9876543210fedcba9876543210").status_code == 404
    assert client.get("/no/such/route").status_code == 404
    after = scrape(client)

    requests = "backprop_http_requests_total"
    assert sample(after, requests, **route, status="404") == 2
    assert sample(after, requests, route="unmatched", method="GET", status="404") == 1
    assert {dict(labels)["route"] for labels in with_name(after, requests)} == {
        "/v1/jobs/{job_id}",
        "unmatched",
    }
    latency = "backprop_http_request_duration_seconds"
    assert sample(after, f"{latency}_count", **route) == 2
    assert sample(after, f"{latency}_bucket", **route, le="+Inf") == 2
    assert sample(after, f"{latency}_sum", **route) > 0
    # The scrapes themselves are not counted.
    assert not any(dict(labels)["route"] == "/metrics" for labels in with_name(after, requests))
    assert with_name(before, requests) == {}


def test_metrics_reflect_a_jobs_life_queued_running_succeeded(
    client: TestClient, settings: Settings
) -> None:
    empty = scrape(client)
    assert jobs_by_status(empty) == NO_JOBS
    assert sample(empty, "backprop_database_up") == 1
    assert sample(empty, "backprop_queue_depth") == 0
    assert sample(empty, "backprop_epochs_trained_total") == 0
    assert workers_by_state(empty) == {"busy": 0, "idle": 0}
    assert with_name(empty, "backprop_worker_heartbeat_age_seconds") == {}

    job_id = queue_job(client)["id"]
    queued = scrape(client)
    assert jobs_by_status(queued) == {**NO_JOBS, "queued": 1}
    assert sample(queued, "backprop_queue_depth") == 1

    with Worker(worker_settings(settings.database_url)) as worker:
        idle = scrape(client)
        assert workers_by_state(idle) == {"busy": 0, "idle": 1}
        age = sample(idle, "backprop_worker_heartbeat_age_seconds", worker=worker.worker_id)
        assert 0 <= age < settings.lease_timeout_seconds

        lease = worker.claim()
        assert lease is not None and lease.job_id == job_id
        running = scrape(client)
        assert jobs_by_status(running) == {**NO_JOBS, "running": 1}
        assert sample(running, "backprop_queue_depth") == 0
        age = sample(
            running, "backprop_job_heartbeat_age_seconds", job_id=job_id, worker=worker.worker_id
        )
        assert 0 <= age < settings.lease_timeout_seconds
        assert workers_by_state(running) == {"busy": 1, "idle": 0}

        assert worker.run_job(lease, threading.Event()) == JobStatus.SUCCEEDED
        assert workers_by_state(scrape(client)) == {"busy": 0, "idle": 1}

    done = scrape(client)
    assert jobs_by_status(done) == {**NO_JOBS, "succeeded": 1}
    assert sample(done, "backprop_epochs_trained_total") == EPOCHS
    assert with_name(done, "backprop_job_heartbeat_age_seconds") == {}
    assert workers_by_state(done) == {"busy": 0, "idle": 0}
    assert with_name(done, "backprop_worker_heartbeat_age_seconds") == {}


def test_a_worker_whose_heartbeat_is_past_the_lease_timeout_is_not_counted(
    client: TestClient, settings: Settings
) -> None:
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine).begin() as session:
            for worker_id, age, job_id in (("frozen", 60.0, "j"), ("slow", 1.0, None)):
                add_worker_row(session, worker_id, settings.lease_timeout_seconds + age, job_id)
    finally:
        engine.dispose()
    samples = scrape(client)
    assert workers_by_state(samples) == {"busy": 0, "idle": 0}
    ages = with_name(samples, "backprop_worker_heartbeat_age_seconds")
    assert {dict(labels)["worker"] for labels in ages} == {"frozen", "slow"}
    assert all(age > settings.lease_timeout_seconds for age in ages.values())


def test_queue_depth_leaves_out_jobs_waiting_to_retry_and_epochs_never_go_down(
    client: TestClient, settings: Settings
) -> None:
    waiting, due = queue_job(client)["id"], queue_job(client)["id"]
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine).begin() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id == waiting)
                .values(run_after=utc_now() + timedelta(minutes=5), epoch=30)
            )
            session.execute(update(JobRow).where(JobRow.id == due).values(epoch=12))
        samples = scrape(client)
        assert sample(samples, "backprop_jobs", status="queued") == 2
        assert sample(samples, "backprop_queue_depth") == 1
        assert sample(samples, "backprop_epochs_trained_total") == 42

        # A job resumed from its checkpoint records some epochs again: the sum dips.
        with make_session_factory(engine).begin() as session:
            session.execute(update(JobRow).where(JobRow.id == waiting).values(epoch=20))
        assert sample(scrape(client), "backprop_epochs_trained_total") == 42
    finally:
        engine.dispose()


def test_metrics_need_no_api_key_and_are_documented_as_text(settings: Settings) -> None:
    with_keys = settings.model_copy(update={"api_keys": parse_api_keys("secret")})
    with TestClient(create_app(with_keys)) as client:
        assert client.get("/metrics").status_code == 200
        operation = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert "text/plain" in operation["responses"]["200"]["content"]
    assert operation["tags"] == ["operations"]
